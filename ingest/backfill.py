"""Backfill: load recorded or simulated history through the SAME validation, registry check and writer.

Input is an iterable of (topic, raw payload bytes) — what the broker would have delivered, e.g. the lines
of a `{"topic", "payload"}` JSONL file — or of (topic, Envelope) pairs straight from the simulators'
history mode. Batches are committed like the live service's (batch.py); re-running a backfill adds nothing
(the envelope ledger recognises every envelope).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

import psycopg

from twinline.ingest.batch import Batch, BatchPolicy, commit
from twinline.ingest.registry import AssetRegistry
from twinline.ingest.service import Clock
from twinline.ingest.validate import Validator, Verdict
from twinline.uns.envelope import Envelope, encode
from twinline.uns.errors import ContractError
from twinline.uns.topics import ParsedTopic, parse_topic

BackfillItem: TypeAlias = tuple[str, bytes] | tuple[str | ParsedTopic, Envelope]


@dataclass(slots=True)
class BackfillCounts:
    """What a backfill stored: messages read, envelopes stored / already stored, rows, dead letters by code."""

    messages: int = 0
    envelopes: int = 0
    duplicates: int = 0
    rows: int = 0
    statuses: int = 0
    batches: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "envelopes": self.envelopes, "duplicates": self.duplicates,
                "rows": self.rows, "statuses": self.statuses, "batches": self.batches,
                "dead_letters": dict(self.dead_letters)}


def backfill(conn: psycopg.Connection[Any], items: Iterable[BackfillItem], clock: Clock, *,
             batch_samples: int = 20_000, max_future_s: float = 300.0,
             not_before: datetime | None = None) -> BackfillCounts:
    """Validate and write `items` in batches of about `batch_samples` samples; returns the counts.

    `not_before` defaults to the plant epoch stored with the assets; psycopg errors rise (nothing of the
    failing batch is stored, earlier batches are committed and a re-run skips them).
    """
    registry = AssetRegistry(refresh_s=float("inf"))
    registry.refresh(conn)
    validator = Validator(not_before=not_before or registry.epoch, max_future_s=max_future_s)
    counts = BackfillCounts()
    policy = BatchPolicy(max_samples=batch_samples, max_wait_s=float("inf"))
    batch = Batch()
    for topic, body in items:
        now = clock()
        batch.add(_verdict(validator, topic, body, now), now, time.monotonic())
        if batch.due(policy, time.monotonic()):
            _commit(conn, batch, registry, clock(), counts)
            batch = Batch()
    if batch.messages:
        _commit(conn, batch, registry, clock(), counts)
    return counts


def _verdict(validator: Validator, topic: str | ParsedTopic, body: bytes | Envelope, now: datetime) -> Verdict:
    if isinstance(body, Envelope):
        if isinstance(topic, str):
            try:
                parsed = parse_topic(topic)
            except ContractError:
                return validator.check(topic, encode(body), now)  # the same bad_topic dead letter as on the wire
        else:
            parsed = topic
        return validator.check_envelope(parsed, body, now)
    assert isinstance(topic, str)
    return validator.check(topic, body, now)


def _commit(conn: psycopg.Connection[Any], batch: Batch, registry: AssetRegistry, now: datetime,
            counts: BackfillCounts) -> None:
    done = commit(conn, batch, registry, now)
    counts.messages += batch.messages
    counts.envelopes += done.written.envelopes
    counts.duplicates += done.written.duplicates
    counts.rows += done.written.rows
    counts.statuses += done.statuses
    counts.dead_letters.update(done.dead_letters)
    counts.batches += 1


__all__ = ["BackfillCounts", "BackfillItem", "backfill"]
