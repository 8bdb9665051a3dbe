"""Benchmark: the batch writer (ledger claim + binary COPY) beside raw binary COPY of the same rows.

Run: `python bench/writer.py [--rows 1000000] [--per-envelope 100] [--batch-envelopes 100]` against
TWINLINE_TEST_DSN (or TWINLINE_DSN; default postgresql://postgres@127.0.0.1:5432/postgres). Two fresh
databases with the migrated schema (plain PostgreSQL flavor: BRIN + btree indexes on the event tables);
the same process_sample rows go (1) through `write_batch` in batches of envelopes and (2) by one raw binary
COPY of pre-built row tuples into the same indexed table — the physical limit, measured in the same run.
A third pass re-sends every batch to the writer and must add no row.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import conninfo, sql

from twinline.ingest.migrate import migrate
from twinline.ingest.rows import TABLES, rows_of
from twinline.ingest.writer import Item, write_batch
from twinline.uns.envelope import Envelope, ProcessSample
from twinline.uns.topics import AssetPath, Channel


@contextmanager
def _fresh_db(server: str) -> Iterator[str]:
    name = f"tl_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        dsn = conninfo.make_conninfo(server, dbname=name)
        migrate(dsn, "postgresql")
        yield dsn
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _batches(rows: int, per_env: int, batch_envs: int) -> list[list[Item]]:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    stations = [AssetPath("site1", "fab", "L1", f"st{i:02d}") for i in range(20)]
    batches: list[list[Item]] = []
    batch: list[Item] = []
    for e in range(rows // per_env):
        st = stations[e % len(stations)]
        base = t0 + timedelta(seconds=e)
        samples = [ProcessSample(base + timedelta(milliseconds=i), "temp", 20.0 + i, "degC") for i in range(per_env)]
        batch.append(((st, Channel.PROCESS), Envelope(1, f"edge-{e % 7}", e, base, list(samples))))
        if len(batch) == batch_envs:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches


def _count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM process_sample").fetchone()
        return int(row[0]) if row else 0


def _fmt(times: list[float]) -> str:
    return " ".join(f"{x:.2f}" for x in times)


def raw_copy(conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> float:
    """The physical limit: bare binary COPY of `rows` into process_sample, committed; returns seconds."""
    spec = TABLES[Channel.PROCESS]
    t = time.perf_counter()
    with conn.cursor() as cur, cur.copy(spec.copy_sql) as copy:
        copy.set_types(list(spec.types))
        for row in rows:
            copy.write_row(row)
    conn.commit()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--per-envelope", type=int, default=100)
    ap.add_argument("--batch-envelopes", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    server = os.environ.get("TWINLINE_TEST_DSN") or os.environ.get("TWINLINE_DSN") or \
        "postgresql://postgres@127.0.0.1:5432/postgres"
    batches = _batches(args.rows, args.per_envelope, args.batch_envelopes)
    raw_rows = [row for b in batches for (asset, ch), env in b for row in rows_of(ch, str(asset), env)]
    n = len(raw_rows)

    raw_times, writer_times, resend_times = [], [], []
    with _fresh_db(server) as raw_dsn, _fresh_db(server) as w_dsn, \
            psycopg.connect(raw_dsn) as raw_conn, psycopg.connect(w_dsn) as w_conn:
        for _ in range(args.rounds):  # alternate the passes; best of N damps checkpoints and noise
            for conn in (raw_conn, w_conn):
                conn.execute("TRUNCATE process_sample, envelope_ledger")
                conn.commit()
                conn.execute("CHECKPOINT")
                conn.commit()
            raw_times.append(raw_copy(raw_conn, raw_rows))
            t = time.perf_counter()
            stored = sum(write_batch(w_conn, b).rows for b in batches)
            writer_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            again = sum(write_batch(w_conn, b).rows for b in batches)
            resend_times.append(time.perf_counter() - t)
            assert stored == n and again == 0 and _count(w_dsn) == n == _count(raw_dsn), "row counts differ"
    raw_s, writer_s, resend_s = min(raw_times), min(writer_times), min(resend_times)

    writer_rate, raw_rate = n / writer_s, n / raw_s
    print(f"{'pass':<28}{'rows':>10}{'seconds':>10}{'rows/s':>12}")
    print(f"{'raw binary COPY (limit)':<28}{n:>10}{raw_s:>10.2f}{raw_rate:>12.0f}")
    print(f"{'writer (ledger + COPY)':<28}{n:>10}{writer_s:>10.2f}{writer_rate:>12.0f}")
    print(f"{'writer, batches re-sent':<28}{n:>10}{resend_s:>10.2f}{n / resend_s:>12.0f}  (0 rows added)")
    print(f"best of {args.rounds} rounds; raw s {_fmt(raw_times)}; writer s {_fmt(writer_times)}")
    print(f"envelopes: {sum(len(b) for b in batches)} of {args.per_envelope} samples, "
          f"{len(batches)} batches of {args.batch_envelopes}")
    print(f"writer: {writer_rate:.0f} rows/s; limit {raw_rate:.0f} rows/s; ratio {writer_rate / raw_rate:.2f}")


if __name__ == "__main__":
    main()
