"""twin.service.compute against a real store on both flavors, with hand-built events and hand-computed KPIs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests import twin_fixture as tf
from twinline.twin import service
from twinline.twin.errors import UnknownAsset
from twinline.twin.timemodel import TimeElements

pytestmark = pytest.mark.integration

LATER = tf.DAY + timedelta(days=3)  # as_of well after every period read here


@pytest.mark.smoke
def test_classic_shift_example(any_db_dsn: str, uid: str) -> None:
    site = f"t{uid}"
    plant = tf.load(any_db_dsn, site)
    s1 = f"{site}/ar/l1/s1"
    with tf.connect(any_db_dsn) as conn:
        tf.classic_shift(conn, s1)
        result = service.compute(conn, plant, s1, tf.D_START, tf.D_END, as_of=LATER)
    st = result.whole.stations[s1]
    assert st.elements.pbt_s == 420 * 60
    assert st.elements.apt_s == 373 * 60
    assert st.elements.pdot_s == 60 * 60
    assert (st.iso.counts.pq, st.iso.counts.gq) == (19_271, 18_848)
    assert round(st.iso.availability or 0, 4) == 0.8881
    assert round(st.iso.effectiveness or 0, 4) == 0.8611
    assert round(st.iso.quality_ratio or 0, 4) == 0.9780
    assert round(st.iso.oee or 0, 4) == 0.7479
    assert st.iso.failures == 1 and st.iso.mttr_s == 47 * 60
    assert st.quality.covered_fraction == 1.0 and st.quality.nodata_s == 0.0
    assert result.kind == "station" and result.whole.lines == {}


def _busy_day(conn: object, site: str) -> None:
    """Two stations, two products, setup, failure, events across hours and both shifts."""
    s1, s2, ft = (f"{site}/ar/l1/{s}" for s in ("s1", "s2", "final-test"))
    tf.classic_shift(conn, s1)  # type: ignore[arg-type]
    tf.insert_states(conn, [  # type: ignore[arg-type]
        (tf.at(-30), s2, "SBY", "starved"), (tf.at(10.5), s2, "PRD", "run"), (tf.at(200), s2, "SDT", "setup"),
        (tf.at(231.25), s2, "PRD", "run"), (tf.at(500), s2, "UDT", "failure"), (tf.at(530), s2, "UDT", "repair"),
        (tf.at(555), s2, "NST", "non_scheduled"), (tf.at(725), s2, "PRD", "run"), (tf.at(1000), s2, "SBY", "blocked"),
        (tf.at(-5), ft, "PRD", "run"),
    ])
    rows = []
    for i in range(0, 1440, 7):  # every 7 minutes over the day, product A then B after the setup
        product = "A" if i < 200 or i >= 900 else "B"
        rows.append((tf.at(i + 0.5), s2, product, 5 + i % 3, i % 2, int(i % 5 == 0)))
        rows.append((tf.at(i + 1), ft, product, 4, 0, 0))
    tf.insert_counts(conn, rows)  # type: ignore[arg-type]
    tf.insert_energy(conn, [(tf.at(i + 0.25), s2, 0.125) for i in range(0, 1440, 13)])  # type: ignore[arg-type]


def _sum_elements(items: list[TimeElements]) -> TimeElements:
    return sum(items[1:], items[0])


def test_window_independence_day_equals_24_hours(any_db_dsn: str, uid: str) -> None:
    site = f"t{uid}"
    plant = tf.load(any_db_dsn, site)
    line = f"{site}/ar/l1"
    with tf.connect(any_db_dsn) as conn:
        _busy_day(conn, site)
        whole = service.compute(conn, plant, line, tf.DAY, tf.DAY + timedelta(days=1), as_of=LATER)
        hours = [service.compute(conn, plant, line, tf.at(60 * h), tf.at(60 * (h + 1)), as_of=LATER)
                 for h in range(24)]
        raw = service.compute(conn, plant, line, tf.DAY, tf.DAY + timedelta(days=1), as_of=LATER, rollups="raw")
    for path, st in whole.whole.stations.items():
        summed = _sum_elements([h.whole.stations[path].elements for h in hours])
        for name in ("period_s", "outside_s", "pdot_s", "aust_s", "apt_s", "adet_s", "adot_s", "nodata_s"):
            assert getattr(summed, name) == pytest.approx(getattr(st.elements, name), abs=1e-6), (path, name)
        counts = sum((h.whole.stations[path].iso.counts for h in hours[1:]), hours[0].whole.stations[path].iso.counts)
        assert dict(counts.by_sku) == dict(st.iso.counts.by_sku)
        assert dict(raw.whole.stations[path].iso.counts.by_sku) == dict(st.iso.counts.by_sku)
        energies = [h.whole.stations[path].energy_kwh for h in hours if h.whole.stations[path].energy_kwh is not None]
        assert (sum(energies) if energies else None) == pytest.approx(st.energy_kwh)
        assert st.iso.failures == sum(h.whole.stations[path].iso.failures for h in hours)
    s2 = whole.whole.stations[f"{site}/ar/l1/s2"]
    assert s2.elements.aust_s == 31.25 * 60
    assert s2.energy_kwh == pytest.approx(0.125 * len(range(0, 1440, 13)))
    assert [(c.from_product, c.to_product) for c in s2.changeovers] == [("A", "B"), ("B", "A")]


@pytest.mark.smoke
def test_per_shift_split_equals_whole(any_db_dsn: str, uid: str) -> None:
    site = f"t{uid}"
    plant = tf.load(any_db_dsn, site)
    line = f"{site}/ar/l1"
    with tf.connect(any_db_dsn) as conn:
        _busy_day(conn, site)
        result = service.compute(conn, plant, line, tf.DAY, tf.DAY + timedelta(days=1), as_of=LATER, per_shift=True)
    assert [p.label for p in result.shifts] == ["2026-03-02 D", "2026-03-02 N"]
    for path, st in result.whole.stations.items():
        shifts = [p.stations[path].elements for p in result.shifts]
        for name in ("pdot_s", "aust_s", "apt_s", "adet_s", "adot_s", "nodata_s", "pbt_s", "pot_s"):
            assert sum(getattr(e, name) for e in shifts) == pytest.approx(getattr(st.elements, name), abs=1e-6)
        shift_pq = sum(p.stations[path].iso.counts.pq for p in result.shifts)
        in_shifts = service.compute  # counts outside both shifts stay in the whole period only
        assert shift_pq <= st.iso.counts.pq and in_shifts is not None
    s1 = f"{site}/ar/l1/s1"
    assert result.shifts[0].stations[s1].iso.counts.pq == result.whole.stations[s1].iso.counts.pq == 19_271
    assert round(result.shifts[0].stations[s1].iso.oee or 0, 4) == 0.7479


def test_late_rows_into_an_already_read_hour_are_counted(any_db_dsn: str, uid: str) -> None:
    site = f"t{uid}"
    plant = tf.load(any_db_dsn, site)
    s1 = f"{site}/ar/l1/s1"
    with tf.connect(any_db_dsn) as conn:
        tf.classic_shift(conn, s1)
        first = service.compute(conn, plant, s1, tf.D_START, tf.D_END, as_of=LATER)
        tf.insert_counts(conn, [(tf.at(90.5), s1, "A", 7, 1), (tf.at(301), s1, "B", 3, 0)])  # hours 1 and 5
        stale = conn.execute("SELECT sum(good) FROM count_hourly WHERE asset = %s AND bucket >= %s AND bucket < %s",
                             (s1, tf.D_START, tf.D_END)).fetchone()
        flavor = conn.execute("SELECT flavor FROM store_info").fetchone()
        # the trap the store avoids: on TimescaleDB the materialised hours do not show the late rows yet
        assert stale is not None and flavor is not None
        assert stale[0] == (18_848 if flavor[0] == "timescaledb" else 18_858)
        second = service.compute(conn, plant, s1, tf.D_START, tf.D_END, as_of=LATER)
        raw = service.compute(conn, plant, s1, tf.D_START, tf.D_END, as_of=LATER, rollups="raw")
    assert first.whole.stations[s1].iso.counts.pq == 19_271
    got = second.whole.stations[s1].iso.counts
    assert (got.pq, got.gq, got.by_sku["B"].gq) == (19_271 + 11, 18_848 + 10, 3)
    assert dict(raw.whole.stations[s1].iso.counts.by_sku) == dict(got.by_sku)


def test_nodata_bad_quality_and_as_of_are_excluded_and_reported(any_db_dsn: str, uid: str) -> None:
    site = f"t{uid}"
    plant = tf.load(any_db_dsn, site)
    s2 = f"{site}/ar/l1/s2"
    with tf.connect(any_db_dsn) as conn:
        tf.insert_states(conn, [
            (tf.at(30), s2, "PRD", "run"),                 # no entry before 00:30: 30 min nodata
            (tf.at(100), s2, "UDT", "failure", "bad"),     # 20 min of bad quality: nodata
            (tf.at(120), s2, "PRD", "run", "uncertain"),   # 10 min uncertain: nodata
            (tf.at(130), s2, "PRD", "run"),
            (tf.at(400), s2, "UDT", "failure"),            # at/after as_of: never seen
        ])
        result = service.compute(conn, plant, s2, tf.D_START, tf.D_END, as_of=tf.at(360))
    st = result.whole.stations[s2]
    # scheduled 480 min: lunch 60 PDOT; nodata 30 + 20 + 10 + 120 (after as_of) = 180; APT the rest
    assert st.elements.nodata_s == 180 * 60
    assert st.elements.pdot_s == 60 * 60
    assert st.elements.apt_s == (480 - 60 - 180) * 60
    assert st.elements.adet_s == 0
    assert st.iso.availability == 1.0 and st.iso.failures == 0
    assert st.quality.no_entry_s == 30 * 60
    assert st.quality.bad_quality_s == 30 * 60
    assert st.quality.after_as_of_s == 120 * 60
    assert st.quality.covered_fraction == pytest.approx((480 - 180) / 480)
    assert st.iso.counts.pq == 0 and st.iso.effectiveness == 0.0 and st.iso.quality_ratio is None


def test_unknown_asset_is_an_error(plain_db_dsn: str, uid: str) -> None:
    plant = tf.load(plain_db_dsn, f"t{uid}")
    with tf.connect(plain_db_dsn) as conn, pytest.raises(UnknownAsset):
        service.compute(conn, plant, f"t{uid}/ar/nope", tf.D_START, tf.D_END, as_of=LATER)
