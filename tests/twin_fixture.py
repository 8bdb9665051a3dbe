"""A small plant and row builders for the twin's integration tests (real database, hand-built events).

The plant: site SITE (unique per test), Asia/Shanghai, two 8 h shifts (D 08:00-16:00, N 20:00-04:00
local = 00:00-08:00 and 12:00-20:00 UTC) every day, a daily 60 min lunch at 12:00 local (04:00 UTC,
inside shift D) for every station; one laptop line `ar/l1` with stations s1, s2, final-test, products A
and B. Rows go in with plain SQL (twin reads ingest's tables; the test is the writer).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from twinline.uns.plant import Plant, parse_plant

PLANT_YAML = """
version: 1
site: {id: SITE, name: "Twin test site", timezone: Asia/Shanghai, epoch: "2026-01-01"}
settings: {runup_window_units: 5, runup_rate_fraction: 0.95, stale_after_s: 86400}  # hand-built rows are sparse
products:
  - {sku: A, name: "Product A", family: f}
  - {sku: B, name: "Product B", family: f}
calendar:
  shifts: [{name: D, start: "08:00", hours: 8}, {name: N, start: "20:00", hours: 8}]
  workdays: [mon, tue, wed, thu, fri, sat, sun]
  holidays: []
  planned_downtime:
    - {name: lunch, daily: "12:00", minutes: 60}
areas:
  - id: ar
    lines:
      - id: l1
        type: laptop
        stations:
          - {id: s1, protocol: opcua, key_process: true, required_data: [state, count],
             ideal_cycle_s: {A: 1.0, B: 2.0}}
          - {id: s2, protocol: opcua, required_data: [state, count, energy], ideal_cycle_s: {A: 1.0, B: 1.5}}
          - {id: final-test, protocol: mqtt, key_process: true, required_data: [state, count],
             ideal_cycle_s: {A: 0.8, B: 1.0}}
"""

DAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; shift D of 2026-03-02 local = 00:00-08:00 UTC
D_START, D_END = DAY, DAY + timedelta(hours=8)
LUNCH = (DAY + timedelta(hours=4), DAY + timedelta(hours=5))
_seq = itertools.count(1)


def plant_yaml(site: str) -> str:
    return PLANT_YAML.replace("SITE", site)


def load(dsn: str, site: str) -> Plant:
    """Parse the test plant for ``site`` and store it with ingest's loader (as `twinline plant load` does)."""
    from twinline.ingest.plant_store import load_plant_into

    body = plant_yaml(site)
    plant = parse_plant(body, f"<test plant {site}>")
    load_plant_into(dsn, plant, body)
    return plant


def at(minutes: float) -> datetime:
    """DAY + minutes."""
    return DAY + timedelta(minutes=minutes)


def insert_states(conn: psycopg.Connection[Any], rows: Iterable[Sequence[Any]]) -> None:
    """Rows (ts, asset, state, reason[, quality])."""
    data = [(r[0], r[1], r[2], r[3], r[4] if len(r) > 4 else "good", "test", next(_seq)) for r in rows]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO state_event (ts, asset, state, reason, quality, source, seq) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s)", data)


def insert_counts(conn: psycopg.Connection[Any], rows: Iterable[Sequence[Any]]) -> None:
    """Rows (ts, asset, product, good, scrap[, rework])."""
    data = [(r[0], r[1], r[2], r[3], r[4], r[5] if len(r) > 5 else 0, "test", next(_seq)) for r in rows]
    with conn.cursor() as cur, cur.copy("COPY count_event (ts, asset, product, good, scrap, rework, source, seq) "
                                        "FROM STDIN") as copy:
        for row in data:
            copy.write_row(row)


def insert_energy(conn: psycopg.Connection[Any], rows: Iterable[Sequence[Any]]) -> None:
    """Rows (ts, asset, energy_kwh)."""
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO energy_sample (ts, asset, energy_kwh, source, seq) VALUES (%s, %s, %s, %s, %s)",
                        [(r[0], r[1], r[2], "test", next(_seq)) for r in rows])


def spread(total: int, n: int) -> list[int]:
    """``total`` split into ``n`` near-equal non-negative parts."""
    base, rem = divmod(total, n)
    return [base + (1 if i < rem else 0) for i in range(n)]


def classic_shift(conn: psycopg.Connection[Any], station: str) -> None:
    """The classic example on ``station`` in shift D: 480 min scheduled, 60 min lunch (PDOT), 47 min failure.

    PBT 420 min, APT 373 min, ideal 1.0 s (product A), PQ 19,271, GQ 18,848 -> A 0.8881, E 0.8611,
    QR 0.9780, OEE 0.7479. Counts: one row every 10 s over the shift (2,880 rows across 8 UTC hours).
    """
    insert_states(conn, [
        (DAY - timedelta(hours=1), station, "NST", "non_scheduled"),
        (DAY, station, "PRD", "run"),
        (at(60), station, "UDT", "failure"),
        (at(107), station, "PRD", "run"),
        (D_END, station, "NST", "non_scheduled"),
    ])
    n = 8 * 360
    goods, scraps = spread(18_848, n), spread(19_271 - 18_848, n)
    insert_counts(conn, [(DAY + timedelta(seconds=10 * i + 5), station, "A", g, s)
                         for i, (g, s) in enumerate(zip(goods, scraps, strict=True))])


def connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)
