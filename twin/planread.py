"""Plan KPIs of a line for a baseline and a current period (KPI.md 6), read from the store.

Both periods are computed with ``twin.service.compute``; the plan arithmetic is twin.plan's. Readings:
- capacity uplift: line output per product (good units at the end of each product's route) and line PBT
  per period, weighted by the plant model's line ideal cycle time (the bottleneck, KPI.md 4).
- unit process time reduction over the line's key-process stations (APT and PQ per period).
- changeover time reduction (KPI.md 5) on the changeovers at the line end (its last station).
- "delivered telemetry automatically" = a station whose protocol is not manual sent any state, count,
  energy, product or process row in the current period; required data items are the plant model's
  ``required_data`` of each station (a manual station's items count against).
- key business processes digital (current period, whole line): production = count rows, quality =
  process samples (measurements / inspection values), equipment = state rows, energy = energy rows,
  planning = product / recipe switches (product_event).
- OEE uplift: line OEE; energy per good unit: the line's total kWh per line output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
import psycopg

from twinline.uns.plant import Line, Plant, Protocol

from . import store
from .errors import UnknownAsset
from .iso22400 import ratio
from .plan import (
    CapacityUplift,
    ChangeoverReduction,
    DigitalBusiness,
    OeeUplift,
    OutputPeriod,
    ProcessTime,
    UnitTimeReduction,
    automatic_data_collection_rate,
    capacity_uplift,
    changeover_reduction,
    digitalized_equipment_share,
    equipment_networking_rate,
    key_business_processes_digital,
    key_process_digitalization_rate,
    oee_uplift,
    unit_process_time_reduction,
)
from .results import KpiResult, PeriodResult
from .service import compute

Period = tuple[datetime, datetime]


@dataclass(frozen=True)
class PlanKpis:
    """KPI.md 6 for one line: baseline vs current period, and the digitalization rates of the current one."""

    line: str
    baseline: Period
    current: Period
    capacity: CapacityUplift
    unit_process_time: UnitTimeReduction
    changeover: ChangeoverReduction
    oee_baseline: float | None
    oee_current: float | None
    oee_uplift: OeeUplift
    energy_per_unit_baseline_kwh: float | None
    energy_per_unit_current_kwh: float | None
    key_process_digitalization: float | None
    equipment_networking: float | None
    automatic_data_collection: float | None
    digitalized_equipment: float | None
    business: DigitalBusiness


def _line(plant: Plant, line: str) -> Line:
    key = line.strip().strip("/")
    if key not in plant.lines:
        raise UnknownAsset(key, "plan KPIs need a line path (site/area/line)")
    return plant.lines[key]


def _output(ln: Line, period: PeriodResult) -> OutputPeriod:
    lk = period.lines[str(ln.path)]
    return OutputPeriod(dict(lk.oee.line_gq), lk.oee.line_pbt_s)


def _changeovers(ln: Line, period: PeriodResult) -> pl.DataFrame:
    rows = period.stations[str(ln.stations[-1].path)].changeovers
    return pl.DataFrame([(c.from_product, c.to_product, c.changeover_s, c.total_s) for c in rows],
                        schema={"from_product": pl.String, "to_product": pl.String, "changeover_s": pl.Float64,
                                "total_s": pl.Float64}, orient="row")


def _energy_per_unit(ln: Line, result: KpiResult) -> float | None:
    energies = [st.energy_kwh for st in result.whole.stations.values()]
    known = [e for e in energies if e is not None]
    if not known:
        return None
    return ratio(math.fsum(known), sum(result.whole.lines[str(ln.path)].oee.line_gq.values()))


def plan_kpis(conn: psycopg.Connection[Any], plant: Plant, line: str, *, baseline: Period, current: Period,
              as_of: datetime) -> PlanKpis:
    """Plan KPIs (KPI.md 6) of ``line`` for ``baseline`` vs ``current`` (module docstring for the readings)."""
    ln = _line(plant, line)
    base = compute(conn, plant, str(ln.path), *baseline, as_of=as_of)
    cur = compute(conn, plant, str(ln.path), *current, as_of=as_of)
    cycles = {sku: ln.bottleneck_cycle_s(sku) for sku in ln.routes}
    key = [str(st.path) for st in ln.stations if st.key_process]

    def times(result: KpiResult) -> dict[str, ProcessTime]:
        return {s: ProcessTime(result.whole.stations[s].elements.apt_s, result.whole.stations[s].iso.counts.pq)
                for s in key}

    stations = [str(st.path) for st in ln.stations]
    items = store.telemetry_items(conn, stations, *current, as_of=as_of)
    automatic = {st for st in ln.stations if st.protocol is not Protocol.MANUAL}
    delivered = {str(st.path) for st in automatic if any(s == str(st.path) for s, _ in items)}
    required = [f"{st.path}|{item}" for st in ln.stations for item in st.required_data]
    received = [f"{st.path}|{item}" for st in automatic for item in st.required_data if (str(st.path), item) in items]
    kinds = {item.split(":", 1)[0] for _, item in items}
    business = {name for name, kind in (("production", "count"), ("quality", "process"), ("equipment", "state"),
                                        ("energy", "energy"), ("planning", "product")) if kind in kinds}
    oee_b = base.whole.lines[str(ln.path)].oee.oee
    oee_c = cur.whole.lines[str(ln.path)].oee.oee
    return PlanKpis(
        line=str(ln.path), baseline=baseline, current=current,
        capacity=capacity_uplift(_output(ln, base.whole), _output(ln, cur.whole), cycles),
        unit_process_time=unit_process_time_reduction(key, times(base), times(cur)),
        changeover=changeover_reduction(_changeovers(ln, base.whole), _changeovers(ln, cur.whole)),
        oee_baseline=oee_b, oee_current=oee_c, oee_uplift=oee_uplift(oee_b, oee_c),
        energy_per_unit_baseline_kwh=_energy_per_unit(ln, base), energy_per_unit_current_kwh=_energy_per_unit(ln, cur),
        key_process_digitalization=key_process_digitalization_rate(
            key, [str(st.path) for st in ln.stations if st.digital_control], delivered),
        equipment_networking=equipment_networking_rate(delivered, [str(st.path) for st in ln.stations
                                                                   if st.networked]),
        automatic_data_collection=automatic_data_collection_rate(required, received),
        digitalized_equipment=digitalized_equipment_share([str(st.path) for st in ln.stations if st.digital_control],
                                                          stations),
        business=key_business_processes_digital(business),
    )


__all__ = ["PlanKpis", "plan_kpis"]
