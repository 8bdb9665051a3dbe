"""One batch of validated messages and its single-transaction commit.

A batch gathers accepted envelopes, edge status updates and dead letters (with the MQTT acknowledgements they
owe, when they came from the broker) until it holds `max_samples` samples or is `max_wait_s` old. `commit`
writes all of it in ONE transaction: the registry check of the stations (unknown -> dead letter), the dead
letters, the envelopes through the writer, the edge agent upserts. It does not change the batch, so a caller
may simply call it again after a lost connection.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from twinline.ingest.registry import AssetRegistry
from twinline.ingest.validate import Accepted, StatusUpdate, Verdict, reason_code
from twinline.ingest.writer import DeadLetter, WriteResult, write_batch, write_dead_letters

_UPSERT_AGENT = """
INSERT INTO edge_agent (agent, line, online, changed_at, sources, stations)
VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb)
ON CONFLICT (agent) DO UPDATE SET line = EXCLUDED.line, online = EXCLUDED.online, changed_at = EXCLUDED.changed_at,
    sources = EXCLUDED.sources, stations = EXCLUDED.stations
WHERE edge_agent.changed_at <= EXCLUDED.changed_at
"""


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """Flush when the batch holds `max_samples` samples or its first message is `max_wait_s` old."""

    max_samples: int = 20_000
    max_wait_s: float = 0.2


@dataclass(slots=True)
class Batch:
    """Messages waiting for one commit; `acks` are (connection generation, mid, qos) owed to the broker."""

    accepted: list[Accepted] = field(default_factory=list)
    statuses: list[tuple[StatusUpdate, datetime]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    acks: list[tuple[int, int, int]] = field(default_factory=list)
    samples: int = 0
    messages: int = 0
    started_at: float | None = None

    def add(self, verdict: Verdict, received_at: datetime, started_at: float) -> None:
        if self.started_at is None:
            self.started_at = started_at
        self.messages += 1
        if isinstance(verdict, Accepted):
            self.accepted.append(verdict)
            self.samples += len(verdict.envelope.samples)
        elif isinstance(verdict, StatusUpdate):
            self.statuses.append((verdict, received_at))
        elif isinstance(verdict, DeadLetter):
            self.dead.append(verdict)

    def due(self, policy: BatchPolicy, monotonic_now: float) -> bool:
        if self.samples >= policy.max_samples:
            return True
        return self.started_at is not None and monotonic_now - self.started_at >= policy.max_wait_s

    def __len__(self) -> int:
        return self.messages


@dataclass(frozen=True, slots=True)
class Committed:
    """What one commit stored."""

    written: WriteResult
    dead_letters: Counter[str]
    statuses: int
    samples: int


def commit(conn: psycopg.Connection[Any], batch: Batch, registry: AssetRegistry, now: datetime) -> Committed:
    """Write the batch in one transaction; psycopg errors rise (the caller retries with backoff)."""
    registry.ensure(conn, (str(a.topic.asset) for a in batch.accepted), (s.line for s, _ in batch.statuses))
    good: list[Accepted] = []
    dead = list(batch.dead)
    for a in batch.accepted:
        if registry.known(str(a.topic.asset)):
            good.append(a)
        else:
            dead.append(a.unknown_asset(now))
    statuses = [(s, at) for s, at in batch.statuses if registry.known_line(s.line)]
    dead += [s.unknown_line(now) for s, _ in batch.statuses if not registry.known_line(s.line)]
    with conn.transaction():
        if dead:
            write_dead_letters(conn, dead)
        written = write_batch(conn, [(a.topic, a.envelope) for a in good])
        if statuses:
            with conn.cursor() as cur:
                cur.executemany(_UPSERT_AGENT, [_agent_row(s, at) for s, at in statuses])
    return Committed(written, Counter(reason_code(d.reason) for d in dead), len(statuses),
                     sum(len(a.envelope.samples) for a in good))


def _agent_row(update: StatusUpdate, received_at: datetime) -> tuple[Any, ...]:
    s = update.status
    return (update.agent, update.line, s.online, s.ts or received_at, json.dumps(s.sources), json.dumps(s.stations))


__all__ = ["Batch", "BatchPolicy", "Committed", "commit"]
