"""Plan KPIs of the regional smart-manufacturing plans (KPI.md 6), energy and carbon (KPI.md 7) and
maturity banding (KPI.md 8).

Baseline and current period are inputs; nothing here reads a clock or a database. Ratios are fractions
(0.199 = +19.9%). Readings fixed here:
- Capacity uplift = output_cur / output_base − 1 with output_x = Σ_p PRI_base,p × GQ_x,p / PBT_x hours
  (standard hours of good output per PBT hour, each product weighted by its baseline ideal cycle time).
- Unit process time reduction per key process = 1 − (APT/PQ)_cur / (APT/PQ)_base (positive = time per
  unit fell; the plan writes it as −18.2%); "has both periods" means PQ > 0 and APT > 0 in both.
- OEE uplift: relative, OEE_cur / OEE_base − 1 (as the lighthouse examples are quoted); the difference in
  points is returned beside it.
- A maturity score below 0.8 has no level (below level 1); levels are indicative (KPI.md 8).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from .changeover import ChangeoverReduction, changeover_reduction
from .errors import InputError
from .iso22400 import ratio

__all__ = [
    "BUSINESS_PROCESSES",
    "KGCE_PER_KWH",
    "MATURITY_LEVEL_NAMES",
    "CapacityUplift",
    "Carbon",
    "ChangeoverReduction",
    "DigitalBusiness",
    "EmissionFactor",
    "Maturity",
    "OeeUplift",
    "OutputPeriod",
    "ProcessTime",
    "UnitTimeReduction",
    "automatic_data_collection_rate",
    "capacity_uplift",
    "carbon",
    "changeover_reduction",
    "digitalized_equipment_share",
    "energy_per_unit",
    "equipment_networking_rate",
    "key_business_processes_digital",
    "key_process_digitalization_rate",
    "kgce",
    "maturity",
    "maturity_level",
    "oee_uplift",
    "share_fully_digital",
    "unit_process_time_reduction",
]

KGCE_PER_KWH = 0.1229  # KPI.md 7: kg coal equivalent per kWh of electricity
BUSINESS_PROCESSES = ("production", "quality", "equipment", "energy", "planning")
MATURITY_LEVEL_NAMES = {1: "规划", 2: "规范", 3: "集成", 4: "优化", 5: "引领"}


@dataclass(frozen=True)
class OutputPeriod:
    """Good quantity per product and planned busy time of one period (KPI.md 6 capacity uplift)."""

    gq: Mapping[str, int]
    pbt_s: float


@dataclass(frozen=True)
class CapacityUplift:
    """Capacity uplift (KPI.md 6): fraction, with both mix-normalised outputs and products lacking a weight."""

    uplift: float | None
    output_baseline_per_h: float | None
    output_current_per_h: float | None
    missing_ideal_cycle: tuple[str, ...]


def capacity_uplift(baseline: OutputPeriod, current: OutputPeriod,
                    baseline_ideal_cycle_s: Mapping[str, float]) -> CapacityUplift:
    """Capacity uplift % (KPI.md 6): mix-normalised good output per PBT hour, current vs baseline."""
    produced = {p for p, q in (*baseline.gq.items(), *current.gq.items()) if q > 0}
    missing = tuple(sorted(produced - set(baseline_ideal_cycle_s)))
    if missing:
        return CapacityUplift(None, None, None, missing)

    def output(period: OutputPeriod) -> float | None:
        std_s = math.fsum(baseline_ideal_cycle_s[p] * q for p, q in period.gq.items() if q > 0)
        return ratio(std_s, period.pbt_s / 3600.0)

    base, cur = output(baseline), output(current)
    uplift = None if base is None or cur is None or base == 0 else cur / base - 1.0
    return CapacityUplift(uplift, base, cur, ())


@dataclass(frozen=True)
class ProcessTime:
    """APT seconds and produced quantity of one key process in one period."""

    apt_s: float
    pq: int


@dataclass(frozen=True)
class UnitTimeReduction:
    """Unit process time reduction (KPI.md 6): plain mean over processes with both periods, and each one."""

    reduction: float | None
    per_process: Mapping[str, float]
    left_out: tuple[str, ...]


def unit_process_time_reduction(key_processes: Collection[str], baseline: Mapping[str, ProcessTime],
                                current: Mapping[str, ProcessTime]) -> UnitTimeReduction:
    """Unit process time reduction % (KPI.md 6): mean of 1 − (APT/PQ)_cur / (APT/PQ)_base over key processes."""
    def unit_time(p: ProcessTime | None) -> float | None:
        return None if p is None or p.apt_s <= 0 else ratio(p.apt_s, p.pq)

    per: dict[str, float] = {}
    for proc in sorted(key_processes):
        b, c = unit_time(baseline.get(proc)), unit_time(current.get(proc))
        if b is not None and c is not None:
            per[proc] = 1.0 - c / b
    left_out = tuple(sorted(set(key_processes) - set(per)))
    return UnitTimeReduction(math.fsum(per.values()) / len(per) if per else None, per, left_out)


def _share(part: Collection[str], whole: Collection[str]) -> float | None:
    return ratio(len(set(part) & set(whole)), len(set(whole)))


def key_process_digitalization_rate(key_processes: Collection[str], digitally_controlled: Collection[str],
                                    telemetry_automatic: Collection[str]) -> float | None:
    """KPI.md 6: key processes digitally controlled AND with automatic telemetry in the period / key processes."""
    return _share(set(digitally_controlled) & set(telemetry_automatic), key_processes)


def equipment_networking_rate(delivered_telemetry: Collection[str],
                              should_be_networked: Collection[str]) -> float | None:
    """KPI.md 6: stations that delivered telemetry in the period / stations that should be networked."""
    return _share(delivered_telemetry, should_be_networked)


def automatic_data_collection_rate(required_items: Collection[str],
                                   received_automatically: Collection[str]) -> float | None:
    """KPI.md 6: required data items received automatically / all required items (manual entries count against)."""
    return _share(received_automatically, required_items)


def digitalized_equipment_share(digital_control: Collection[str], stations: Collection[str]) -> float | None:
    """KPI.md 6: stations with digital control / all stations."""
    return _share(digital_control, stations)


@dataclass(frozen=True)
class DigitalBusiness:
    """KPI.md 6 key business processes digital: which of the five have automatic data; fully digital if all."""

    digital: tuple[str, ...]
    not_digital: tuple[str, ...]
    fully_digital: bool


def key_business_processes_digital(automatic_data: Collection[str]) -> DigitalBusiness:
    """KPI.md 6: of production, quality, equipment, energy, planning, which had automatic data in the period."""
    unknown = set(automatic_data) - set(BUSINESS_PROCESSES)
    if unknown:
        raise InputError("automatic_data", f"unknown business process {sorted(unknown)}")
    digital = tuple(p for p in BUSINESS_PROCESSES if p in automatic_data)
    rest = tuple(p for p in BUSINESS_PROCESSES if p not in automatic_data)
    return DigitalBusiness(digital, rest, not rest)


def share_fully_digital(sites: Sequence[DigitalBusiness]) -> float | None:
    """KPI.md 6 region report: share of sites that are fully digital."""
    return ratio(sum(1 for s in sites if s.fully_digital), len(sites))


@dataclass(frozen=True)
class OeeUplift:
    """KPI.md 6 OEE uplift: relative (cur / base − 1) and in points (cur − base)."""

    relative: float | None
    points: float | None


def oee_uplift(baseline_oee: float | None, current_oee: float | None) -> OeeUplift:
    """KPI.md 6: current vs baseline line OEE."""
    if baseline_oee is None or current_oee is None:
        return OeeUplift(None, None)
    rel = None if baseline_oee == 0 else current_oee / baseline_oee - 1.0
    return OeeUplift(rel, current_oee - baseline_oee)


@dataclass(frozen=True)
class EmissionFactor:
    """Grid emission factor from configuration, with the region and year it applies to (KPI.md 7)."""

    kg_co2_per_kwh: float
    region: str
    year: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.kg_co2_per_kwh) and self.kg_co2_per_kwh >= 0):
            raise InputError("emission_factor", f"{self.kg_co2_per_kwh!r} is not a non-negative factor")


@dataclass(frozen=True)
class Carbon:
    """Scope-2 carbon and coal equivalent of an energy figure (KPI.md 7)."""

    energy_kwh: float
    kg_co2: float
    kgce: float
    factor: EmissionFactor


def kgce(energy_kwh: float) -> float:
    """KPI.md 7: kg coal equivalent = kWh × 0.1229."""
    return energy_kwh * KGCE_PER_KWH


def carbon(energy_kwh: float, factor: EmissionFactor) -> Carbon:
    """KPI.md 7: scope-2 kgCO2 = kWh × grid emission factor; kgce = kWh × 0.1229."""
    if not (math.isfinite(energy_kwh) and energy_kwh >= 0):
        raise InputError("energy_kwh", f"{energy_kwh!r} is not a non-negative finite energy")
    return Carbon(energy_kwh, energy_kwh * factor.kg_co2_per_kwh, kgce(energy_kwh), factor)


def energy_per_unit(energy_kwh: float | None, output: float) -> float | None:
    """KPI.md 7: kWh per output unit (good laptop, wafer out, m² of glass: the caller names the unit)."""
    return ratio(energy_kwh, output)


def maturity_level(score: float) -> int | None:
    """KPI.md 8 bands: 1 at 0.8 ≤ S < 1.8, 2 < 2.8, 3 < 3.8, 4 < 4.8, 5 at ≥ 4.8; None below 0.8."""
    if not math.isfinite(score) or score < 0:
        raise InputError("score", f"{score!r} is not a maturity score")
    if score < 0.8:
        return None
    for level, upper in ((1, 1.8), (2, 2.8), (3, 3.8), (4, 4.8)):
        if score < upper:
            return level
    return 5


Source = Literal["evidenced", "questionnaire"]


@dataclass(frozen=True)
class Maturity:
    """Indicative maturity (KPI.md 8): weighted score, level, and which domain scores came from where."""

    score: float | None
    level: int | None
    level_name: str | None
    sources: Mapping[str, Source]
    indicative: bool = True


def maturity(scores: Mapping[str, tuple[float, Source]], weights: Mapping[str, float]) -> Maturity:
    """KPI.md 8: weighted mean of domain scores (each evidenced by data or from the questionnaire) -> level.

    Weights are explicit (GB/T 39116 weights per capability domain come from configuration); every
    scored domain needs one. No scores gives an unknown score.
    """
    missing = set(scores) - set(weights)
    if missing:
        raise InputError("weights", f"no weight for domain(s) {sorted(missing)}")
    total_w = math.fsum(weights[d] for d in scores)
    if any(weights[d] < 0 for d in scores):
        raise InputError("weights", "weights cannot be negative")
    score = ratio(math.fsum(weights[d] * s for d, (s, _) in scores.items()), total_w)
    level = None if score is None else maturity_level(score)
    return Maturity(score, level, None if level is None else MATURITY_LEVEL_NAMES[level],
                    {d: src for d, (_, src) in scores.items()})
