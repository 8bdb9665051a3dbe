"""Frozen results of the read side (twin.service, twin.planread) and their plain-data form for JSON / CSV.

A ``KpiResult`` holds the whole period and, when asked, one ``PeriodResult`` per shift instance. Each
period has per-station ``StationKpis`` (ISO 22400 elements and KPIs, E10 / E79, loss tree, top reasons,
changeovers, data quality) and per-line ``LineKpis`` (line OEE, line yield, station OEEs beside it,
bottleneck, the line type's own figures). None means unknown everywhere; nothing is rounded.
``as_plain`` turns any result into JSON-ready dicts / lists (datetimes as ISO 8601 strings).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .e10 import E10Kpis
from .iso22400 import Counts, Iso22400
from .lines import LineOee, LineYield
from .losses import Bottleneck, LossTree
from .timemodel import TimeElements


@dataclass(frozen=True)
class Changeover:
    """One changeover (KPI.md 5): last good unit of A to first good unit of B, with its parts."""

    from_product: str
    to_product: str
    start: datetime
    end: datetime
    changeover_s: float
    setup_s: float
    run_up_s: float | None
    total_s: float | None


@dataclass(frozen=True)
class MatrixCell:
    """One from x to cell of the changeover matrix: count and mean durations."""

    from_product: str
    to_product: str
    count: int
    mean_changeover_s: float
    mean_total_s: float | None


@dataclass(frozen=True)
class ReasonLoss:
    """Loss seconds of one (element, state, reason)."""

    element: str
    state: str
    reason: str
    seconds: float


@dataclass(frozen=True)
class StaleInterval:
    """A stretch of a period excluded because the station's telemetry was silent (twin.store.stale_gaps).

    ``last_seen`` is the station's last telemetry instant before the silence; the stretch starts
    ``stale_after_s`` later (possibly clipped to the period start).
    """

    start: datetime
    end: datetime
    last_seen: datetime


@dataclass(frozen=True)
class DataQuality:
    """How much of the period the result rests on (issue 7 part 3).

    ``covered_fraction`` = (POT − nodata) / POT; ``nodata_s`` = scheduled seconds without a trusted state
    (no entry yet, bad / uncertain quality, stale telemetry, after ``as_of``); the parts are calendar
    seconds of the period (scheduled or not) by cause, each second under one cause only. ``stale_s`` is
    the time whose state was excluded because the station's telemetry was silent longer than the plant's
    ``stale_after_s`` (a trusted NST is kept: a non-scheduled station need not publish);
    ``stale_intervals`` lists those stretches inside the period.
    """

    covered_fraction: float | None
    nodata_s: float
    no_entry_s: float
    bad_quality_s: float
    after_as_of_s: float
    stale_s: float = 0.0
    stale_intervals: tuple[StaleInterval, ...] = ()


@dataclass(frozen=True)
class StationKpis:
    """Every station figure of one period."""

    station: str
    line: str
    elements: TimeElements
    iso: Iso22400
    e10: E10Kpis
    energy_kwh: float | None
    losses: LossTree
    top_reasons: tuple[ReasonLoss, ...]
    changeovers: tuple[Changeover, ...]
    matrix: tuple[MatrixCell, ...]
    quality: DataQuality


@dataclass(frozen=True)
class WaferKpis:
    """Wafer-line figures (see twin.linetypes for what the data supports and how each is derived)."""

    wafer_starts: int
    wafer_outs: int
    moves: int
    moves_per_day: float | None
    wip_start: int
    wip_end: int
    wip_avg: float
    throughput_per_h: float | None
    cycle_time_h: float | None
    raw_process_time_h: float | None
    x_factor: float | None
    lots_out: float | None
    die_yield: Mapping[str, float | None]


@dataclass(frozen=True)
class PanelKpis:
    """Panel-line figures (twin.linetypes)."""

    substrates_in: int
    substrates_out: int
    substrate_yield: float | None
    panel_yield: Mapping[str, float | None]
    panel_yield_by_size: Mapping[str, float | None]
    good_panels_per_m2: Mapping[str, float | None]
    glass_m2_out: float | None


@dataclass(frozen=True)
class LaptopKpis:
    """Laptop / terminal-line figures (twin.linetypes)."""

    fpy_by_test_station: Mapping[str, float | None]
    units_per_hour: float | None
    takt_s: float | None
    ideal_units_per_hour: float | None
    uph_vs_takt: float | None


@dataclass(frozen=True)
class LineKpis:
    """Line figures of one period (KPI.md 4): line OEE with station OEEs beside it, never averaged in."""

    line: str
    line_type: str
    oee: LineOee
    line_yield: LineYield
    yield_by_product: Mapping[str, LineYield]
    station_oee: Mapping[str, float | None]
    bottleneck: Bottleneck
    top_reasons: tuple[ReasonLoss, ...]
    type_kpis: WaferKpis | PanelKpis | LaptopKpis | None


@dataclass(frozen=True)
class PeriodResult:
    """One period: the whole query window or one shift instance (``label`` says which)."""

    label: str
    t0: datetime
    t1: datetime
    stations: Mapping[str, StationKpis]
    lines: Mapping[str, LineKpis]


@dataclass(frozen=True)
class KpiResult:
    """Result of ``twin.service.compute``: the whole period, and per shift when asked."""

    asset: str
    kind: str
    t0: datetime
    t1: datetime
    as_of: datetime
    settings: Mapping[str, bool | int | float | str]
    whole: PeriodResult
    shifts: tuple[PeriodResult, ...]


_DERIVED: dict[type, tuple[str, ...]] = {
    TimeElements: ("pot_s", "pbt_s", "aupt_s", "aubt_s", "covered_fraction"),
}


def as_plain(value: Any) -> Any:
    """JSON-ready form of a result: dataclasses and mappings as dicts, tuples as lists, datetimes ISO 8601.

    Derived properties of TimeElements (POT, PBT, ...) and totals of Counts are included; NaN / inf
    become None (unknown), never a number.
    """
    if isinstance(value, Counts):
        return {"pq": value.pq, "gq": value.gq, "sq": value.sq, "rq": value.rq,
                "by_sku": {k: as_plain(v) for k, v in value.by_sku.items()}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: as_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in _DERIVED.get(type(value), ()):
            out[name] = as_plain(getattr(value, name))
        return out
    if isinstance(value, Mapping):
        return {str(k): as_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


__all__ = ["Changeover", "DataQuality", "KpiResult", "LaptopKpis", "LineKpis", "MatrixCell", "PanelKpis",
           "PeriodResult", "ReasonLoss", "StaleInterval", "StationKpis", "WaferKpis", "as_plain"]
