"""Stale telemetry (issue 7 part 3) on both store flavors, with hand-built rows and hand-computed seconds.

The test plant is tests/twin_fixture.py's with ``stale_after_s`` set to 300 s here (whatever the fixture
says); shift D is 00:00-08:00 UTC with a PDOT lunch 04:00-05:00. A station's telemetry is every row of it in
any event table; a silence longer than 300 s makes the time from (last instant + 300 s) to the next instant (or to
min(t1, as_of)) stale: excluded from every time element and reported in ``DataQuality``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests import twin_fixture as tf
from twinline.cli.kpi_cmd import _text
from twinline.twin import service, store
from twinline.twin.results import StaleInterval, StationKpis
from twinline.uns.plant import Plant, parse_plant

pytestmark = pytest.mark.integration

LATER = tf.DAY + timedelta(days=3)
MIN = 60.0


def _load(dsn: str, site: str) -> Plant:
    """The twin test plant with ``stale_after_s: 300``, stored as `twinline plant load` does."""
    from twinline.ingest.plant_store import load_plant_into

    body = re.sub(r",?\s*stale_after_s: [^,}]+", "", tf.plant_yaml(site))
    body = body.replace("settings: {", "settings: {stale_after_s: 300, ")
    plant = parse_plant(body, f"<stale test plant {site}>")
    load_plant_into(dsn, plant, body)
    return plant


def _energy(conn: psycopg.Connection[Any], asset: str, minutes: Iterable[float]) -> None:
    tf.insert_energy(conn, [(tf.at(m), asset, 0.01) for m in minutes])


def _rotating(conn: psycopg.Connection[Any], asset: str, start_s: int, end_s: int, step_s: int) -> None:
    """One row every ``step_s`` seconds, each in the next of six tables: every table alone is silent 6 x longer."""
    seq = iter(range(10**6, 2 * 10**6))
    for k, t in enumerate(range(start_s, end_s, step_s)):
        ts = tf.DAY + timedelta(seconds=t)
        table = k % 6
        if table == 0:
            tf.insert_counts(conn, [(ts, asset, "A", 1, 0)])
        elif table == 1:
            tf.insert_energy(conn, [(ts, asset, 0.01)])
        elif table == 2:
            conn.execute("INSERT INTO process_sample (ts, asset, name, value, unit, source, seq) "
                         "VALUES (%s, %s, 'temp', 1.0, 'degC', 'test', %s)", (ts, asset, next(seq)))
        elif table == 3:
            conn.execute("INSERT INTO product_event (ts, asset, product, source, seq) VALUES (%s, %s, 'A', 'test', %s)",
                         (ts, asset, next(seq)))
        elif table == 4:
            conn.execute("INSERT INTO alarm_event (ts, asset, code, active, severity, source, seq) "
                         "VALUES (%s, %s, 'X1', true, 100, 'test', %s)", (ts, asset, next(seq)))
        else:
            tf.insert_states(conn, [(ts, asset, "PRD", "run")])


def _sums_to_period(st: StationKpis) -> None:
    e = st.elements
    parts = e.outside_s + e.pdot_s + e.aust_s + e.apt_s + e.adet_s + e.adot_s + e.nodata_s
    assert parts == pytest.approx(e.period_s, abs=1e-6)
    assert e.pbt_s == pytest.approx(e.pot_s - e.pdot_s - e.nodata_s, abs=1e-6)


def test_gap_is_stale_excluded_from_pbt_and_reported(any_db_dsn: str, uid: str) -> None:
    site = f"t{uid}"
    plant = _load(any_db_dsn, site)
    assert plant.settings.stale_after_s == 300.0
    s1, s2, ft = (f"{site}/ar/l1/{s}" for s in ("s1", "s2", "final-test"))
    with tf.connect(any_db_dsn) as conn:
        tf.insert_states(conn, [(tf.at(-10), s2, "PRD", "run"), (tf.at(-10), ft, "PRD", "run")])
        _energy(conn, s2, [m for m in range(-10, 480) if not 100 < m < 160])  # silent from 00:100 to 00:160
        _rotating(conn, ft, -600, 480 * 60, 200)  # regular across the tables: never stale
        gaps = store.stale_gaps(conn, [s1, s2, ft], tf.D_START, tf.D_END, as_of=LATER, stale_after_s=300.0)
        result = service.compute(conn, plant, f"{site}/ar/l1", tf.D_START, tf.D_END, as_of=LATER)
    assert gaps.select("station", "start", "end", "last_seen").rows() == [(s2, tf.at(105), tf.at(160), tf.at(100))]
    st = result.whole.stations[s2]
    assert st.elements.nodata_s == 55 * MIN
    assert st.elements.apt_s == (420 - 55) * MIN and st.elements.pbt_s == (420 - 55) * MIN
    assert st.elements.pdot_s == 60 * MIN and st.elements.adet_s == st.elements.adot_s == 0
    assert st.e10.times.nodata_s == 55 * MIN and st.e10.times.prd_s == (480 - 55) * MIN
    assert st.quality.stale_s == 55 * MIN and st.quality.bad_quality_s == 0 and st.quality.no_entry_s == 0
    assert st.quality.stale_intervals == (StaleInterval(tf.at(105), tf.at(160), tf.at(100)),)
    assert st.quality.covered_fraction == pytest.approx((480 - 55) / 480)
    _sums_to_period(st)
    regular = result.whole.stations[ft]
    assert regular.quality.stale_s == 0 and regular.quality.stale_intervals == ()
    assert regular.elements.apt_s == 420 * MIN and regular.elements.nodata_s == 0
    silent = result.whole.stations[s1]  # no row at all: no entry, not stale
    assert silent.quality.no_entry_s == 480 * MIN and silent.quality.stale_s == 0
    for station in result.whole.stations.values():
        _sums_to_period(station)
    assert f"data quality {s2}: covered" in _text(result, "en") and "stale 3300 s in 1 intervals" in _text(result, "en")


def test_gap_spanning_t0(any_db_dsn: str, uid: str) -> None:
    site = f"t{uid}"
    plant = _load(any_db_dsn, site)
    s2, ft = f"{site}/ar/l1/s2", f"{site}/ar/l1/final-test"
    with tf.connect(any_db_dsn) as conn:
        tf.insert_states(conn, [(tf.at(-60), s2, "PRD", "run"), (tf.at(-60), ft, "UDT", "failure")])
        _energy(conn, s2, [*range(-60, -1), *range(30, 480)])   # last before t0 at -2: stale from 00:03 to 00:30
        _energy(conn, ft, [*range(-60, -29), *range(30, 480)])  # last at -30: stale from -25 (before t0) to 30
        whole = service.compute(conn, plant, f"{site}/ar/l1", tf.D_START, tf.D_END, as_of=LATER, per_shift=True)
        part = service.compute(conn, plant, f"{site}/ar/l1", tf.at(10), tf.at(60), as_of=LATER)
    a, b = whole.whole.stations[s2], whole.whole.stations[ft]
    assert a.quality.stale_s == 27 * MIN and a.elements.apt_s == (420 - 27) * MIN
    assert a.quality.stale_intervals == (StaleInterval(tf.at(3), tf.at(30), tf.at(-2)),)
    assert b.quality.stale_s == 30 * MIN and b.elements.adet_s == (420 - 30) * MIN and b.elements.nodata_s == 30 * MIN
    assert b.quality.stale_intervals == (StaleInterval(tf.at(0), tf.at(30), tf.at(-30)),)
    shift_d = whole.shifts[0].stations[ft]
    assert whole.shifts[0].label.endswith(" D") and shift_d.quality.stale_s == 30 * MIN
    pa, pb = part.whole.stations[s2], part.whole.stations[ft]
    assert pa.quality.stale_intervals == (StaleInterval(tf.at(10), tf.at(30), tf.at(-2)),)
    assert pa.quality.stale_s == 20 * MIN and pa.elements.apt_s == 30 * MIN and pa.elements.nodata_s == 20 * MIN
    assert pb.quality.stale_s == 20 * MIN and pb.elements.adet_s == 30 * MIN
    for st in (a, b, pa, pb, shift_d):
        _sums_to_period(st)


def test_silence_at_the_end_is_stale_up_to_as_of(any_db_dsn: str, uid: str) -> None:
    site = f"t{uid}"
    plant = _load(any_db_dsn, site)
    s2 = f"{site}/ar/l1/s2"
    with tf.connect(any_db_dsn) as conn:
        tf.insert_states(conn, [(tf.at(-10), s2, "PRD", "run")])
        _energy(conn, s2, range(-10, 401))  # the link dies after 06:40
        early = service.compute(conn, plant, s2, tf.D_START, tf.D_END, as_of=tf.at(450))
        late = service.compute(conn, plant, s2, tf.D_START, tf.D_END, as_of=LATER)
    e = early.whole.stations[s2]
    assert e.quality.stale_intervals == (StaleInterval(tf.at(405), tf.at(450), tf.at(400)),)
    assert e.quality.stale_s == 45 * MIN and e.quality.after_as_of_s == 30 * MIN
    assert e.elements.nodata_s == 75 * MIN and e.elements.apt_s == (420 - 75) * MIN
    lt = late.whole.stations[s2]
    assert lt.quality.stale_intervals == (StaleInterval(tf.at(405), tf.at(480), tf.at(400)),)
    assert lt.quality.stale_s == 75 * MIN and lt.quality.after_as_of_s == 0 and lt.elements.apt_s == (420 - 75) * MIN
    for st in (e, lt):
        _sums_to_period(st)


def test_regular_telemetry_and_a_quiet_nst_are_never_stale(any_db_dsn: str, uid: str) -> None:
    site = f"t{uid}"
    plant = _load(any_db_dsn, site)
    s2 = f"{site}/ar/l1/s2"
    with tf.connect(any_db_dsn) as conn:
        tf.insert_states(conn, [(tf.at(-10), s2, "PRD", "run"), (tf.at(60), s2, "UDT", "failure"),
                                (tf.at(107), s2, "PRD", "run"),
                                (tf.at(200), s2, "NST", "non_scheduled"), (tf.at(220), s2, "PRD", "run")])
        # every 299 s (just inside the limit) except during the NST, when a non-scheduled station is silent
        tf.insert_energy(conn, [(ts, s2, 0.01) for ts in _every(tf.at(-10), tf.at(200), 299)
                                + _every(tf.at(220), tf.D_END, 299)])
        gaps = store.stale_gaps(conn, [s2], tf.D_START, tf.D_END, as_of=LATER, stale_after_s=300.0)
        result = service.compute(conn, plant, s2, tf.D_START, tf.D_END, as_of=LATER)
    assert gaps.rows() == [(s2, tf.at(205), tf.at(220), tf.at(200))]  # the NST silence: NST keeps its state
    st = result.whole.stations[s2]
    assert st.quality.stale_s == 0 and st.quality.stale_intervals == () and st.elements.nodata_s == 0
    assert st.elements.outside_s == 20 * MIN and st.elements.adet_s == 47 * MIN
    assert st.elements.apt_s == (480 - 60 - 20 - 47) * MIN and st.iso.failures == 1
    _sums_to_period(st)


def _every(a: datetime, b: datetime, step_s: int) -> list[datetime]:
    out = []
    while a < b:
        out.append(a)
        a += timedelta(seconds=step_s)
    return out
