"""The batch writer: envelopes -> event tables by binary COPY, idempotent by envelope.

Design (issue 3, part 4). A per-row conflict check (COPY into a stage, then INSERT ... ON CONFLICT) costs
about two thirds of COPY's speed, and on a hypertable a unique index would have to include the time column.
So idempotency is decided per *envelope*, not per row: in one transaction

1. `INSERT INTO envelope_ledger ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING source, seq`
   claims the envelopes of the batch that are not stored yet (one ledger row per envelope of many samples);
2. the samples of the claimed envelopes only are written with plain binary COPY into the six event tables;
3. commit.

A re-sent or overlapping batch claims nothing it already stored, so it adds no row. Two workers that got the
same envelope (shared subscriptions re-deliver to another worker after a crash, out of order) race on the
ledger's primary key: the second blocks on the first's uncommitted key, then claims nothing once the first
commits, or claims it if the first rolled back. Keys are claimed in sorted order, so two overlapping batches
lock in the same order and cannot deadlock each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

import psycopg

from twinline.ingest.rows import BUILDERS, DEAD_LETTER_COLUMNS, DEAD_LETTER_TYPES, TABLES
from twinline.uns.envelope import Envelope
from twinline.uns.topics import PREFIX, AssetPath, Channel, ParsedTopic

Target: TypeAlias = ParsedTopic | tuple[AssetPath, Channel]
Item: TypeAlias = tuple[Target, Envelope]

_CLAIM = """
INSERT INTO envelope_ledger (source, seq, topic, samples)
SELECT * FROM unnest(%s::text[], %s::int8[], %s::text[], %s::int4[])
ON CONFLICT (source, seq) DO NOTHING
RETURNING source, seq
"""

_DEAD_COPY = f"COPY dead_letter ({', '.join(DEAD_LETTER_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one batch did: envelopes stored, envelopes recognised as already stored, rows per table."""

    envelopes: int
    duplicates: int
    rows_by_table: Mapping[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.rows_by_table.values())


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input that did not fit: the raw bytes, the field that failed (may be empty) and why."""

    received_at: datetime
    topic: str
    payload: bytes
    reason: str
    field: str = ""
    source: str | None = None
    seq: int | None = None


def _target(where: Target) -> tuple[str, Channel]:
    if isinstance(where, ParsedTopic):
        if where.channel is None:
            raise ValueError(f"{where.asset}: an edge status topic carries no samples")
        return str(where.asset), where.channel
    asset, channel = where
    return str(asset), channel


def write_batch(conn: psycopg.Connection[Any], items: Sequence[Item] | Iterable[Item]) -> WriteResult:
    """Store validated envelopes exactly once in effect; one transaction (a savepoint inside an open one).

    `items` pairs each envelope with its topic (a data ParsedTopic, or the station's AssetPath and Channel).
    Envelopes repeated inside the batch or already in the ledger are counted as duplicates and write nothing.
    """
    unique: dict[tuple[str, int], tuple[str, Channel, Envelope]] = {}
    repeated = 0
    for where, env in items:
        key = (env.source, env.seq)
        if key in unique:
            repeated += 1
            continue
        asset, channel = _target(where)
        unique[key] = (asset, channel, env)
    if not unique:
        return WriteResult(0, repeated, {})
    keys = sorted(unique)
    topics = [f"{PREFIX}/{unique[k][0]}/{unique[k][1].value}" for k in keys]
    counts = [len(unique[k][2].samples) for k in keys]
    rows_by_table: dict[str, int] = {}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_CLAIM, ([k[0] for k in keys], [k[1] for k in keys], topics, counts))
        claimed = cur.fetchall()
        by_channel: dict[Channel, list[tuple[str, Envelope]]] = {}
        for source, seq in claimed:
            asset, channel, env = unique[(source, seq)]
            by_channel.setdefault(channel, []).append((asset, env))
        for channel, group in by_channel.items():
            spec, build = TABLES[channel], BUILDERS[channel]
            n = 0
            with cur.copy(spec.copy_sql) as copy:
                copy.set_types(list(spec.types))
                write_row = copy.write_row
                for asset, env in group:
                    rows = build(asset, env)
                    n += len(rows)
                    for row in rows:
                        write_row(row)
            rows_by_table[spec.table] = n
    return WriteResult(len(claimed), repeated + len(unique) - len(claimed), rows_by_table)


def write_dead_letters(conn: psycopg.Connection[Any], letters: Iterable[DeadLetter]) -> int:
    """Append dead letters (binary COPY); one transaction (a savepoint inside an open one). Returns the count."""
    n = 0
    with conn.transaction(), conn.cursor() as cur, cur.copy(_DEAD_COPY) as copy:
        copy.set_types(list(DEAD_LETTER_TYPES))
        for d in letters:
            copy.write_row((d.received_at, d.topic, d.payload, d.field, d.reason, d.source, d.seq))
            n += 1
    return n


__all__ = ["DeadLetter", "Item", "Target", "WriteResult", "write_batch", "write_dead_letters"]
