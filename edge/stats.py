"""Counters and gauges of a running agent: what `twinline edge status` and the metrics endpoint show."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class SourceStats:
    name: str
    kind: str
    endpoint: str
    connected: bool = False
    readings_total: int = 0
    samples_total: int = 0
    rejected_total: int = 0  # readings that did not fit their tag
    bad_total: int = 0  # bad-quality readings without a usable value
    overflow_total: int = 0  # server-side queue overflows reported in status codes
    reconnects_total: int = 0
    errors_total: int = 0
    blocked_total: int = 0  # batches held back by reject_new
    last_value_ts: datetime | None = None  # device time of the newest reading
    last_receive_ts: datetime | None = None
    last_error: str | None = None

    def error(self, text: str) -> None:
        self.errors_total += 1
        self.last_error = text


@dataclass(slots=True)
class UplinkStats:
    url: str
    connected: bool = False
    connects_total: int = 0
    envelopes_acked_total: int = 0
    samples_acked_total: int = 0
    publish_errors_total: int = 0
    errors_total: int = 0
    last_error: str | None = None
    last_ack_ts: datetime | None = None


@dataclass(slots=True)
class AgentStats:
    agent: str
    line: str
    started: datetime
    uplink: UplinkStats
    sources: dict[str, SourceStats] = field(default_factory=dict)

    def snapshot(self, queue: dict[str, Any], now: datetime, rates: dict[str, float]) -> dict[str, Any]:
        def clean(d: dict[str, Any]) -> dict[str, Any]:
            return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in d.items()}

        return {
            "agent": self.agent, "line": self.line, "updated": now.isoformat(), "started": self.started.isoformat(),
            "queue": queue, "rates": rates, "uplink": clean(asdict(self.uplink)),
            "sources": {n: clean(asdict(s)) for n, s in self.sources.items()},
        }
