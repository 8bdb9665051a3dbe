"""Health: a status file (JSON, rewritten every `interval_s`), Prometheus text metrics and /status over
HTTP on an optional local port. `twinline edge status` reads the status file (or the HTTP endpoint)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from twinline.edge.queue import DurableQueue
from twinline.edge.stats import AgentStats

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


class Health:
    def __init__(self, stats: AgentStats, queue: DurableQueue, status_file: Path, *, interval_s: float,
                 clock: Clock) -> None:
        self.stats = stats
        self.queue = queue
        self.status_file = status_file
        self.interval_s = interval_s
        self.clock = clock
        self._last: tuple[float, dict[str, int]] | None = None
        self.rates: dict[str, float] = {}

    def _totals(self) -> dict[str, int]:
        out = {f"{n}.readings": s.readings_total for n, s in self.stats.sources.items()}
        out["uplink.samples_acked"] = self.stats.uplink.samples_acked_total
        return out

    def tick(self) -> dict[str, Any]:
        """Update the rates (per second since the last tick) and return the status snapshot."""
        now = self.clock()
        totals = self._totals()
        t = now.timestamp()
        if self._last is not None and t > self._last[0]:
            dt = t - self._last[0]
            self.rates = {f"{k}_per_s": (v - self._last[1].get(k, 0)) / dt for k, v in totals.items()}
        self._last = (t, totals)
        queue = {"depth": self.queue.depth, "pending": self.queue.pending, "in_envelopes": self.queue.sealed,
                 "max_samples": self.queue.max_samples, "overflow": self.queue.overflow,
                 "dropped_total": self.queue.dropped, "rejected_total": self.queue.rejected}
        return dict(self.stats.snapshot(queue, now, self.rates))

    def write(self, snapshot: dict[str, Any]) -> None:
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(snapshot, indent=1))
        os.replace(tmp, self.status_file)

    async def run(self) -> None:
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                self.write(self.tick())
            except OSError as exc:
                log.warning("agent %s: cannot write status file %s: %s", self.stats.agent, self.status_file, exc)
            await asyncio.sleep(self.interval_s)

    def metrics(self) -> str:
        """Prometheus text exposition format."""
        snap = self.tick()
        agent = _label(self.stats.agent)
        lines: list[str] = []

        def metric(name: str, kind: str, helptext: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP twinline_edge_{name} {helptext}")
            lines.append(f"# TYPE twinline_edge_{name} {kind}")
            lines.extend(f"twinline_edge_{name}{{agent=\"{agent}\"{labels}}} {_num(value)}"
                         for labels, value in samples)

        q = snap["queue"]
        metric("queue_depth", "gauge", "samples on disk not yet acknowledged by the broker", [("", q["depth"])])
        metric("queue_max_samples", "gauge", "queue bound", [("", q["max_samples"])])
        metric("queue_dropped_total", "counter", "samples dropped by drop_oldest", [("", q["dropped_total"])])
        metric("queue_rejected_total", "counter", "batches refused by reject_new", [("", q["rejected_total"])])
        up = self.stats.uplink
        metric("uplink_connected", "gauge", "1 when connected to the broker", [("", float(up.connected))])
        metric("uplink_connects_total", "counter", "successful broker connects", [("", up.connects_total)])
        metric("uplink_samples_acked_total", "counter", "samples acknowledged by the broker",
               [("", up.samples_acked_total)])
        metric("uplink_errors_total", "counter", "uplink errors", [("", up.errors_total)])
        srcs = self.stats.sources.values()
        for name, attr, kind, helptext in (
                ("source_connected", "connected", "gauge", "1 when the source is connected"),
                ("source_readings_total", "readings_total", "counter", "readings received"),
                ("source_rejected_total", "rejected_total", "counter", "readings that did not fit their tag"),
                ("source_bad_total", "bad_total", "counter", "bad-quality readings without a value"),
                ("source_overflow_total", "overflow_total", "counter", "server queue overflows"),
                ("source_errors_total", "errors_total", "counter", "source errors"),
                ("source_reconnects_total", "reconnects_total", "counter", "source reconnects")):
            metric(name, kind, helptext, [(f',source="{_label(s.name)}"', float(getattr(s, attr))) for s in srcs])
        metric("source_last_value_timestamp_seconds", "gauge", "device time of the newest reading",
               [(f',source="{_label(s.name)}"', s.last_value_ts.timestamp()) for s in srcs if s.last_value_ts])
        return "\n".join(lines) + "\n"

    async def serve(self, host: str, port: int) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                request = await asyncio.wait_for(reader.readline(), 5.0)
                path = request.split(b" ")[1].decode() if request.count(b" ") >= 2 else "/"
                if path.startswith("/metrics"):
                    body, ctype, status = self.metrics().encode(), "text/plain; version=0.0.4", "200 OK"
                elif path.startswith("/status"):
                    body, ctype, status = json.dumps(self.tick()).encode(), "application/json", "200 OK"
                else:
                    body, ctype, status = b"not found\n", "text/plain", "404 Not Found"
                writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                             f"Connection: close\r\n\r\n".encode() + body)
                await writer.drain()
            except (OSError, TimeoutError, UnicodeDecodeError):
                pass  # a client that went away or sent junk: nothing to answer
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

        server = await asyncio.start_server(handle, host, port)
        log.info("agent %s: metrics on http://%s:%d/metrics", self.stats.agent, host, port)
        async with server:
            await server.serve_forever()


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def read_status(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def format_status(snap: dict[str, Any], now: datetime) -> str:
    """A human summary of a status snapshot (what `twinline edge status` prints)."""
    updated = datetime.fromisoformat(snap["updated"])
    age = (now - updated).total_seconds()
    q, up = snap["queue"], snap["uplink"]
    out = [f"agent {snap['agent']} on {snap['line']}: status {age:.0f} s old" + ("  (STALE: agent not running?)"
                                                                                   if age > 30 else ""),
           f"queue: depth {q['depth']} of {q['max_samples']} ({q['pending']} pending, {q['in_envelopes']} in "
           f"envelopes); overflow {q['overflow']}: dropped {q['dropped_total']}, rejected {q['rejected_total']}",
           f"uplink {up['url']}: {'connected' if up['connected'] else 'DISCONNECTED'}; acked "
           f"{up['samples_acked_total']} samples; errors {up['errors_total']}"
           + (f" (last: {up['last_error']})" if up.get("last_error") else "")]
    rates = snap.get("rates", {})
    for name, s in snap["sources"].items():
        rate = rates.get(f"{name}.readings_per_s", 0.0)
        out.append(f"source {name} ({s['kind']} {s['endpoint']}): {'connected' if s['connected'] else 'DISCONNECTED'}; "
                   f"{rate:.1f} readings/s; last value {s['last_value_ts'] or '-'}; rejected {s['rejected_total']}, "
                   f"bad {s['bad_total']}, errors {s['errors_total']}"
                   + (f" (last: {s['last_error']})" if s.get("last_error") else ""))
    return "\n".join(out)


__all__ = ["Health", "format_status", "read_status"]
