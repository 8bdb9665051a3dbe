"""ISO 22400-2 KPIs of one station over one period (KPI.md section 2).

Inputs are the period's ``TimeElements`` (twin.timemodel), the produced / good / scrap / rework
quantities per product (``Counts``), the ideal cycle time per product, energy and failure figures.
Every ratio whose denominator is zero, or whose inputs are unknown, is ``None``; nothing is rounded.

Readings fixed here (KPI.md leaves them open):
- Throughput rate = PQ / calendar length of the period (``TimeElements.period_s``), per hour; not per POT
  or PBT hour.
- OEE = A × E × QR. When the station had planned busy time (PBT > 0) and produced nothing (PQ = 0), OEE
  and NEE are 0: the time is known and no unit was made, so E × QR (an undefined 0/0 product of
  ratios that are finite by definition) cannot make the result "unknown".
- MTBF and MTTR with no failure in the period are ``None`` (undefined, not infinite or zero).
- A product with PQ > 0 whose ideal cycle time is unknown makes E, OEE and NEE ``None`` and is listed
  in ``missing_ideal_cycle``; products with PQ = 0 do not need one.
- FPY: units inspected are the distinct units with at least one test; a unit is good first pass when
  its earliest test passed and it had not been reworked before that test.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import polars as pl

from ._intervals import require_columns
from .episodes import downtime_events, failure_episodes
from .errors import InputError
from .timemodel import TimeElements

__all__ = ["Counts", "Fpy", "Iso22400", "ProductCounts", "downtime_events", "effective_time_s", "failure_episodes",
           "first_pass_yield", "kpis", "ratio"]


def ratio(num: float | None, den: float | None) -> float | None:
    """num / den, or None when either is unknown or the denominator is zero (KPI.md: no data is unknown)."""
    if num is None or den is None or den == 0:
        return None
    return num / den


@dataclass(frozen=True)
class ProductCounts:
    """Produced, good, scrap and rework quantities of one product (ISO 22400-2 PQ, GQ, SQ, RQ)."""

    pq: int
    gq: int
    sq: int = 0
    rq: int = 0

    def __post_init__(self) -> None:
        if min(self.pq, self.gq, self.sq, self.rq) < 0:
            raise InputError("counts", "quantities cannot be negative")
        if self.gq + self.sq > self.pq or self.rq > self.pq:
            raise InputError("counts", f"GQ {self.gq} + SQ {self.sq} and RQ {self.rq} must each fit in PQ {self.pq}")

    def __add__(self, other: ProductCounts) -> ProductCounts:
        return ProductCounts(self.pq + other.pq, self.gq + other.gq, self.sq + other.sq, self.rq + other.rq)


@dataclass(frozen=True)
class Counts:
    """Quantities per product (SKU) of one station over one period; totals as properties."""

    by_sku: Mapping[str, ProductCounts] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_sku", MappingProxyType(dict(self.by_sku)))

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_sku)

    @property
    def pq(self) -> int:
        """Total produced quantity."""
        return sum(c.pq for c in self.by_sku.values())

    @property
    def gq(self) -> int:
        """Total good quantity."""
        return sum(c.gq for c in self.by_sku.values())

    @property
    def sq(self) -> int:
        """Total scrap quantity."""
        return sum(c.sq for c in self.by_sku.values())

    @property
    def rq(self) -> int:
        """Total rework quantity."""
        return sum(c.rq for c in self.by_sku.values())

    def __add__(self, other: Counts) -> Counts:
        merged = dict(self.by_sku)
        for sku, c in other.by_sku.items():
            merged[sku] = merged[sku] + c if sku in merged else c
        return Counts(merged)

    def __radd__(self, other: Any) -> Counts:
        if other == 0:
            return self
        return NotImplemented

    @classmethod
    def from_events(cls, events: pl.DataFrame) -> Counts:
        """Sum count events (columns product, good, scrap, rework); PQ = good + scrap + rework per product."""
        require_columns(events, ("product", "good", "scrap", "rework"), "events")
        sums = events.group_by("product").agg(pl.col("good").sum(), pl.col("scrap").sum(), pl.col("rework").sum())
        return cls({str(r["product"]): ProductCounts(int(r["good"] + r["scrap"] + r["rework"]), int(r["good"]),
                                                     int(r["scrap"]), int(r["rework"]))
                    for r in sums.iter_rows(named=True)})


def _check_cycles(ideal_cycle_s: Mapping[str, float]) -> None:
    for sku, value in ideal_cycle_s.items():
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"ideal_cycle_s[{sku}]", f"{value!r} is not a positive, finite time")


def effective_time_s(quantity: Mapping[str, int], ideal_cycle_s: Mapping[str, float]) -> tuple[float, tuple[str, ...]]:
    """Σ_p PRI_p × quantity_p (KPI.md 2, numerator of E) and the products with quantity > 0 but no PRI."""
    _check_cycles(ideal_cycle_s)
    missing = tuple(sorted(sku for sku, q in quantity.items() if q > 0 and sku not in ideal_cycle_s))
    total = math.fsum(ideal_cycle_s[sku] * q for sku, q in quantity.items() if q > 0 and sku in ideal_cycle_s)
    return total, missing


@dataclass(frozen=True)
class Iso22400:
    """ISO 22400-2 KPIs of one station over one period (KPI.md 2); None = unknown."""

    availability: float | None
    effectiveness: float | None
    quality_ratio: float | None
    oee: float | None
    nee: float | None
    setup_rate: float | None
    technical_efficiency: float | None
    allocation_efficiency: float | None
    utilization_efficiency: float | None
    throughput_rate_per_h: float | None
    scrap_ratio: float | None
    rework_ratio: float | None
    energy_per_good_unit_kwh: float | None
    mtbf_s: float | None
    mttr_s: float | None
    missing_ideal_cycle: tuple[str, ...]
    elements: TimeElements
    counts: Counts
    failures: int
    changeover_counts_as_planned: bool


def _product(*factors: float | None) -> float | None:
    if any(f is None for f in factors):
        return None
    return math.prod(f for f in factors if f is not None)


def kpis(elements: TimeElements, counts: Counts, ideal_cycle_s: Mapping[str, float], energy_kwh: float | None,
         failures: int, failure_udt_s: float | None) -> Iso22400:
    """All ISO 22400-2 station KPIs of KPI.md section 2 (see the module docstring for the readings).

    ``failures`` is the number of failure episodes starting in the period and ``failure_udt_s`` their
    total UDT time (``failure_episodes(...)["udt_s"].sum()``); MTBF = (APT + AUST) / failures,
    MTTR = failure_udt_s / failures. ``energy_kwh`` None means no energy data.
    """
    if failures < 0:
        raise InputError("failures", "cannot be negative")
    if energy_kwh is not None and not (math.isfinite(energy_kwh) and energy_kwh >= 0):
        raise InputError("energy_kwh", f"{energy_kwh!r} is not a non-negative finite energy")
    e = elements
    valuable_s, missing = effective_time_s({s: c.pq for s, c in counts.by_sku.items()}, ideal_cycle_s)
    availability = ratio(e.apt_s, e.pbt_s)
    effectiveness = None if missing else ratio(valuable_s, e.apt_s)
    quality_ratio = ratio(counts.gq, counts.pq)
    produced_nothing = e.pbt_s > 0 and counts.pq == 0
    oee = 0.0 if produced_nothing else _product(availability, effectiveness, quality_ratio)
    nee = 0.0 if produced_nothing else _product(ratio(e.aupt_s, e.pbt_s), effectiveness, quality_ratio)
    return Iso22400(
        availability=availability, effectiveness=effectiveness, quality_ratio=quality_ratio, oee=oee, nee=nee,
        setup_rate=ratio(e.aust_s, e.aupt_s),
        technical_efficiency=ratio(e.apt_s, e.apt_s + e.adet_s),
        allocation_efficiency=ratio(e.aubt_s, e.pbt_s),
        utilization_efficiency=ratio(e.apt_s, e.aubt_s),
        throughput_rate_per_h=ratio(counts.pq, e.period_s / 3600.0),
        scrap_ratio=ratio(counts.sq, counts.pq), rework_ratio=ratio(counts.rq, counts.pq),
        energy_per_good_unit_kwh=ratio(energy_kwh, counts.gq),
        mtbf_s=ratio(e.aupt_s, failures), mttr_s=ratio(failure_udt_s, failures),
        missing_ideal_cycle=missing, elements=e, counts=counts, failures=failures,
        changeover_counts_as_planned=e.changeover_counts_as_planned,
    )


@dataclass(frozen=True)
class Fpy:
    """First pass yield (KPI.md 2): units good at first test without rework / units inspected."""

    fpy: float | None
    units_inspected: int
    units_good_first_pass: int


def first_pass_yield(tests: pl.DataFrame) -> Fpy:
    """FPY from test results (KPI.md 2): columns unit, ts, passed (bool), optional reworked (bool).

    ``reworked`` marks a test taken after the unit was reworked; a unit counts as good first pass when
    its earliest test passed and was not after rework. Units inspected = distinct units tested.
    """
    require_columns(tests, ("unit", "ts", "passed"), "tests")
    reworked = pl.col("reworked") if "reworked" in tests.columns else pl.lit(False)
    first = (tests.with_columns(reworked.fill_null(False).alias("_rw"))
             .sort("ts").group_by("unit", maintain_order=True).first())
    inspected = first.height
    good = int(first.filter(pl.col("passed") & ~pl.col("_rw")).height)
    return Fpy(ratio(good, inspected), inspected, good)
