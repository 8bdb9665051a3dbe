"""ISO 22400-2 station KPIs (KPI.md 2): hand-computed values for every formula, FPY and failure episodes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from twinline.twin.errors import InputError
from twinline.twin.iso22400 import (
    Counts,
    ProductCounts,
    downtime_events,
    failure_episodes,
    first_pass_yield,
    kpis,
)
from twinline.twin.timemodel import TimeElements, time_elements

pytestmark = pytest.mark.unit

T0 = datetime(2024, 3, 4, 6, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def states(rows: list[tuple[float, float, str, str]], quality: str = "good") -> pl.DataFrame:
    return pl.DataFrame(
        {"start": [at(r[0]) for r in rows], "end": [at(r[1]) for r in rows], "state": [r[2] for r in rows],
         "reason": [r[3] for r in rows], "quality": [quality] * len(rows)},
        schema={"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"), "state": pl.String,
                "reason": pl.String, "quality": pl.String},
    )


def test_classic_shift_example_from_states() -> None:
    # 8 h shift, 60 min planned break, 47 min failure: PBT 420 min, APT 373 min
    frame = states([(0, 200, "PRD", "run"), (200, 247, "UDT", "failure"), (247, 480, "PRD", "run")])
    e = time_elements(frame, at(0), at(480), [(at(0), at(480))], [(at(300), at(360))])
    assert e.pbt_s == 420 * 60 and e.apt_s == 373 * 60
    k = kpis(e, Counts({"P": ProductCounts(19_271, 18_848, 423, 0)}), {"P": 1.0}, None, 1, 47 * 60.0)
    assert k.availability is not None and round(k.availability, 4) == 0.8881
    assert k.effectiveness is not None and round(k.effectiveness, 4) == 0.8611
    assert k.quality_ratio is not None and round(k.quality_ratio, 4) == 0.9780
    assert k.oee is not None and round(k.oee, 4) == 0.7479
    assert k.mttr_s == 47 * 60.0


ELEMENTS = TimeElements(period_s=28_800, outside_s=3_600, pdot_s=1_800, aust_s=1_200, apt_s=18_000, adet_s=2_400,
                        adot_s=1_800, nodata_s=0)
COUNTS = Counts({"A": ProductCounts(pq=8_000, gq=7_600, sq=240, rq=160)})


def test_every_formula_hand_computed() -> None:
    k = kpis(ELEMENTS, COUNTS, {"A": 2.0}, energy_kwh=380.0, failures=3, failure_udt_s=2_100.0)
    # PBT 23,400  AUPT 19,200  AUBT 21,600  Σ PRI×PQ = 16,000
    assert k.availability == pytest.approx(0.769230769230769)  # 18000 / 23400
    assert k.effectiveness == pytest.approx(0.888888888888889)  # 16000 / 18000
    assert k.quality_ratio == pytest.approx(0.95)  # 7600 / 8000
    assert k.oee == pytest.approx(0.649572649572650)  # 0.76923 × 0.88889 × 0.95
    assert k.nee == pytest.approx(0.692877492877493)  # 0.82051 × 0.88889 × 0.95
    assert k.setup_rate == pytest.approx(0.0625)  # 1200 / 19200
    assert k.technical_efficiency == pytest.approx(0.882352941176471)  # 18000 / 20400
    assert k.allocation_efficiency == pytest.approx(0.923076923076923)  # 21600 / 23400
    assert k.utilization_efficiency == pytest.approx(0.833333333333333)  # 18000 / 21600
    assert k.throughput_rate_per_h == pytest.approx(1_000.0)  # 8000 / 8 h of calendar period
    assert k.scrap_ratio == pytest.approx(0.03)
    assert k.rework_ratio == pytest.approx(0.02)
    assert k.energy_per_good_unit_kwh == pytest.approx(0.05)  # 380 / 7600
    assert k.mtbf_s == pytest.approx(6_400.0)  # (18000 + 1200) / 3
    assert k.mttr_s == pytest.approx(700.0)  # 2100 / 3
    assert k.missing_ideal_cycle == ()


def test_multi_product_effectiveness() -> None:
    e = TimeElements(3_600, 0, 0, 0, 3_600, 0, 0, 0)
    counts = Counts({"A": ProductCounts(1_000, 1_000), "B": ProductCounts(500, 480, 20), "Z": ProductCounts(0, 0)})
    k = kpis(e, counts, {"A": 2.0, "B": 3.0}, None, 0, None)
    assert k.effectiveness == pytest.approx(3_500 / 3_600)  # 1000×2 + 500×3
    assert k.quality_ratio == pytest.approx(1_480 / 1_500)
    assert k.oee == pytest.approx(3_500 / 3_600 * 1_480 / 1_500)
    assert k.mtbf_s is None and k.mttr_s is None and k.energy_per_good_unit_kwh is None


def test_unknown_ideal_cycle_is_listed_not_invented() -> None:
    e = TimeElements(3_600, 0, 0, 0, 3_600, 0, 0, 0)
    counts = Counts({"A": ProductCounts(1_000, 1_000), "C": ProductCounts(10, 10)})
    k = kpis(e, counts, {"A": 2.0}, None, 0, None)
    assert k.effectiveness is None and k.oee is None and k.nee is None
    assert k.missing_ideal_cycle == ("C",)
    assert k.availability == 1.0 and k.quality_ratio == 1.0
    with pytest.raises(InputError):
        kpis(e, counts, {"A": 0.0, "C": 1.0}, None, 0, None)


def test_no_data_is_none_and_no_output_is_zero() -> None:
    nothing = TimeElements(3_600, 3_600, 0, 0, 0, 0, 0, 0)
    k = kpis(nothing, Counts(), {}, None, 0, None)
    assert all(v is None for v in (k.availability, k.effectiveness, k.quality_ratio, k.oee, k.nee, k.setup_rate,
                                   k.technical_efficiency, k.allocation_efficiency, k.utilization_efficiency,
                                   k.scrap_ratio, k.rework_ratio, k.energy_per_good_unit_kwh, k.mtbf_s, k.mttr_s))
    assert k.throughput_rate_per_h == 0.0
    down = TimeElements(3_600, 0, 0, 0, 0, 3_600, 0, 0)  # planned, failed all period, made nothing
    k = kpis(down, Counts(), {}, None, 1, 3_600.0)
    assert k.availability == 0.0 and k.oee == 0.0 and k.nee == 0.0 and k.quality_ratio is None


def test_counts_validation_add_and_events() -> None:
    with pytest.raises(InputError):
        ProductCounts(10, 9, 2)
    with pytest.raises(InputError):
        ProductCounts(-1, 0)
    total = sum([COUNTS, Counts({"A": ProductCounts(10, 10), "B": ProductCounts(5, 4, 1)})])
    assert isinstance(total, Counts)
    assert (total.pq, total.gq, total.sq, total.rq) == (8_015, 7_614, 241, 160)
    events = pl.DataFrame({"product": ["A", "A", "B"], "good": [5, 3, 2], "scrap": [1, 0, 0], "rework": [0, 1, 0]})
    c = Counts.from_events(events)
    assert c.by_sku["A"] == ProductCounts(10, 8, 1, 1) and c.by_sku["B"] == ProductCounts(2, 2, 0, 0)


def test_first_pass_yield() -> None:
    tests = pl.DataFrame({
        "unit": ["u1", "u2", "u2", "u3", "u4", "u5"],
        "ts": [at(1), at(2), at(5), at(3), at(4), at(6)],
        "passed": [True, False, True, True, False, True],
        "reworked": [False, False, True, True, False, False],
    })
    f = first_pass_yield(tests)
    assert (f.units_inspected, f.units_good_first_pass) == (5, 2)  # u1, u5; u3 was reworked before its test
    assert f.fpy == pytest.approx(0.4)
    empty = first_pass_yield(tests.clear())
    assert empty.fpy is None and empty.units_inspected == 0


EPISODE_STATES = states([
    (0, 10, "PRD", "run"), (10, 15, "UDT", "failure"), (15, 20, "UDT", "maintenance_delay"),
    (20, 30, "UDT", "repair"), (30, 40, "PRD", "run"), (40, 42, "UDT", "minor_stop"), (42, 45, "UDT", "failure"),
    (45, 50, "SDT", "setup"), (50, 55, "UDT", "repair"), (56, 57, "UDT", "repair"), (57, 60, "UDT", "failure"),
])


def test_failure_episodes() -> None:
    ep = failure_episodes(EPISODE_STATES)
    assert ep.columns == ["start", "end", "repair_s", "delay_s", "udt_s"]
    assert ep["start"].to_list() == [at(10), at(42), at(57)]  # repair after a gap opens no episode
    assert ep["end"].to_list() == [at(30), at(45), at(60)]
    assert ep["repair_s"].to_list() == [900.0, 180.0, 180.0]
    assert ep["delay_s"].to_list() == [300.0, 0.0, 0.0]
    assert ep["udt_s"].to_list() == [1200.0, 180.0, 180.0]
    in_first_half = failure_episodes(EPISODE_STATES, at(0), at(20))
    assert in_first_half.height == 1 and in_first_half["end"][0] == at(30)  # whole, not clipped
    assert failure_episodes(EPISODE_STATES.clear()).height == 0


def test_bad_quality_ends_an_episode() -> None:
    frame = pl.concat([states([(0, 5, "UDT", "failure")]), states([(5, 10, "UDT", "repair")], quality="bad"),
                       states([(10, 15, "UDT", "repair")])])
    ep = failure_episodes(frame)
    assert ep.height == 1 and ep["udt_s"][0] == 300.0


def test_downtime_events() -> None:
    # 10-30 UDT; 40-55 minor stop + failure + setup + repair (one off-line run); 56-60
    assert downtime_events(EPISODE_STATES, at(0), at(60)) == 3
    assert downtime_events(EPISODE_STATES, at(41), at(60)) == 1
