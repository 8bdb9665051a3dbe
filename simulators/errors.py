"""The simulators' exception tree: configuration errors name the plant-file field, runtime errors the asset."""

from __future__ import annotations


class SimError(Exception):
    """Base of every error raised by twinline.simulators."""


class SimConfigError(SimError, ValueError):
    """A `sim:` section (or the line it belongs to) cannot be simulated; ``field`` is its plant-file path."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class LiveError(SimError, RuntimeError):
    """A live adapter (OPC UA server, MQTT client) could not start or failed while running."""
