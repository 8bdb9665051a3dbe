"""Hourly rollups give the same rows on both flavors, late rows included (after refresh_rollups)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from twinline.ingest.errors import IngestError
from twinline.ingest.migrate import refresh_rollups

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 10, 6, 0, tzinfo=UTC)  # fixed past hours: nothing here depends on the wall clock
A, B = "tst/assy/l1/s1", "tst/assy/l1/s2"


def _counts(start: datetime) -> list[tuple[Any, ...]]:
    """Count rows over three hours, two stations, two products and no product; edges of the hour included."""
    rows: list[tuple[Any, ...]] = []
    for i in range(36):
        ts = start + timedelta(minutes=5 * i)
        rows.append((ts, A if i % 3 else B, (None, "A1", "B2")[i % 3], i % 4, i % 2, i % 5 == 0))
    rows.append((start + timedelta(hours=1) - timedelta(microseconds=1), A, "A1", 7, 0, 0))  # last instant of hour
    return rows


def _energy(start: datetime) -> list[tuple[Any, ...]]:
    # dyadic kWh values sum exactly in any order, so materialized and on-the-fly sums are bit-identical
    return [(start + timedelta(minutes=7 * i), A if i % 2 else B, 0.25 * (i % 5)) for i in range(30)]


def _insert(dsn: str, counts: list[tuple[Any, ...]], energy: list[tuple[Any, ...]], seq0: int = 0) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO count_event (ts, asset, product, good, scrap, rework, source, seq) "
                        "VALUES (%s, %s, %s, %s, %s, %s::int, 'test', %s)",
                        [(*r, seq0 + i) for i, r in enumerate(counts)])
        cur.executemany("INSERT INTO energy_sample (ts, asset, energy_kwh, source, seq) "
                        "VALUES (%s, %s, %s, 'test', %s)",
                        [(*r, seq0 + i) for i, r in enumerate(energy)])


def _rollups(dsn: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with psycopg.connect(dsn) as conn:
        counts = conn.execute("SELECT bucket, asset, product, good, scrap, rework, events FROM count_hourly "
                              "ORDER BY bucket, asset, product NULLS FIRST").fetchall()
        energy = conn.execute("SELECT bucket, asset, energy_kwh, samples FROM energy_hourly "
                              "ORDER BY bucket, asset").fetchall()
    return counts, energy


def _expected(counts: list[tuple[Any, ...]], energy: list[tuple[Any, ...]]) -> tuple[list[Any], list[Any]]:
    c: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for ts, asset, product, good, scrap, rework in counts:
        acc = c[(ts.replace(minute=0, second=0, microsecond=0), asset, product)]
        for k, v in enumerate((good, scrap, int(rework), 1)):
            acc[k] += v
    e: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0, 0])
    for ts, asset, kwh in energy:
        acc2 = e[(ts.replace(minute=0, second=0, microsecond=0), asset)]
        acc2[0] += kwh
        acc2[1] += 1
    ckey = sorted(c, key=lambda k: (k[0], k[1], k[2] is not None, k[2] or ""))
    return [(*k, *c[k]) for k in ckey], [(*k, *e[k]) for k in sorted(e)]


@pytest.mark.smoke
def test_rollups_match_raw_rows_including_late_rows(any_db_dsn: str) -> None:
    counts, energy = _counts(T0), _energy(T0)
    _insert(any_db_dsn, counts, energy)
    refresh_rollups(any_db_dsn, T0, T0 + timedelta(hours=4))
    assert _rollups(any_db_dsn) == _expected(counts, energy)

    late_c = [(T0 + timedelta(minutes=30), A, "A1", 5, 1, 0), (T0 + timedelta(minutes=31), B, None, 2, 0, 1)]
    late_e = [(T0 + timedelta(minutes=45), A, 1.5)]
    _insert(any_db_dsn, late_c, late_e, seq0=1000)
    refresh_rollups(any_db_dsn, T0 + timedelta(minutes=20), T0 + timedelta(minutes=50))  # widened to the hour
    assert _rollups(any_db_dsn) == _expected(counts + late_c, energy + late_e)


@pytest.mark.timescale
def test_both_flavors_return_identical_rows(plain_db_dsn: str, timescale_db_dsn: str) -> None:
    results = []
    for dsn in (plain_db_dsn, timescale_db_dsn):
        _insert(dsn, _counts(T0), _energy(T0))
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert refresh_rollups(conn, None, None) == (dsn == timescale_db_dsn)
        _insert(dsn, _counts(T0 + timedelta(minutes=2)), [], seq0=5000)  # late into materialized hours
        refresh_rollups(dsn, T0 - timedelta(days=1), T0 + timedelta(days=1))
        results.append(_rollups(dsn))
    assert results[0] == results[1]
    assert len(results[0][0]) > 6


@pytest.mark.timescale
def test_refresh_needs_a_connection_outside_a_transaction(timescale_db_dsn: str) -> None:
    with psycopg.connect(timescale_db_dsn) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(IngestError, match="outside a transaction"):
            refresh_rollups(conn, T0, T0 + timedelta(hours=1))
        conn.rollback()
        assert refresh_rollups(conn, T0, T0 + timedelta(hours=1)) is True
        assert conn.autocommit is False
    with pytest.raises(IngestError, match="has no time zone"):
        refresh_rollups(timescale_db_dsn, datetime(2025, 3, 10), None)  # naive on purpose
