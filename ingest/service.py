"""The ingest service: N workers, each an MQTT 5 client on the shared subscription plus a writer thread.

Per worker: paho's network thread puts deliveries on a bounded inbox (see subscriber.py); the worker thread
validates them (msgspec decode + contract checks, no I/O), batches them by samples and age (batch.py),
commits each batch in one transaction (writer.py) and only then acknowledges its messages to the broker.
Database down: the commit is retried with exponential backoff while nothing is acknowledged, so the broker
stops sending once `receive_maximum` messages are in flight: memory stays bounded, and the backlog waits in
the broker's session until the database is back. SIGTERM / SIGINT (the CLI calls `stop`): unsubscribe,
drain, flush, acknowledge, end the session. A worker killed without that leaves its session (and the
unacknowledged messages) with the broker for its successor with the same client id.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from twinline.ingest.batch import Batch, BatchPolicy, commit
from twinline.ingest.db import connect
from twinline.ingest.errors import StoreUnavailable
from twinline.ingest.metrics import MetricsServer, WorkerMetrics
from twinline.ingest.registry import AssetRegistry
from twinline.ingest.subscriber import Delivery, Subscriber
from twinline.ingest.validate import Accepted, Validator
from twinline.uns.mqtturl import MqttUrl
from twinline.uns.topics import PREFIX, check_name, subscription

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]

_HEARTBEAT = """
INSERT INTO ingest_worker (worker, started_at, seen_at, metrics) VALUES (%s, %s, %s, %s)
ON CONFLICT (worker) DO UPDATE SET started_at = EXCLUDED.started_at, seen_at = EXCLUDED.seen_at,
    metrics = EXCLUDED.metrics
"""


def utc_now() -> datetime:
    """The wall clock, for programs (domain code receives a clock instead of calling this)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Everything one `twinline ingest run` is configured with."""

    dsn: str = field(repr=False)
    mqtt: MqttUrl
    group: str = "twinline-ingest"
    workers: int = 1
    name: str = ""  # client id / worker name prefix; default ingest-<host>-<group>
    site: str | None = None  # subscribe to one site's subtree only
    batch: BatchPolicy = field(default_factory=BatchPolicy)
    receive_maximum: int = 1000
    session_expiry_s: int = 3600
    max_future_s: float = 300.0
    not_before: datetime | None = None  # default: the plant epoch from the store
    heartbeat_s: float = 5.0
    asset_refresh_s: float = 30.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    shutdown_timeout_s: float = 15.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    @property
    def topic_filter(self) -> str:
        if self.site is None:
            return str(subscription(self.group))
        return f"$share/{check_name(self.group, 'group')}/{PREFIX}/{check_name(self.site, 'site')}/#"

    def worker_names(self) -> list[str]:
        base = self.name or f"ingest-{socket.gethostname()}-{self.group}"
        return [f"{base}-{i}" for i in range(self.workers)]


class IngestWorker:
    """One subscriber + one writer thread with its own database connection."""

    def __init__(self, config: IngestConfig, name: str, clock: Clock, stopping: threading.Event) -> None:
        self.config = config
        self.name = name
        self.clock = clock
        self._stopping = stopping  # set: give up retrying a dead database at shutdown
        self.metrics = WorkerMetrics(name)
        self.inbox: queue.Queue[Delivery] = queue.Queue(maxsize=2 * config.receive_maximum)
        self._draining = threading.Event()
        self.subscriber = Subscriber(config.mqtt, name, config.topic_filter, self.inbox,
                                     receive_maximum=config.receive_maximum,
                                     session_expiry_s=config.session_expiry_s)
        self.registry = AssetRegistry(refresh_s=config.asset_refresh_s)
        self.validator = Validator(not_before=config.not_before, max_future_s=config.max_future_s)
        self.started_at = clock()
        self.unacked = 0  # messages committed-or-not that could not be acknowledged at shutdown
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name=f"ingest-{name}", daemon=True)
        self._last_heartbeat = 0.0

    def start(self) -> None:
        self._thread.start()
        self.subscriber.start()

    def request_stop(self) -> None:
        """Unsubscribe (the rest of the share gets new messages), then drain what was received and stop."""
        self.subscriber.unsubscribe()
        self._draining.set()

    def join(self, timeout_s: float) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def close(self) -> None:
        self.subscriber.close(end_session=self.unacked == 0)
        if self._conn is not None:
            self._conn.close()

    # the worker thread

    def _run(self) -> None:
        batch = Batch()
        policy = self.config.batch
        inbox = self.inbox
        while True:
            if batch.started_at is None:
                timeout = self.config.heartbeat_s
            else:
                timeout = max(0.0, policy.max_wait_s - (time.monotonic() - batch.started_at))
            if self._draining.is_set():
                timeout = min(timeout, 0.05)
            try:
                item: Delivery | None = inbox.get(timeout=timeout) if timeout > 0 else inbox.get_nowait()
            except queue.Empty:
                item = None
            if item is not None:
                self._take(item, batch)
            if batch.messages and (batch.due(policy, time.monotonic()) or item is None):
                if not self._flush(batch):
                    return
                batch = Batch()
            if item is None and self._draining.is_set():
                break
            if time.monotonic() - self._last_heartbeat >= self.config.heartbeat_s:
                self._heartbeat()
        self._heartbeat()

    def _take(self, d: Delivery, batch: Batch) -> None:
        self.metrics.messages += 1
        now = self.clock()
        verdict = self.validator.check(d.topic, d.payload, now)
        if isinstance(verdict, Accepted):
            self.metrics.lag_s = (now - verdict.envelope.edge_ts).total_seconds()
        batch.add(verdict, now, time.monotonic())
        batch.acks.append((d.generation, d.mid, d.qos))

    def _flush(self, batch: Batch) -> bool:
        """Commit with retries, then acknowledge; False when shutdown gave up on an absent database."""
        delay = self.config.backoff_initial_s
        while True:
            try:
                conn = self._connection()
                t = time.monotonic()
                done = commit(conn, batch, self.registry, self.clock())
                self.metrics.db_latency_s.observe(time.monotonic() - t)
                break
            except (psycopg.OperationalError, StoreUnavailable) as exc:
                self.metrics.db_errors += 1
                self._drop_connection()
                log.warning("ingest worker %s: commit of %d messages failed (%s); retrying in %.1f s", self.name,
                            len(batch), str(exc).splitlines()[0] if str(exc) else type(exc).__name__, delay)
                if self._stopping.wait(delay):
                    self.unacked += len(batch.acks)
                    log.error("ingest worker %s: shutting down with %d messages not committed; the broker keeps "
                              "them for the next worker", self.name, len(batch.acks))
                    return False
                delay = min(delay * 2, self.config.backoff_max_s)
        if self.config.not_before is None and self.registry.epoch != self.validator.not_before:
            self.validator.not_before = self.registry.epoch
        m = self.metrics
        m.batches += 1
        m.envelopes += done.written.envelopes
        m.duplicates += done.written.duplicates
        m.rows += done.written.rows
        m.samples += done.samples
        m.statuses += done.statuses
        m.dead_letters.update(done.dead_letters)
        m.batch_samples.observe(batch.samples)
        acked = sum(self.subscriber.ack(gen, mid, qos) for gen, mid, qos in batch.acks)
        m.acked += acked
        self.unacked += len(batch.acks) - acked
        return True

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.config.dsn, connect_timeout_s=5.0)
            self.registry.refresh(self._conn)
            if self.config.not_before is None:
                self.validator.not_before = self.registry.epoch
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def _heartbeat(self) -> None:
        self._last_heartbeat = time.monotonic()
        try:
            conn = self._connection()
            with conn.transaction():
                conn.execute(_HEARTBEAT, (self.name, self.started_at, self.clock(), Jsonb(self.metrics.as_dict())))
        except (psycopg.OperationalError, StoreUnavailable) as exc:
            self._drop_connection()
            log.warning("ingest worker %s: heartbeat not written (%s)", self.name, type(exc).__name__)


class IngestService:
    """All workers of one `twinline ingest run`; `start`, then `stop` (flushes and acknowledges)."""

    def __init__(self, config: IngestConfig, clock: Clock = utc_now) -> None:
        self.config = config
        self._stopping = threading.Event()
        self.workers = [IngestWorker(config, name, clock, self._stopping) for name in config.worker_names()]
        self._metrics_server: MetricsServer | None = None

    def start(self) -> None:
        if self.config.metrics_port is not None:
            self._metrics_server = MetricsServer(self.config.metrics_host, self.config.metrics_port,
                                                 lambda: [w.metrics for w in self.workers])
        for w in self.workers:
            w.start()
        log.info("ingest: %d worker(s) on %s at %s", len(self.workers), self.config.topic_filter, self.config.mqtt)

    @property
    def metrics_port(self) -> int | None:
        return self._metrics_server.port if self._metrics_server is not None else None

    def wait_subscribed(self, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(w.subscriber.subscribed.wait(max(0.0, deadline - time.monotonic())) for w in self.workers)

    def stop(self) -> None:
        """Graceful: stop deliveries, drain and commit what was received, acknowledge, end the sessions."""
        for w in self.workers:
            w.request_stop()
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        for w in self.workers:
            if not w.join(max(0.0, deadline - time.monotonic())):
                self._stopping.set()  # the database is still away: stop retrying, keep the sessions
                w.join(10.0)
        for w in self.workers:
            w.close()
        if self._metrics_server is not None:
            self._metrics_server.close()

    def __enter__(self) -> IngestService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["Clock", "IngestConfig", "IngestService", "IngestWorker", "utc_now"]
