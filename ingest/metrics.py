"""Ingest counters: Prometheus text exposition and the JSON heartbeat stored in `ingest_worker`.

One `WorkerMetrics` per worker, written by that worker's thread (the message counter by its MQTT network
thread): plain integer updates under the GIL, read without locks by the exporter. Histograms use fixed
buckets (cumulative, Prometheus style).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

BATCH_BUCKETS = (10, 100, 1_000, 5_000, 10_000, 20_000, 50_000, 100_000)
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(slots=True)
class Histogram:
    """A cumulative histogram with fixed upper bounds, its count and sum."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    count: int = 0
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "sum": self.total,
                "buckets": {str(b): c for b, c in zip(self.bounds, self.counts, strict=True)}}


@dataclass(slots=True)
class WorkerMetrics:
    """Counters of one ingest worker."""

    worker: str
    messages: int = 0
    envelopes: int = 0
    samples: int = 0
    rows: int = 0
    duplicates: int = 0
    statuses: int = 0
    batches: int = 0
    db_errors: int = 0
    acked: int = 0
    lag_s: float = 0.0
    dead_letters: Counter[str] = field(default_factory=Counter)
    batch_samples: Histogram = field(default_factory=lambda: Histogram(tuple(float(b) for b in BATCH_BUCKETS)))
    db_latency_s: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_S))

    def as_dict(self) -> dict[str, Any]:
        """The heartbeat JSON (also what `twinline ingest status` reads back)."""
        return {"messages": self.messages, "envelopes": self.envelopes, "samples": self.samples, "rows": self.rows,
                "duplicates": self.duplicates, "statuses": self.statuses, "batches": self.batches,
                "db_errors": self.db_errors, "acked": self.acked, "lag_s": self.lag_s,
                "dead_letters": dict(self.dead_letters), "batch_samples": self.batch_samples.as_dict(),
                "db_latency_s": self.db_latency_s.as_dict()}


_COUNTERS = (("messages", "MQTT messages received"), ("envelopes", "envelopes stored"),
             ("samples", "valid samples committed (duplicates included)"), ("rows", "event rows written"),
             ("duplicates", "re-delivered envelopes absorbed by the ledger"), ("statuses", "edge birth/death messages"),
             ("batches", "batches committed"), ("db_errors", "failed commit attempts"),
             ("acked", "MQTT messages acknowledged after commit"))


def prometheus_text(workers: Iterable[WorkerMetrics]) -> str:
    """The Prometheus text exposition format (version 0.0.4) of every worker's metrics."""
    ws = list(workers)
    out: list[str] = []
    for name, help_text in _COUNTERS:
        out += [f"# HELP twinline_ingest_{name}_total {help_text}", f"# TYPE twinline_ingest_{name}_total counter"]
        out += [f'twinline_ingest_{name}_total{{worker="{w.worker}"}} {getattr(w, name)}' for w in ws]
    out += ["# HELP twinline_ingest_dead_letters_total dead letters by reason",
            "# TYPE twinline_ingest_dead_letters_total counter"]
    out += [f'twinline_ingest_dead_letters_total{{worker="{w.worker}",reason="{r}"}} {n}'
            for w in ws for r, n in sorted(w.dead_letters.items())]
    out += ["# HELP twinline_ingest_lag_seconds now minus edge_ts of the newest envelope",
            "# TYPE twinline_ingest_lag_seconds gauge"]
    out += [f'twinline_ingest_lag_seconds{{worker="{w.worker}"}} {w.lag_s:.6f}' for w in ws]
    for attr, name, help_text in (("batch_samples", "batch_samples", "samples per committed batch"),
                                  ("db_latency_s", "db_commit_seconds", "time to commit one batch")):
        out += [f"# HELP twinline_ingest_{name} {help_text}", f"# TYPE twinline_ingest_{name} histogram"]
        for w in ws:
            h: Histogram = getattr(w, attr)
            label = f'worker="{w.worker}"'
            out += [f'twinline_ingest_{name}_bucket{{{label},le="{b:g}"}} {c}'
                    for b, c in zip(h.bounds, h.counts, strict=True)]
            out += [f'twinline_ingest_{name}_bucket{{{label},le="+Inf"}} {h.count}',
                    f"twinline_ingest_{name}_sum{{{label}}} {h.total:.6f}",
                    f"twinline_ingest_{name}_count{{{label}}} {h.count}"]
    return "\n".join(out) + "\n"


class MetricsServer:
    """`GET /metrics` on a port, in a daemon thread; `close()` stops it."""

    def __init__(self, host: str, port: int, source: Callable[[], Iterable[WorkerMetrics]]) -> None:
        def text() -> bytes:
            return prometheus_text(source()).encode()

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = text() if self.path.split("?")[0] in ("/metrics", "/") else b"not found\n"
                self.send_response(200 if body != b"not found\n" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), _Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="ingest-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)




@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """One worker as its last heartbeat left it."""

    worker: str
    started_at: datetime
    seen_at: datetime
    metrics: dict[str, Any]

    @property
    def samples_per_s(self) -> float | None:
        """Mean committed samples per second since the worker started (None before the first second)."""
        up_s = (self.seen_at - self.started_at).total_seconds()
        return self.metrics.get("samples", 0) / up_s if up_s >= 1 else None


@dataclass(frozen=True, slots=True)
class IngestStatus:
    """Workers (newest heartbeat first) and the dead letters by reason code, all time and in the last hour."""

    workers: list[WorkerStatus]
    dead_letters: dict[str, tuple[int, int]]


_WORKERS = "SELECT worker, started_at, seen_at, metrics FROM ingest_worker ORDER BY seen_at DESC, worker"
_DEAD = """
SELECT split_part(reason, ':', 1) AS code, count(*), count(*) FILTER (WHERE received_at > %s - interval '1 hour')
FROM dead_letter GROUP BY 1 ORDER BY 2 DESC
"""


def read_status(conn: psycopg.Connection[Any], now: datetime) -> IngestStatus:
    """What `twinline ingest status` shows, read from the store (heartbeats and the dead_letter table)."""
    with conn.cursor() as cur:
        workers = [WorkerStatus(str(r[0]), r[1], r[2], dict(r[3])) for r in cur.execute(_WORKERS).fetchall()]
        dead = {str(r[0]): (int(r[1]), int(r[2])) for r in cur.execute(_DEAD, (now,)).fetchall()}
    return IngestStatus(workers, dead)


__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS_S", "Histogram", "IngestStatus", "MetricsServer", "WorkerMetrics",
           "WorkerStatus", "prometheus_text", "read_status"]
