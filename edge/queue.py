"""The durable queue: SQLite in WAL mode between the sources and the uplink.

Tables: `sample` (normalised samples not yet in an envelope), `envelope` (sealed envelopes with their
source, seq, topic and encoded payload, waiting for the broker's PUBACK), `seq` (next sequence number
per source), `kv` (normaliser state: last counter values, current product, last state — committed in
the SAME transaction as the samples they produced) and `stat` (overflow counters).

Guarantees: `append` commits before it returns, so a batch is on disk before the source's next batch
is read. `seal` moves samples into envelopes and assigns seq in one transaction, BEFORE anything is
published, so a re-send after a crash carries the original source, seq and samples (ingest dedupes by
source + seq). `ack` deletes an envelope only after its PUBACK. The queue is bounded at `max_samples`
(samples + samples in envelopes); when full, `drop_oldest` deletes the oldest data (counted in
`dropped`, logged) and `reject_new` refuses the batch with QueueFull (the caller blocks its source).
`synchronous=normal` survives a killed agent (WAL without fsync per commit); `full` also a power cut.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal

import msgspec

from twinline.edge.errors import QueueError, QueueFull
from twinline.uns.envelope import SCHEMA_VERSION, Sample
from twinline.uns.topics import AssetPath, Channel, data_topic

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sample (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, station TEXT NOT NULL,
    channel TEXT NOT NULL, recv_us INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS envelope (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, seq INTEGER NOT NULL,
    topic TEXT NOT NULL, n INTEGER NOT NULL, payload BLOB NOT NULL, UNIQUE (source, seq));
CREATE TABLE IF NOT EXISTS seq (source TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stat (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_enc = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A sealed envelope to publish."""

    id: int
    source: str
    seq: int
    topic: str
    n: int
    payload: bytes


class DurableQueue:
    """One SQLite file; used from one thread (the agent's event loop)."""

    def __init__(self, path: Path, *, max_samples: int, overflow: Literal["drop_oldest", "reject_new"],
                 synchronous: Literal["normal", "full"] = "normal") -> None:
        self.path = path
        self.max_samples = max_samples
        self.overflow = overflow
        self.synchronous = synchronous
        self._db: sqlite3.Connection | None = None
        self.pending = 0  # samples not yet sealed
        self.sealed = 0  # samples in envelopes not yet acked
        self.dropped = 0
        self.rejected = 0
        self._full_logged = False

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> DurableQueue:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            db.executescript(_SCHEMA)
            self._db = db
            self.pending = self._scalar("SELECT count(*) FROM sample")
            self.sealed = self._scalar("SELECT coalesce(sum(n), 0) FROM envelope")
            self.dropped = self._scalar("SELECT coalesce(max(value), 0) FROM stat WHERE key = 'dropped'")
            self.rejected = self._scalar("SELECT coalesce(max(value), 0) FROM stat WHERE key = 'rejected'")
        except (sqlite3.Error, OSError) as exc:
            raise QueueError(f"cannot open queue {self.path}: {exc}") from exc
        log.info("queue %s: %d samples pending, %d in un-acked envelopes", self.path, self.pending, self.sealed)
        return self

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> DurableQueue:
        return self.open()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise QueueError("queue is not open")
        return self._db

    @property
    def depth(self) -> int:
        return self.pending + self.sealed

    def _scalar(self, sql: str, args: Sequence[object] = ()) -> int:
        row = self.db.execute(sql, args).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # ------------------------------------------------------------------ writing

    def load_kv(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM kv").fetchall())

    def append(self, source: str, samples: Sequence[tuple[AssetPath, Channel, Sample]], kv: dict[str, str],
               recv_ts: datetime) -> None:
        """Commit one batch (samples + the normaliser state that produced them) in one transaction."""
        n = len(samples)
        if n and self.depth + n > self.max_samples and self.overflow == "reject_new":
            self.rejected += 1
            if not self._full_logged:
                log.warning("queue %s full (%d samples): reject_new, source %s blocked until the uplink "
                            "drains it", self.path, self.depth, source)
                self._full_logged = True
            self._bump("rejected", 1)
            raise QueueFull(f"queue full ({self.depth} of {self.max_samples} samples)")
        recv_us = int(recv_ts.timestamp() * 1_000_000)
        rows = [(source, str(st), ch.value, recv_us, _enc.encode(s)) for st, ch, s in samples]
        try:
            self.db.execute("BEGIN IMMEDIATE")
            if n and self.depth + n > self.max_samples:
                self._drop_oldest(self.depth + n - self.max_samples)
            self.db.executemany("INSERT INTO sample (source, station, channel, recv_us, body) VALUES (?,?,?,?,?)",
                                rows)
            if kv:
                self.db.executemany("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                                    "SET value = excluded.value", kv.items())
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise QueueError(f"queue {self.path}: cannot append ({exc})") from exc
        self.pending += n
        self._full_logged = self._full_logged and self.depth >= self.max_samples

    def _drop_oldest(self, excess: int) -> None:
        """Inside a transaction: delete the oldest envelopes, then the oldest samples, until `excess` fit."""
        dropped = 0
        while dropped < excess:
            row = self.db.execute("SELECT id, n FROM envelope ORDER BY id LIMIT 1").fetchone()
            if row is None:
                break
            self.db.execute("DELETE FROM envelope WHERE id = ?", (row[0],))
            self.sealed -= row[1]
            dropped += row[1]
        if dropped < excess:
            need = excess - dropped
            cur = self.db.execute("DELETE FROM sample WHERE id IN (SELECT id FROM sample ORDER BY id LIMIT ?)",
                                  (need,))
            self.pending -= cur.rowcount
            dropped += cur.rowcount
        self.dropped += dropped
        self.db.execute("INSERT INTO stat (key, value) VALUES ('dropped', ?) ON CONFLICT(key) DO UPDATE "
                        "SET value = excluded.value", (self.dropped,))
        log.warning("queue %s full (max %d samples): drop_oldest dropped %d samples (%d in total)", self.path,
                    self.max_samples, dropped, self.dropped)

    def _bump(self, key: str, by: int) -> None:
        self.db.execute("INSERT INTO stat (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                        "SET value = value + excluded.value", (key, by))

    def _rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    # ------------------------------------------------------------------ sealing

    def seal(self, max_per_envelope: int, limit: int = 50_000) -> int:
        """Group pending samples into envelopes (one station + channel each), assign seq; returns the count."""
        if self.pending == 0:
            return 0
        try:
            self.db.execute("BEGIN IMMEDIATE")
            rows = self.db.execute("SELECT id, source, station, channel, recv_us, body FROM sample ORDER BY id "
                                   "LIMIT ?", (limit,)).fetchall()
            if not rows:
                self.db.execute("COMMIT")
                return 0
            groups: dict[tuple[str, str, str], list[tuple[int, bytes]]] = {}
            for _, source, station, channel, recv_us, body in rows:
                groups.setdefault((source, station, channel), []).append((recv_us, body))
            made = 0
            for (source, station, channel), items in groups.items():
                topic = data_topic(station, channel)
                for start in range(0, len(items), max_per_envelope):
                    chunk = items[start:start + max_per_envelope]
                    seq = self._next_seq(source)
                    payload = _payload(source, seq, min(r for r, _ in chunk), [b for _, b in chunk])
                    self.db.execute("INSERT INTO envelope (source, seq, topic, n, payload) VALUES (?,?,?,?,?)",
                                    (source, seq, topic, len(chunk), payload))
                    made += 1
            self.db.execute("DELETE FROM sample WHERE id <= ?", (rows[-1][0],))
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise QueueError(f"queue {self.path}: cannot seal envelopes ({exc})") from exc
        self.pending -= len(rows)
        self.sealed += len(rows)
        return made

    def _next_seq(self, source: str) -> int:
        row = self.db.execute("SELECT next FROM seq WHERE source = ?", (source,)).fetchone()
        seq = int(row[0]) if row else 1
        self.db.execute("INSERT INTO seq (source, next) VALUES (?, ?) ON CONFLICT(source) DO UPDATE "
                        "SET next = excluded.next", (source, seq + 1))
        return seq

    # ------------------------------------------------------------------ reading / acking

    def outgoing(self, after_id: int, limit: int) -> list[Outgoing]:
        rows = self.db.execute("SELECT id, source, seq, topic, n, payload FROM envelope WHERE id > ? ORDER BY id "
                               "LIMIT ?", (after_id, limit)).fetchall()
        return [Outgoing(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in rows]

    def ack(self, ids: Iterable[int]) -> int:
        """Delete acknowledged envelopes; returns the number of samples they carried."""
        ids = list(ids)
        if not ids:
            return 0
        try:
            self.db.execute("BEGIN IMMEDIATE")
            marks = ",".join("?" * len(ids))
            n = self._scalar(f"SELECT coalesce(sum(n), 0) FROM envelope WHERE id IN ({marks})", ids)
            self.db.execute(f"DELETE FROM envelope WHERE id IN ({marks})", ids)
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise QueueError(f"queue {self.path}: cannot delete acked envelopes ({exc})") from exc
        self.sealed -= n
        return n


def _payload(source: str, seq: int, recv_us: int, bodies: list[bytes]) -> bytes:
    """The envelope JSON built from the already-encoded samples (no decode / re-encode)."""
    edge_ts = datetime.fromtimestamp(recv_us / 1_000_000, UTC)
    return b"".join((b'{"v":', str(SCHEMA_VERSION).encode(), b',"source":', _enc.encode(source), b',"seq":',
                     str(seq).encode(), b',"edge_ts":', _enc.encode(edge_ts), b',"samples":[', b",".join(bodies),
                     b"]}"))


__all__ = ["DurableQueue", "Outgoing"]
