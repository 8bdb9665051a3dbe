"""Plan KPIs (KPI.md 6), energy and carbon (KPI.md 7), maturity banding (KPI.md 8): hand-computed."""

from __future__ import annotations

import pytest

from twinline.twin.errors import InputError
from twinline.twin.plan import (
    EmissionFactor,
    OutputPeriod,
    ProcessTime,
    automatic_data_collection_rate,
    capacity_uplift,
    carbon,
    digitalized_equipment_share,
    energy_per_unit,
    equipment_networking_rate,
    key_business_processes_digital,
    key_process_digitalization_rate,
    kgce,
    maturity,
    maturity_level,
    oee_uplift,
    share_fully_digital,
    unit_process_time_reduction,
)

pytestmark = pytest.mark.unit


def test_capacity_uplift_mix_normalised() -> None:
    base = OutputPeriod({"A": 1_000, "B": 500}, pbt_s=100 * 3600.0)  # (60 000 + 60 000) s / 100 h = 1200
    cur = OutputPeriod({"A": 1_500, "B": 400}, pbt_s=110 * 3600.0)  # (90 000 + 48 000) s / 110 h = 1254.5
    r = capacity_uplift(base, cur, {"A": 60.0, "B": 120.0})
    assert r.output_baseline_per_h == pytest.approx(1_200.0)
    assert r.output_current_per_h == pytest.approx(138_000 / 110)
    assert r.uplift == pytest.approx(138_000 / 110 / 1_200 - 1)  # +4.545 %
    missing = capacity_uplift(base, OutputPeriod({"A": 1, "C": 5}, 3600.0), {"A": 60.0, "B": 120.0})
    assert missing.uplift is None and missing.missing_ideal_cycle == ("C",)
    assert capacity_uplift(OutputPeriod({}, 0.0), cur, {"A": 60.0, "B": 120.0}).uplift is None


def test_unit_process_time_reduction_plain_mean() -> None:
    base = {"P1": ProcessTime(1_000.0, 100), "P2": ProcessTime(500.0, 50), "P3": ProcessTime(80.0, 8)}
    cur = {"P1": ProcessTime(720.0, 90), "P2": ProcessTime(450.0, 50), "P4": ProcessTime(10.0, 1)}
    r = unit_process_time_reduction(["P1", "P2", "P3"], base, cur)
    assert r.per_process == {"P1": pytest.approx(0.2), "P2": pytest.approx(0.1)}  # 1 − 8/10, 1 − 9/10
    assert r.reduction == pytest.approx(0.15)
    assert r.left_out == ("P3",)
    assert unit_process_time_reduction(["P3"], base, cur).reduction is None


def test_digitalization_rates() -> None:
    assert key_process_digitalization_rate({"P1", "P2", "P3", "P4"}, {"P1", "P2", "P3"}, {"P2", "P3", "P4"}) == 0.5
    assert equipment_networking_rate({"S1", "S2", "S9"}, {"S1", "S2", "S3", "S4"}) == 0.5
    assert automatic_data_collection_rate({"a", "b", "c", "d", "e"}, {"a", "b", "c", "d", "x"}) == 0.8
    assert digitalized_equipment_share({"S1", "S2", "S3"}, {"S1", "S2", "S3", "S4", "S5"}) == 0.6
    assert equipment_networking_rate({"S1"}, set()) is None
    assert key_process_digitalization_rate(set(), set(), set()) is None


def test_key_business_processes() -> None:
    partial = key_business_processes_digital({"production", "quality", "energy"})
    assert partial.not_digital == ("equipment", "planning") and not partial.fully_digital
    full = key_business_processes_digital({"production", "quality", "equipment", "energy", "planning"})
    assert full.fully_digital
    assert share_fully_digital([partial, full]) == 0.5
    assert share_fully_digital([]) is None
    with pytest.raises(InputError):
        key_business_processes_digital({"marketing"})


def test_oee_uplift() -> None:
    u = oee_uplift(0.6, 0.72)
    assert u.relative == pytest.approx(0.2) and u.points == pytest.approx(0.12)
    assert oee_uplift(None, 0.7).relative is None
    assert oee_uplift(0.0, 0.5).relative is None


def test_energy_and_carbon() -> None:
    c = carbon(1_000.0, EmissionFactor(0.5366, "CN national average", 2022))
    assert c.kg_co2 == pytest.approx(536.6) and c.kgce == pytest.approx(122.9)
    assert c.factor.region == "CN national average" and c.factor.year == 2022
    assert kgce(10.0) == pytest.approx(1.229)
    assert energy_per_unit(120.0, 1_000) == pytest.approx(0.12)
    assert energy_per_unit(None, 1_000) is None and energy_per_unit(5.0, 0) is None
    with pytest.raises(InputError):
        EmissionFactor(-1.0, "x", 2022)


@pytest.mark.parametrize(("score", "level"), [(0.0, None), (0.79, None), (0.8, 1), (1.79, 1), (1.8, 2), (2.79, 2),
                                              (2.8, 3), (3.79, 3), (3.8, 4), (4.79, 4), (4.8, 5), (5.0, 5)])
def test_maturity_bands(score: float, level: int | None) -> None:
    assert maturity_level(score) == level


def test_maturity_weighted_and_sourced() -> None:
    m = maturity({"production": (3.0, "evidenced"), "data": (2.0, "evidenced"), "strategy": (4.0, "questionnaire")},
                 {"production": 0.5, "data": 0.3, "strategy": 0.2})
    assert m.score == pytest.approx(2.9) and m.level == 3 and m.level_name == "集成" and m.indicative
    assert m.sources["strategy"] == "questionnaire"
    assert maturity({}, {}).score is None
    with pytest.raises(InputError):
        maturity({"data": (2.0, "evidenced")}, {})
    with pytest.raises(InputError):
        maturity_level(float("nan"))
