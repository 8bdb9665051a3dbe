"""Typed simulation parameters read from the plant model's free `sim:` mappings.

Line `sim:` keys: schedule (list of {sku, units}; cycled; units are jobs: substrates, lots or laptops),
lot_size (wafers per job, default 1), buffer_capacity (jobs between two stations, default 4),
repair_crews (shared crew size, default 1), speed_factor (actual / ideal cycle, default 1.0), cycle_cv
(cycle time noise, default 0.02), energy_interval_s (longest gap between energy samples while running,
default 300), process_every_units (process values every n-th round, default 5).

Station `sim:` keys (all optional): mtbf_h / mttr_min / mttr_cv / response_min (failures; 0 = none),
microstops_per_h / microstop_s, setup_min / setup_cv, runup_units / runup_slowdown (first units after a
changeover run slower, linearly back to normal), scrap / rework (probabilities per unit), rework_to
(station id the reworked unit goes back to; default itself), parallel (chambers / heads processing units
together, alias chambers), buffer_after (overrides buffer_capacity), power_kw ({E10 state: kW}; missing
states fall back to SBY, then 0), pm ({every_h, hours, offset_h}: periodic preventive maintenance anchored
at the plant epoch), process ({name: {unit, mean, sd}} or {name: {unit, attr, yield_mean, yield_sd}} for
product-attribute yields such as good dies per wafer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twinline.simulators.errors import SimConfigError
from twinline.uns.plant import Line, Station
from twinline.uns.states import E10

_LINE_KEYS = {"schedule", "lot_size", "buffer_capacity", "repair_crews", "speed_factor", "cycle_cv",
              "energy_interval_s", "process_every_units"}
_STATION_KEYS = {"mtbf_h", "mttr_min", "mttr_cv", "response_min", "microstops_per_h", "microstop_s", "setup_min",
                 "setup_cv", "runup_units", "runup_slowdown", "scrap", "rework", "rework_to", "parallel", "chambers",
                 "buffer_after", "power_kw", "pm", "process"}


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    name: str
    unit: str
    mean: float
    sd: float
    attr: str | None = None  # when set, value = product attrs[attr] * yield draw (mean / sd are the yield)


@dataclass(frozen=True, slots=True)
class PmSpec:
    every_s: float
    duration_s: float
    offset_s: float


@dataclass(frozen=True, slots=True)
class StationParams:
    mtbf_s: float
    mttr_s: float
    mttr_cv: float
    response_s: float
    microstop_rate_per_s: float
    microstop_s: float
    setup_s: float
    setup_cv: float
    runup_units: int
    runup_slowdown: float
    scrap: float
    rework: float
    rework_to: int  # station index
    parallel: int
    buffer_after: int
    power_kw: dict[E10, float]
    pm: PmSpec | None
    process: tuple[ProcessSpec, ...]


@dataclass(frozen=True, slots=True)
class LineParams:
    schedule: tuple[tuple[str, int], ...]
    lot_size: int
    repair_crews: int
    speed_factor: float
    cycle_cv: float
    energy_interval_s: float
    process_every_units: int
    stations: tuple[StationParams, ...]


def _num(node: Mapping[str, Any], key: str, field: str, default: float, lo: float = 0.0,
         hi: float = math.inf) -> float:
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SimConfigError(f"{field}.{key}", f"expected a number, got {value!r}")
    if not lo <= float(value) <= hi:
        raise SimConfigError(f"{field}.{key}", f"must be between {lo:g} and {hi:g}, got {value!r}")
    return float(value)


def _int(node: Mapping[str, Any], key: str, field: str, default: int, lo: int = 0) -> int:
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise SimConfigError(f"{field}.{key}", f"expected a whole number >= {lo}, got {value!r}")
    return value


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SimConfigError(field, f"expected a mapping, got {type(value).__name__}")
    return value


def line_params(line: Line) -> LineParams:
    """Validate the line's and its stations' `sim:` sections; SimConfigError names the field."""
    where = f"{line.path}.sim"
    node = _mapping(line.sim, where)
    unknown = set(node) - _LINE_KEYS
    if unknown:
        raise SimConfigError(f"{where}.{sorted(unknown)[0]}", f"unknown key (allowed: {', '.join(sorted(_LINE_KEYS))})")
    schedule = _schedule(node.get("schedule"), f"{where}.schedule", line)
    capacity = _int(node, "buffer_capacity", where, 4, lo=1)
    ids = [s.id for s in line.stations]
    stations = tuple(_station(st, i, ids, capacity, schedule) for i, st in enumerate(line.stations))
    return LineParams(
        schedule=schedule,
        lot_size=_int(node, "lot_size", where, 1, lo=1),
        repair_crews=_int(node, "repair_crews", where, 1, lo=1),
        speed_factor=_num(node, "speed_factor", where, 1.0, lo=0.5, hi=5.0),
        cycle_cv=_num(node, "cycle_cv", where, 0.02, hi=0.5),
        energy_interval_s=_num(node, "energy_interval_s", where, 300.0, lo=1.0),
        process_every_units=_int(node, "process_every_units", where, 5, lo=1),
        stations=stations,
    )


def _schedule(value: Any, field: str, line: Line) -> tuple[tuple[str, int], ...]:
    if value is None:
        skus = sorted(line.routes)
        if not skus:
            raise SimConfigError(field, "no schedule and no routed product on this line")
        return ((skus[0], 1000),)
    if not isinstance(value, list) or not value:
        raise SimConfigError(field, "expected a non-empty list of {sku, units}")
    out: list[tuple[str, int]] = []
    for i, item in enumerate(value):
        entry = _mapping(item, f"{field}[{i}]")
        sku = entry.get("sku")
        if not isinstance(sku, str) or sku not in line.routes:
            raise SimConfigError(f"{field}[{i}].sku", f"{sku!r} is not a product routed on {line.path}")
        if line.routes[sku] != tuple(s.id for s in line.stations):
            raise SimConfigError(f"{field}[{i}].sku", f"{sku} must visit every station of the line in order "
                                                      "(the simulator models serial lines)")
        out.append((sku, _int(entry, "units", f"{field}[{i}]", 0, lo=1)))
    return tuple(out)


def _station(st: Station, index: int, ids: list[str], capacity: int,
             schedule: tuple[tuple[str, int], ...]) -> StationParams:
    where = f"{st.path}.sim"
    node = _mapping(st.sim, where)
    unknown = set(node) - _STATION_KEYS
    if unknown:
        raise SimConfigError(f"{where}.{sorted(unknown)[0]}",
                             f"unknown key (allowed: {', '.join(sorted(_STATION_KEYS))})")
    for sku, _ in schedule:
        if sku not in st.ideal_cycle_s:
            raise SimConfigError(f"{st.path}.ideal_cycle_s", f"no ideal cycle time for scheduled product {sku}")
    rework_to = node.get("rework_to", st.id)
    if rework_to not in ids or ids.index(rework_to) > index:
        raise SimConfigError(f"{where}.rework_to", f"{rework_to!r} is not this station or one before it")
    pm_node = _mapping(node.get("pm"), f"{where}.pm")
    pm = None
    if pm_node:
        pm = PmSpec(_num(pm_node, "every_h", f"{where}.pm", 168.0, lo=1.0) * 3600,
                    _num(pm_node, "hours", f"{where}.pm", 4.0, lo=0.01) * 3600,
                    _num(pm_node, "offset_h", f"{where}.pm", 0.0) * 3600)
    power: dict[E10, float] = {}
    for key, value in _mapping(node.get("power_kw"), f"{where}.power_kw").items():
        if key not in E10.__members__:
            raise SimConfigError(f"{where}.power_kw.{key}", "not a SEMI E10 state")
        power[E10(key)] = _num({"v": value}, "v", f"{where}.power_kw.{key}", 0.0)
    standby = power.get(E10.SBY, 0.0)
    full = {s: power.get(s, standby if s is not E10.NST else power.get(E10.NST, standby * 0.2)) for s in E10}
    return StationParams(
        mtbf_s=_num(node, "mtbf_h", where, 0.0) * 3600, mttr_s=_num(node, "mttr_min", where, 30.0) * 60,
        mttr_cv=_num(node, "mttr_cv", where, 0.6, hi=3.0), response_s=_num(node, "response_min", where, 2.0) * 60,
        microstop_rate_per_s=_num(node, "microstops_per_h", where, 0.0) / 3600,
        microstop_s=_num(node, "microstop_s", where, 30.0, lo=0.1),
        setup_s=_num(node, "setup_min", where, 0.0) * 60, setup_cv=_num(node, "setup_cv", where, 0.2, hi=2.0),
        runup_units=_int(node, "runup_units", where, 10),
        runup_slowdown=_num(node, "runup_slowdown", where, 1.25, lo=1.0),
        scrap=_num(node, "scrap", where, 0.0, hi=0.5), rework=_num(node, "rework", where, 0.0, hi=0.5),
        rework_to=ids.index(rework_to),
        parallel=_int(node, "parallel", where, _int(node, "chambers", where, 1, lo=1), lo=1),
        buffer_after=_int(node, "buffer_after", where, capacity, lo=1), power_kw=full, pm=pm,
        process=tuple(_process(name, spec, f"{where}.process.{name}")
                      for name, spec in _mapping(node.get("process"), f"{where}.process").items()),
    )


def _process(name: str, value: Any, field: str) -> ProcessSpec:
    spec = _mapping(value, field)
    unit = spec.get("unit", "")
    if not isinstance(unit, str) or len(unit) > 32:
        raise SimConfigError(f"{field}.unit", "expected a unit text of at most 32 characters")
    attr = spec.get("attr")
    if attr is not None:
        if not isinstance(attr, str):
            raise SimConfigError(f"{field}.attr", "expected a product attribute name")
        return ProcessSpec(name, unit, _num(spec, "yield_mean", field, 0.9, hi=1.0),
                           _num(spec, "yield_sd", field, 0.0, hi=1.0), attr)
    return ProcessSpec(name, unit, _num(spec, "mean", field, 0.0, lo=-math.inf), _num(spec, "sd", field, 0.0))
