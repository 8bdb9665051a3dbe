"""Benchmark: KPIs through twin.service.compute vs the naive way (raw rows into polars), same run, same data.

Generates 100 stations x 90 days (10 lines of 10 stations) with SQL generate_series into a fresh database on
the configured server (TWINLINE_DSN, else TWINLINE_TEST_DSN, else postgresql://postgres@127.0.0.1:5432/postgres):
one count row per station per minute (~13M rows at scale 1) and one state entry every 5 minutes (~2.6M).
`--scale` shrinks the number of days. Then times, for one line:

  Q1  the whole period, one window        (compute: GROUP BY in the database, hourly rollups)
  Q2  the last 7 days per shift            (compute, per_shift=True: one query for all shifts)

and the same figures the naive way: SELECT the raw count and state rows of the line into polars and sum /
classify there. Both must give identical counts and time elements (checked); outside the timing, E10 times,
failures, downtime events and top loss reasons of every (period, station) are checked against the single-period
engine functions on the naive rows too. The database is dropped at the end unless --keep.
Last line: `kpi: <x> s per query; limit <y> s per query; ratio <r>` where x is compute's
mean time per query, y the naive way's (the limit this design must beat), r = y / x.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import psycopg
from psycopg import conninfo, sql

from twinline.ingest.migrate import migrate
from twinline.ingest.plant_store import load_plant_into
from twinline.twin import service
from twinline.twin.e10 import e10_times
from twinline.twin.episodes import downtime_events, failure_episodes
from twinline.twin.losses import top_reasons
from twinline.twin.results import KpiResult
from twinline.twin.timemodel import seconds_by_reason, time_elements
from twinline.uns.plant import Plant, parse_plant

START = datetime(2026, 1, 5, tzinfo=UTC)
LINES, STATIONS = 10, 10


def plant_yaml() -> str:
    lines = []
    for li in range(LINES):
        sts = ", ".join(f"{{id: s{si}, protocol: opcua, ideal_cycle_s: {{P1: 20.0, P2: 22.0, P3: 25.0}}}}"
                        for si in range(STATIONS))
        lines.append(f"      - {{id: l{li}, type: generic, stations: [{sts}]}}")
    return "\n".join([
        "version: 1",
        'site: {id: bench, name: "bench site", timezone: UTC, epoch: "2026-01-01"}',
        "products: [{sku: P1}, {sku: P2}, {sku: P3}]",
        "calendar:",
        '  shifts: [{name: A, start: "08:00", hours: 12}, {name: B, start: "20:00", hours: 12}]',
        "  workdays: [mon, tue, wed, thu, fri, sat, sun]",
        "  holidays: []",
        '  planned_downtime: [{name: meeting, daily: "08:00", minutes: 15}]',
        "areas:",
        "  - id: a",
        "    lines:",
        *lines,
    ]) + "\n"


_COUNTS = """
INSERT INTO count_event (ts, asset, product, good, scrap, rework, source, seq)
SELECT ts, a.asset, 'P' || ((extract(epoch FROM ts)::bigint / 28800) %% 3 + 1),
       1 + (extract(epoch FROM ts)::bigint / 60 + a.n) %% 3,
       ((extract(epoch FROM ts)::bigint / 60 + a.n) %% 50 = 0)::int,
       0, 'bench', extract(epoch FROM ts)::bigint
FROM (SELECT 'bench/a/l' || l || '/s' || s AS asset, l * 10 + s AS n FROM generate_series(0, 9) l,
      generate_series(0, 9) s) a,
     generate_series(%(t0)s::timestamptz + interval '30 s', %(t1)s::timestamptz - interval '1 s', interval '60 s') ts
"""
_STATES = """
INSERT INTO state_event (ts, asset, state, reason, source, seq)
SELECT ts, a.asset, (ARRAY['PRD','PRD','PRD','PRD','PRD','PRD','PRD','SBY','UDT','SDT'])[k + 1],
       (ARRAY['run','run','run','run','run','run','run','starved','failure','setup'])[k + 1], 'bench', 1
FROM (SELECT 'bench/a/l' || l || '/s' || s AS asset, l * 10 + s AS n FROM generate_series(0, 9) l,
      generate_series(0, 9) s) a,
     generate_series(%(t0)s::timestamptz, %(t1)s::timestamptz - interval '1 s', interval '300 s') ts,
     LATERAL (SELECT ((extract(epoch FROM ts)::bigint / 300) * 7 + a.n) %% 10 AS k) kk
"""


def generate(dsn: str, t1: datetime) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute(_COUNTS, {"t0": START, "t1": t1})
        conn.execute(_STATES, {"t0": START, "t1": t1})
        rows = conn.execute("SELECT (SELECT count(*) FROM count_event), (SELECT count(*) FROM state_event)").fetchone()
        assert rows is not None
        print(f"generated {rows[0]:,} count rows, {rows[1]:,} state rows in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        # a live store is vacuumed by autovacuum (insert-only tables too, PostgreSQL 13+); freshly generated
        # tables are not yet, and without a visibility map every index-only read goes to the heap
        conn.execute("VACUUM ANALYZE")
        flavor = conn.execute("SELECT flavor FROM store_info").fetchone()
        if flavor is not None and flavor[0] == "timescaledb":
            conn.execute("CALL refresh_continuous_aggregate('count_hourly', NULL, NULL)")
            conn.execute("CALL refresh_continuous_aggregate('energy_hourly', NULL, NULL)")
        print(f"vacuum analyze + materialise rollups: {time.perf_counter() - t:.1f} s")


def naive(conn: psycopg.Connection, plant: Plant, line: str, t0: datetime, t1: datetime,
          periods: list[tuple[datetime, datetime]]
          ) -> tuple[dict[tuple[int, str], tuple[Any, dict[str, tuple[Any, ...]]]], pl.DataFrame]:
    """Raw rows into polars, then sums and time elements per (period, station) there; also the state frame."""
    ln = plant.lines[line]
    stations = [str(s.path) for s in ln.stations]
    counts = pl.DataFrame(conn.execute(
        "SELECT asset, ts, product, good, scrap, rework FROM count_event "
        "WHERE asset = ANY(%s) AND ts >= %s AND ts < %s",
        (stations, t0, t1)).fetchall(), schema=["station", "ts", "product", "good", "scrap", "rework"], orient="row")
    states = pl.DataFrame(conn.execute(
        "SELECT asset, ts, state, reason, quality FROM state_event "
        "WHERE asset = ANY(%s) AND ts < %s ORDER BY asset, ts",
        (stations, t1)).fetchall(), schema=["station", "start", "state", "reason", "quality"], orient="row")
    states = states.with_columns(pl.col("start").dt.convert_time_zone("UTC"))
    counts = counts.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
    states = states.with_columns(pl.col("start").shift(-1).over("station").fill_null(t1).alias("end"),
                                 pl.when(pl.col("quality") == "good").then(pl.lit("good")).otherwise(pl.lit("nodata"))
                                 .alias("quality"))
    out: dict[tuple[int, str], tuple[Any, dict[str, tuple[Any, ...]]]] = {}
    for k, (a, b) in enumerate(periods):
        sums = (counts.filter((pl.col("ts") >= a) & (pl.col("ts") < b))
                .group_by("station", "product")
                .agg(pl.col("good").sum(), pl.col("scrap").sum(), pl.col("rework").sum()))
        for st in ln.stations:
            path = str(st.path)
            sched = [(w.start, w.end) for w in ln.calendar.shift_windows(a, b)]
            pdt = [(w.start, w.end) for w in ln.calendar.planned_downtime_windows(a, b, path)]
            el = time_elements(states.filter(pl.col("station") == path), a, b, sched, pdt)
            by = {r[1]: (r[2], r[3], r[4]) for r in sums.filter(pl.col("station") == path).iter_rows()}
            out[(k, path)] = (el, by)
    return out, states


def engine_check(plant: Plant, line: str, states: pl.DataFrame, res: KpiResult) -> bool:
    """E10 times, failures, downtime events and top reasons of compute equal the single-period functions."""
    ln = plant.lines[line]
    for p in (res.whole, *res.shifts):
        for st in ln.stations:
            path = str(st.path)
            mine, got = states.filter(pl.col("station") == path), p.stations[path]
            sched = [(w.start, w.end) for w in ln.calendar.shift_windows(p.t0, p.t1)]
            pdt = [(w.start, w.end) for w in ln.calendar.planned_downtime_windows(p.t0, p.t1, path)]
            episodes = failure_episodes(mine, p.t0, p.t1)
            top = top_reasons(seconds_by_reason(mine, p.t0, p.t1, sched, pdt), 5)
            if (e10_times(mine, p.t0, p.t1) != got.e10.times or episodes.height != got.e10.failures
                    or downtime_events(mine, p.t0, p.t1) != got.e10.downtime_events
                    or [(r[0], r[1], r[2], r[3]) for r in top.iter_rows()]
                    != [(r.element, r.state, r.reason, r.seconds) for r in got.top_reasons]):
                print(f"engine mismatch at {path} {p.label}", file=sys.stderr)
                return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the 90 days (default 1.0)")
    ap.add_argument("--dsn", default=os.environ.get("TWINLINE_DSN") or os.environ.get("TWINLINE_TEST_DSN")
                    or "postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--flavor", default="auto", choices=["auto", "postgresql", "timescaledb"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    days = max(1, round(90 * args.scale))
    t_end = START + timedelta(days=days)
    name = f"tl_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.dsn, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = conninfo.make_conninfo(args.dsn, dbname=name)
    try:
        if args.flavor != "postgresql":
            with psycopg.connect(dsn, autocommit=True) as c, c.transaction():
                c.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        flavor = migrate(dsn, args.flavor).flavor
        body = plant_yaml()
        plant = parse_plant(body, "<bench>")
        load_plant_into(dsn, plant, body)
        print(f"database {name} ({flavor}); {LINES * STATIONS} stations x {days} days")
        generate(dsn, t_end)
        line = "bench/a/l3"
        queries = [("Q1 line, whole period", START, t_end, False),
                   ("Q2 line, last 7 days per shift", max(START, t_end - timedelta(days=7)), t_end, True)]
        fast_total = slow_total = 0.0
        print(f"{'query':<34} {'compute s':>10} {'naive s':>10} {'ratio':>7}  identical")
        with psycopg.connect(dsn, autocommit=True) as conn:
            for label, a, b, per_shift in queries:
                fast = slow = float("inf")
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    res = service.compute(conn, plant, line, a, b, as_of=t_end, per_shift=per_shift,
                                          with_changeovers=False)
                    fast = min(fast, time.perf_counter() - t)
                    periods = [(p.t0, p.t1) for p in (res.whole, *res.shifts)]
                    t = time.perf_counter()
                    ref, states = naive(conn, plant, line, a, b, periods)
                    slow = min(slow, time.perf_counter() - t)
                same = all(
                    ref[(k, path)][0] == p.stations[path].elements
                    and {s: (c.gq, c.sq, c.rq) for s, c in p.stations[path].iso.counts.by_sku.items()}
                    == {s: tuple(v) for s, v in ref[(k, path)][1].items()}
                    for k, p in enumerate((res.whole, *res.shifts)) for path in p.stations)
                same = same and engine_check(plant, line, states, res)
                print(f"{label:<34} {fast:>10.3f} {slow:>10.3f} {slow / fast:>7.1f}  {same}")
                if not same:
                    print("MISMATCH between compute and the naive computation", file=sys.stderr)
                    return 1
                fast_total += fast
                slow_total += slow
            t = time.perf_counter()
            service.compute(conn, plant, line, max(START, t_end - timedelta(days=7)), t_end, as_of=t_end)
            print(f"(line, 7 days with changeovers: {time.perf_counter() - t:.3f} s)")
        n = len(queries)
        print(f"kpi: {fast_total / n:.3f} s per query; limit {slow_total / n:.3f} s per query; "
              f"ratio {slow_total / fast_total:.1f}")
        return 0
    finally:
        if not args.keep:
            with psycopg.connect(args.dsn, autocommit=True) as c:
                c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    sys.exit(main())
