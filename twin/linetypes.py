"""The figures each line type's engineers live by, derived from counts, process values and plant attrs.

What the data supports, and how (counts are per station and product; process values are per station):

Wafer lines (counts are wafers; product attrs ``dies_per_wafer``, ``lot_size``):
- wafer starts = PQ of the first station; wafer outs = GQ of the last station; moves = Σ PQ over all
  stations (a move = a wafer completing one step); moves per day = moves / days of the read window.
- WIP(t) = wafers started − wafers out − wafers scrapped anywhere, cumulated over all history up to t
  (the store holds no lot tracking, so WIP is a flow balance). WIP average over the window is the
  trapezoid (WIP(t0) + WIP(te)) / 2: exact only when WIP moves linearly, an approximation otherwise.
- cycle time (Little's law) = WIP average / throughput (wafer outs per hour). Wafers of a lot travel
  together, so this is also the lot cycle time. Raw process time of a lot = lot_size × Σ ideal cycle time
  over the route (a tool processes a lot wafer by wafer), mix-weighted by wafer outs per product;
  X-factor = cycle time / raw process time of a lot. lots out = Σ_p outs_p / lot_size_p.
- die yield per wafer of product p = mean of the ``good_dies`` process value (the station whose process
  value names ``attr: dies_per_wafer`` in the plant file) / dies_per_wafer_p; unknown without samples.

Panel lines (counts are glass substrates; attrs ``panels_per_glass``, ``glass_m2``, ``panel_size_in``):
- substrate yield = substrates out (GQ of the last station) / substrates in (PQ of the first station): a
  flow ratio, distorted by WIP changes over short windows.
- panel yield of product p = mean good panels per substrate (the inspection station's process value that
  names ``attr: panels_per_glass``) / panels_per_glass_p; per panel size pooled over products of a size;
  good panels per m² = mean good panels per substrate / glass_m2_p; glass m² out = Σ_p outs_p × glass_m2_p.

Laptop lines (counts are units):
- FPY per test station (stations whose id contains "test") = GQ / PQ from counts: a count-based proxy of
  KPI.md 2 FPY, since counts carry no unit ids (re-tested units count again as inspected).
- units per hour = line output (GQ at route ends) per line PBT hour; takt = design takt, the line ideal
  cycle time (bottleneck, KPI.md 4) mix-weighted by output; ideal units per hour = 3600 / takt;
  uph_vs_takt = units per hour / ideal units per hour. There is no demand in the data, so the customer
  takt (available time / demand) cannot be computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg

from twinline.uns.plant import Line, LineType, Plant, Station

from . import store
from .iso22400 import Counts, ratio
from .results import LaptopKpis, PanelKpis, WaferKpis

_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


def type_kpis(conn: psycopg.Connection[Any], plant: Plant, ln: Line, t0: datetime, t1: datetime, *,
              as_of: datetime, plan: store.RollupPlan, station_counts: Mapping[str, Counts],
              line_pbt_s: float) -> WaferKpis | PanelKpis | LaptopKpis | None:
    """The line type's figures for ``[t0, t1)`` (module docstring); None for generic lines."""
    if ln.type is LineType.WAFER:
        return wafer_kpis(conn, plant, ln, t0, t1, as_of=as_of, plan=plan, station_counts=station_counts)
    if ln.type is LineType.PANEL:
        return panel_kpis(conn, plant, ln, t0, t1, as_of=as_of, station_counts=station_counts)
    if ln.type is LineType.LAPTOP:
        return laptop_kpis(ln, station_counts=station_counts, line_pbt_s=line_pbt_s)
    return None


def _process_station(ln: Line, attr: str) -> tuple[Station, str] | None:
    """The station and process value name whose plant entry names product attribute ``attr``."""
    for st in ln.stations:
        for name, spec in dict(st.sim.get("process", {}) or {}).items():
            if isinstance(spec, Mapping) and spec.get("attr") == attr:
                return st, str(name)
    return None


def _attr(plant: Plant, sku: str, name: str) -> float | None:
    product = plant.products.get(sku)
    value = None if product is None else product.attrs.get(name)
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _per_product_mean(conn: psycopg.Connection[Any], ln: Line, attr: str, t0: datetime, t1: datetime,
                      as_of: datetime) -> dict[str, tuple[int, float]]:
    found = _process_station(ln, attr)
    if found is None:
        return {}
    st, name = found
    frame = store.process_by_product(conn, [str(st.path)], name, t0, t1, as_of=as_of)
    return {str(p): (int(n), float(total)) for _, p, n, total in frame.iter_rows() if n}


def _ends(ln: Line, station_counts: Mapping[str, Counts]) -> tuple[Counts, Counts]:
    first = station_counts[str(ln.stations[0].path)]
    last = station_counts[str(ln.stations[-1].path)]
    return first, last


def wafer_kpis(conn: psycopg.Connection[Any], plant: Plant, ln: Line, t0: datetime, t1: datetime, *,
               as_of: datetime, plan: store.RollupPlan, station_counts: Mapping[str, Counts]) -> WaferKpis:
    """Wafer-line figures (module docstring)."""
    te = store.effective_end(t0, t1, as_of)
    first, last = _ends(ln, station_counts)
    stations = [str(s.path) for s in ln.stations]
    cum = store.counts(conn, stations, [(_BEGINNING, t0), (_BEGINNING, te)], as_of=as_of, plan=plan)
    wip = [0, 0]
    for k, station, _, good, scrap, rework, _ in cum.iter_rows():
        if station == stations[0]:
            wip[k] += good + scrap + rework
        if station == stations[-1]:
            wip[k] -= good
        wip[k] -= scrap
    hours = (te - t0).total_seconds() / 3600.0
    moves = sum(c.pq for c in station_counts.values())
    throughput = ratio(last.gq, hours)
    wip_avg = (wip[0] + wip[1]) / 2.0
    cycle_h = None if throughput is None or throughput == 0 else wip_avg / throughput
    rpt_h, lots = _lot_rpt_h(plant, ln, last)
    dies = _per_product_mean(conn, ln, "dies_per_wafer", t0, t1, as_of)
    die_yield = {}
    for sku, (n, total) in dies.items():
        per_wafer = _attr(plant, sku, "dies_per_wafer")
        die_yield[sku] = None if per_wafer is None else total / n / per_wafer
    return WaferKpis(
        wafer_starts=first.pq, wafer_outs=last.gq, moves=moves, moves_per_day=ratio(moves, hours / 24.0),
        wip_start=wip[0], wip_end=wip[1], wip_avg=wip_avg, throughput_per_h=throughput, cycle_time_h=cycle_h,
        raw_process_time_h=rpt_h, x_factor=None if cycle_h is None else ratio(cycle_h, rpt_h), lots_out=lots,
        die_yield=die_yield)


def _lot_rpt_h(plant: Plant, ln: Line, last: Counts) -> tuple[float | None, float | None]:
    """Mix-weighted raw process time of a lot (hours) and lots out; None when an input is unknown."""
    weight = 0
    rpt = 0.0
    lots = 0.0
    for sku, c in last.by_sku.items():
        if c.gq <= 0:
            continue
        lot_size = _attr(plant, sku, "lot_size")
        if lot_size is None or sku not in ln.routes:
            return None, None
        route = ln.route(sku)
        rpt += c.gq * lot_size * math.fsum(st.ideal_cycle_s[sku] for st in route) / 3600.0
        lots += c.gq / lot_size
        weight += c.gq
    return (None, None) if weight == 0 else (rpt / weight, lots)


def panel_kpis(conn: psycopg.Connection[Any], plant: Plant, ln: Line, t0: datetime, t1: datetime, *,
               as_of: datetime, station_counts: Mapping[str, Counts]) -> PanelKpis:
    """Panel-line figures (module docstring)."""
    first, last = _ends(ln, station_counts)
    panels = _per_product_mean(conn, ln, "panels_per_glass", t0, t1, as_of)
    panel_yield: dict[str, float | None] = {}
    per_m2: dict[str, float | None] = {}
    by_size: dict[str, list[float]] = {}
    for sku, (n, total) in panels.items():
        ppg, m2 = _attr(plant, sku, "panels_per_glass"), _attr(plant, sku, "glass_m2")
        panel_yield[sku] = None if ppg is None else total / n / ppg
        per_m2[sku] = None if m2 is None else total / n / m2
        size = plant.products[sku].attrs.get("panel_size_in") if sku in plant.products else None
        if ppg is not None and size is not None:
            acc = by_size.setdefault(f"{size}", [0.0, 0.0])
            acc[0] += total
            acc[1] += n * ppg
    glass: float | None = 0.0
    for sku, c in last.by_sku.items():
        m2 = _attr(plant, sku, "glass_m2")
        if c.gq and m2 is None:
            glass = None
            break
        if glass is not None and m2 is not None:
            glass += c.gq * m2
    return PanelKpis(
        substrates_in=first.pq, substrates_out=last.gq, substrate_yield=ratio(last.gq, first.pq),
        panel_yield=panel_yield, panel_yield_by_size={k: ratio(v[0], v[1]) for k, v in by_size.items()},
        good_panels_per_m2=per_m2, glass_m2_out=glass)


def laptop_kpis(ln: Line, *, station_counts: Mapping[str, Counts], line_pbt_s: float) -> LaptopKpis:
    """Laptop-line figures (module docstring)."""
    fpy = {str(st.path): ratio(station_counts[str(st.path)].gq, station_counts[str(st.path)].pq)
           for st in ln.stations if "test" in st.id}
    out: dict[str, int] = {}
    for sku, ids in ln.routes.items():
        c = station_counts[str(ln.station(ids[-1]).path)].by_sku.get(sku)
        if c is not None and c.gq > 0:
            out[sku] = c.gq
    total = sum(out.values())
    takt = None
    if total:
        cycles = {sku: max(ln.station(i).ideal_cycle_s.get(sku, math.nan) for i in ln.routes[sku]) for sku in out}
        if all(math.isfinite(v) for v in cycles.values()):
            takt = math.fsum(cycles[s] * q for s, q in out.items()) / total
    uph = ratio(total, line_pbt_s / 3600.0)
    ideal = None if takt is None else 3600.0 / takt
    return LaptopKpis(fpy_by_test_station=fpy, units_per_hour=uph, takt_s=takt, ideal_units_per_hour=ideal,
                      uph_vs_takt=ratio(uph, ideal))


__all__ = ["laptop_kpis", "panel_kpis", "type_kpis", "wafer_kpis"]
