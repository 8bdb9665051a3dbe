"""ISO 22400 time model (KPI.md 1): hand-computed cases, validation, and hypothesis properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twinline.twin.errors import InputError
from twinline.twin.iso22400 import Counts, ProductCounts, kpis
from twinline.twin.timemodel import TimeElements, seconds_by_reason, time_elements

pytestmark = pytest.mark.unit

T0 = datetime(2024, 3, 4, 6, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def states(rows: list[tuple[float, float, str, str, str]]) -> pl.DataFrame:
    """Rows of (start min, end min, state, reason, quality) as a state frame."""
    return pl.DataFrame(
        {"start": [at(r[0]) for r in rows], "end": [at(r[1]) for r in rows], "state": [r[2] for r in rows],
         "reason": [r[3] for r in rows], "quality": [r[4] for r in rows]},
        schema={"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"), "state": pl.String,
                "reason": pl.String, "quality": pl.String},
    )


MIXED = states([
    (0, 60, "PRD", "run", "good"),
    (60, 90, "SDT", "setup", "good"),
    (90, 100, "SDT", "preventive_maintenance", "good"),
    (100, 130, "UDT", "failure", "good"),
    (130, 140, "SBY", "starved", "good"),
    (140, 150, "ENG", "engineering", "uncertain"),
    (150, 160, "PRD", "run", "bad"),
    (170, 180, "NST", "non_scheduled", "good"),
    (180, 240, "PRD", "run", "good"),
])


def test_hand_computed_mapping() -> None:
    # scheduled 0-220; planned break 200-210; gap 160-170 -> nodata; 220-240 outside calendar
    e = time_elements(MIXED, at(0), at(240), [(at(0), at(220))], [(at(200), at(210))])
    m = 60.0
    assert e.period_s == 240 * m
    assert e.outside_s == (10 + 20) * m  # NST 170-180 + outside calendar 220-240
    assert e.pdot_s == (10 + 10) * m  # PM + planned break window over PRD
    assert e.aust_s == 30 * m
    assert e.apt_s == (60 + 20 + 10) * m  # 0-60, 180-200, 210-220
    assert e.adet_s == 30 * m
    assert e.adot_s == (10 + 10) * m  # starved + ENG (uncertain keeps its state)
    assert e.nodata_s == (10 + 10) * m  # bad quality 150-160 + gap 160-170
    assert e.pot_s == 210 * m
    assert e.pbt_s == (90 + 30 + 30 + 20) * m
    assert e.pbt_s == e.pot_s - e.pdot_s - e.nodata_s
    assert e.aupt_s == 120 * m
    assert e.aubt_s == 150 * m
    assert e.covered_fraction == pytest.approx(190 / 210)


def test_changeover_counts_as_planned_moves_setup_to_pdot() -> None:
    e = time_elements(MIXED, at(0), at(240), [(at(0), at(220))], [(at(200), at(210))],
                      changeover_counts_as_planned=True)
    assert e.aust_s == 0
    assert e.pdot_s == 50 * 60.0
    assert e.changeover_counts_as_planned is True


def test_excluded_qualities_setting() -> None:
    e = time_elements(MIXED, at(0), at(240), [(at(0), at(240))],
                      excluded_qualities=frozenset({"bad", "nodata", "uncertain"}))
    assert e.adot_s == 10 * 60.0  # ENG (uncertain) now nodata
    assert e.nodata_s == 30 * 60.0


def test_intervals_are_clipped_to_period_and_nodata_outside_data() -> None:
    s = states([(-30, 30, "PRD", "run", "good")])
    e = time_elements(s, at(0), at(60), [(at(-100), at(100))])
    assert (e.apt_s, e.nodata_s, e.outside_s) == (1800.0, 1800.0, 0.0)


def test_planned_window_outside_calendar_stays_outside() -> None:
    s = states([(0, 60, "PRD", "run", "good")])
    e = time_elements(s, at(0), at(60), [(at(0), at(30))], [(at(20), at(50))])
    assert (e.apt_s, e.pdot_s, e.outside_s) == (1200.0, 600.0, 1800.0)


def test_empty_states_are_all_nodata_and_ratios_none() -> None:
    e = time_elements(states([]), at(0), at(60), [(at(0), at(60))])
    assert e.nodata_s == 3600.0 and e.pbt_s == 0
    assert e.covered_fraction == 0.0
    k = kpis(e, Counts(), {}, None, 0, None)
    assert k.availability is None and k.oee is None and k.effectiveness is None and k.quality_ratio is None
    empty = time_elements(states([]), at(0), at(0), [])
    assert empty.period_s == 0 and empty.covered_fraction is None


def test_seconds_by_reason() -> None:
    frame = seconds_by_reason(MIXED, at(0), at(240), [(at(0), at(220))], [(at(200), at(210))])
    rows = {(r["element"], r["state"], r["reason"]): r["seconds"] for r in frame.iter_rows(named=True)}
    assert rows[("aust", "SDT", "setup")] == 1800.0
    assert rows[("adet", "UDT", "failure")] == 1800.0
    assert rows[("pdot", "PRD", "run")] == 600.0  # the planned window shows what the station reported
    assert rows[("nodata", None, None)] == 1200.0
    assert sum(rows.values()) == 240 * 60.0


@pytest.mark.parametrize(("frame", "field"), [
    (states([(0, 10, "PRD", "run", "good"), (5, 20, "SBY", "idle", "good")]), "states"),
    (states([(0, 10, "PRD", "setup", "good")]), "states.reason"),
    (states([(0, 10, "XXX", "run", "good")]), "states.reason"),
    (states([(0, 10, "PRD", "run", "great")]), "states.quality"),
    (states([(10, 0, "PRD", "run", "good")]), "states.end"),
])
def test_invalid_frames_raise(frame: pl.DataFrame, field: str) -> None:
    with pytest.raises(InputError) as err:
        time_elements(frame, at(0), at(60), [(at(0), at(60))])
    assert err.value.field == field


def test_naive_times_raise() -> None:
    naive = MIXED.with_columns(pl.col("start").dt.replace_time_zone(None))
    with pytest.raises(InputError, match="naive"):
        time_elements(naive, at(0), at(60), [])
    with pytest.raises(InputError, match="naive"):
        time_elements(MIXED, datetime(2024, 1, 1), at(60), [])
    with pytest.raises(InputError):
        time_elements(MIXED, at(60), at(0), [])


def test_time_elements_validate_and_add() -> None:
    a = TimeElements(10, 1, 1, 1, 4, 1, 1, 1)
    assert a + a == TimeElements(20, 2, 2, 2, 8, 2, 2, 2)
    assert sum([a, a, a]) == TimeElements(30, 3, 3, 3, 12, 3, 3, 3)
    with pytest.raises(InputError):
        TimeElements(11, 1, 1, 1, 4, 1, 1, 1)
    with pytest.raises(InputError):
        a + TimeElements(10, 1, 1, 1, 4, 1, 1, 1, changeover_counts_as_planned=True)


def test_large_input_is_vectorised() -> None:
    n = 200_000
    starts = np.arange(n, dtype=np.int64) * 10_000_000  # 10 s each
    base = int(T0.timestamp() * 1_000_000)
    choice = np.array(["PRD", "SBY", "UDT"])[np.arange(n) % 3]
    reason = np.array(["run", "idle", "failure"])[np.arange(n) % 3]
    frame = pl.DataFrame({"start": base + starts, "end": base + starts + 10_000_000, "state": choice,
                          "reason": reason, "quality": ["good"] * n}).with_columns(
        pl.col("start").cast(pl.Datetime("us", "UTC")), pl.col("end").cast(pl.Datetime("us", "UTC")))
    e = time_elements(frame, T0, T0 + timedelta(seconds=10 * n), [(T0, T0 + timedelta(seconds=10 * n))])
    assert e.apt_s == pytest.approx(10 * (n // 3 + 1))
    assert e.nodata_s == 0


# ---- hypothesis properties -------------------------------------------------------------------------------

CHOICES = [("PRD", "run"), ("PRD", "run_up"), ("SBY", "starved"), ("SBY", "blocked"), ("ENG", "engineering"),
           ("SDT", "setup"), ("SDT", "preventive_maintenance"), ("UDT", "failure"), ("UDT", "repair"),
           ("UDT", "maintenance_delay"), ("NST", "non_scheduled")]
QUALS = ["good", "good", "good", "uncertain", "bad", "nodata"]

interval_rows = st.lists(st.tuples(st.integers(0, 5), st.integers(1, 60), st.sampled_from(CHOICES),
                                   st.sampled_from(QUALS)), max_size=25)
windows = st.lists(st.tuples(st.integers(-20, 400), st.integers(0, 120)), max_size=4)


def build(rows: list[tuple[int, int, tuple[str, str], str]]) -> pl.DataFrame:
    out, t = [], 0
    for gap, length, (state, reason), quality in rows:
        t += gap
        out.append((t, t + length, state, reason, quality))
        t += length
    return states(out)


def wins(spec: list[tuple[int, int]]) -> list[tuple[datetime, datetime]]:
    return [(at(a), at(a + n)) for a, n in spec]


@settings(max_examples=150, deadline=None)
@given(interval_rows, windows, windows, st.integers(-10, 200), st.integers(0, 300), st.integers(0, 100),
       st.booleans())
def test_properties(rows: list[tuple[int, int, tuple[str, str], str]], sched: list[tuple[int, int]],
                    pdt: list[tuple[int, int]], t0: int, length: int, split_pct: int, planned: bool) -> None:
    frame, t1 = build(rows), t0 + length
    whole = time_elements(frame, at(t0), at(t1), wins(sched), wins(pdt), changeover_counts_as_planned=planned)
    parts = (whole.outside_s, whole.pdot_s, whole.aust_s, whole.apt_s, whole.adet_s, whole.adot_s, whole.nodata_s)
    assert sum(parts) == pytest.approx(whole.period_s) and min(parts) >= 0
    assert whole.period_s == length * 60.0
    by_reason = seconds_by_reason(frame, at(t0), at(t1), wins(sched), wins(pdt), changeover_counts_as_planned=planned)
    assert by_reason["seconds"].sum() == pytest.approx(whole.period_s)
    assert by_reason.filter(pl.col("element") == "apt")["seconds"].sum() == pytest.approx(whole.apt_s)
    # any split: elements of the period equal the sum of its parts
    ts = t0 + length * split_pct / 100.0
    left = time_elements(frame, at(t0), at(ts), wins(sched), wins(pdt), changeover_counts_as_planned=planned)
    right = time_elements(frame, at(ts), at(t1), wins(sched), wins(pdt), changeover_counts_as_planned=planned)
    total = left + right
    for name in ("period_s", "outside_s", "pdot_s", "aust_s", "apt_s", "adet_s", "adot_s", "nodata_s"):
        assert getattr(total, name) == pytest.approx(getattr(whole, name), abs=1e-6)
    counts = Counts({"A": ProductCounts(100, 90, 6, 4)})
    k_whole, k_sum = kpis(whole, counts, {"A": 2.0}, 5.0, 1, 60.0), kpis(total, counts, {"A": 2.0}, 5.0, 1, 60.0)
    for name in ("availability", "effectiveness", "oee", "nee", "setup_rate", "technical_efficiency",
                 "allocation_efficiency", "utilization_efficiency", "mtbf_s"):
        a, b = getattr(k_whole, name), getattr(k_sum, name)
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9)
    for name in ("availability", "quality_ratio", "setup_rate", "technical_efficiency", "allocation_efficiency",
                 "utilization_efficiency", "scrap_ratio", "rework_ratio"):
        v = getattr(k_whole, name)
        assert v is None or 0.0 <= v <= 1.0 + 1e-12
    for name in ("effectiveness", "oee", "nee"):  # E (and so OEE, NEE) may exceed 1 when PRI is too long
        v = getattr(k_whole, name)
        assert v is None or v >= 0
    cf = whole.covered_fraction
    assert cf is None or 0.0 <= cf <= 1.0
