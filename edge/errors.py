"""The edge agent's exception tree.

    EdgeError
    ├── ConfigError        edge.yaml / tag map invalid: `field` is the YAML path, `reason` says why
    ├── QueueError         the SQLite queue cannot be opened or written (disk full, corrupt file)
    │   └── QueueFull      overflow policy `reject_new` and the queue is at `max_samples`
    ├── SourceError        an OPC UA server or device broker cannot be reached / subscribed
    ├── UplinkError        the central broker refused us (bad credentials, TLS) or cannot be reached
    └── MappingError       a reading cannot be turned into a contract sample (bad value for its tag)

Foreign exceptions (sqlite3, asyncua, paho, OSError) are translated at the seam with `raise ... from`.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every error raised by twinline.edge."""


class ConfigError(EdgeError, ValueError):
    """The agent configuration or tag map is invalid; `field` names the entry (e.g. `sources[0].endpoint`)."""

    def __init__(self, field: str, reason: str, source: str = "") -> None:
        self.field = field
        self.reason = reason
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {reason}" if field else f"{where}{reason}")


class QueueError(EdgeError):
    """The durable queue failed (cannot open, cannot write)."""


class QueueFull(QueueError):
    """`reject_new`: the queue holds `max_samples`; the source must wait until the uplink drains it."""


class SourceError(EdgeError):
    """A data source (OPC UA server, device broker) failed; the agent retries with backoff."""


class UplinkError(EdgeError):
    """The central broker connection failed; the agent retries with backoff."""


class MappingError(EdgeError, ValueError):
    """A reading does not fit its tag (e.g. a state code that is not E10); counted and logged, never queued."""


__all__ = ["ConfigError", "EdgeError", "MappingError", "QueueError", "QueueFull", "SourceError", "UplinkError"]
