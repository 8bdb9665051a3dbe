"""SEMI E10 / E79 metrics (KPI.md 3): a hand-computed tool history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twinline.twin.e10 import E10Times, RecipeUnits, e10_from_states, e10_kpis, e10_times
from twinline.twin.errors import InputError

pytestmark = pytest.mark.unit

T0 = datetime(2024, 3, 4, 6, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


ROWS = [(0, 10, "NST", "non_scheduled", "good"), (10, 50, "PRD", "run", "good"), (50, 60, "SBY", "idle", "good"),
        (60, 65, "ENG", "engineering", "good"), (65, 75, "SDT", "setup", "good"), (75, 80, "UDT", "failure", "good"),
        (80, 85, "UDT", "maintenance_delay", "good"), (85, 90, "UDT", "repair", "good"),
        (90, 100, "PRD", "run", "bad")]
STATES = pl.DataFrame(
    {"start": [at(r[0]) for r in ROWS], "end": [at(r[1]) for r in ROWS], "state": [r[2] for r in ROWS],
     "reason": [r[3] for r in ROWS], "quality": [r[4] for r in ROWS]},
    schema={"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"), "state": pl.String,
            "reason": pl.String, "quality": pl.String},
)
RECIPES = {"R1": RecipeUnits(1_000, equipment_scrap=10, equipment_rework=10), "R2": RecipeUnits(200)}
THT = {"R1": 1.2, "R2": 3.0}


def test_times() -> None:
    t = e10_times(STATES, at(0), at(100))
    assert (t.nst_s, t.prd_s, t.sby_s, t.eng_s, t.sdt_s, t.udt_s, t.nodata_s) == (600, 2400, 600, 300, 600, 900, 600)
    assert (t.uptime_s, t.downtime_s, t.operations_s, t.total_time_s) == (3300, 1500, 4800, 5400)
    halves = e10_times(STATES, at(0), at(42.5)) + e10_times(STATES, at(42.5), at(100))
    assert halves == t


def test_hand_computed_kpis() -> None:
    k = e10_from_states(STATES, at(0), at(100), cycles=1_200, tht_s=THT, recipe_units=RECIPES)
    assert k.operational_uptime == pytest.approx(0.6875)  # 3300 / 4800
    assert k.operational_utilization == pytest.approx(0.5)  # 2400 / 4800
    assert k.total_utilization == pytest.approx(0.444444444444444)  # 2400 / 5400
    assert k.failures == 1 and k.downtime_events == 1
    assert k.mtbf_p_s == pytest.approx(2_400.0)
    assert k.mcbf_cycles == pytest.approx(1_200.0)
    assert k.mttr_s == pytest.approx(600.0)  # failure 300 + repair 300, maintenance delay excluded
    assert k.mtol_s == pytest.approx(1_500.0)  # setup + UDT run is one off-line event
    assert k.e79_ae == pytest.approx(0.611111111111111)  # 3300 / 5400
    assert k.e79_oe == pytest.approx(0.727272727272727)  # 2400 / 3300
    assert k.e79_re == pytest.approx(0.75)  # (1000×1.2 + 200×3) / 2400
    assert k.e79_qe == pytest.approx(0.986666666666667)  # (980×1.2 + 200×3) / 1800
    assert k.e79_oee == pytest.approx(0.328888888888889)


def test_missing_tht_and_empty() -> None:
    k = e10_from_states(STATES, at(0), at(100), cycles=None, tht_s={"R1": 1.2}, recipe_units=RECIPES)
    assert k.missing_tht == ("R2",) and k.e79_re is None and k.e79_qe is None and k.e79_oee is None
    assert k.mcbf_cycles is None
    empty = e10_kpis(E10Times(60, 0, 0, 0, 0, 0, 0, 60), failures=0, repair_s=0.0, downtime_event_count=0,
                     cycles=0, tht_s={}, recipe_units={})
    assert all(v is None for v in (empty.operational_uptime, empty.operational_utilization, empty.total_utilization,
                                   empty.mtbf_p_s, empty.mcbf_cycles, empty.mttr_s, empty.mtol_s, empty.e79_ae,
                                   empty.e79_oe, empty.e79_re, empty.e79_qe, empty.e79_oee))
    with pytest.raises(InputError):
        RecipeUnits(10, equipment_scrap=8, equipment_rework=3)


CHOICES = [("PRD", "run"), ("SBY", "idle"), ("SDT", "setup"), ("UDT", "failure"), ("UDT", "repair"),
           ("UDT", "maintenance_delay"), ("UDT", "minor_stop"), ("NST", "shutdown")]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 30), st.sampled_from(CHOICES),
                          st.sampled_from(["good", "good", "bad"])), max_size=20),
       st.integers(0, 400))
def test_split_additivity(rows: list[tuple[int, int, tuple[str, str], str]], split: int) -> None:
    out, t = [], 0
    for gap, length, (state, reason), quality in rows:
        t += gap
        out.append((at(t), at(t + length), state, reason, quality))
        t += length
    frame = pl.DataFrame(out, schema={"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
                                      "state": pl.String, "reason": pl.String, "quality": pl.String}, orient="row")
    whole = e10_from_states(frame, at(0), at(400), cycles=None, tht_s={}, recipe_units={})
    left = e10_from_states(frame, at(0), at(split), cycles=None, tht_s={}, recipe_units={})
    right = e10_from_states(frame, at(split), at(400), cycles=None, tht_s={}, recipe_units={})
    assert left.times + right.times == whole.times
    assert left.failures + right.failures == whole.failures
    assert left.downtime_events + right.downtime_events == whole.downtime_events
    assert whole.times.total_time_s + whole.times.nodata_s == whole.times.period_s
