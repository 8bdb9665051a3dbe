"""The contract's exception tree: every error says which field failed and why."""

from __future__ import annotations


class UnsError(Exception):
    """Base of every error raised by twinline.uns."""


class ContractError(UnsError, ValueError):
    """A payload, topic or value does not fit the contract.

    ``field`` is a path such as ``samples[3].good`` (empty when the whole input is wrong) and
    ``reason`` says why, in words a plant engineer can act on.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class PlantModelError(UnsError, ValueError):
    """The plant model file is invalid; ``field`` is the YAML path of the offending entry."""

    def __init__(self, field: str, reason: str, source: str = "") -> None:
        self.field = field
        self.reason = reason
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {reason}" if field else f"{where}{reason}")


class SettingsError(UnsError, ValueError):
    """A setting is missing or malformed; the message names the setting, never a secret's value."""
