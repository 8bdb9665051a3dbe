"""SEMI E10 equipment time and reliability metrics, and SEMI E79 OEE (KPI.md section 3).

E10 works on the equipment's own states, not the plant calendar: total time = NST + operations time,
operations = uptime (PRD + SBY + ENG) + downtime (SDT + UDT); setup is scheduled downtime. Readings
fixed here:
- Intervals of excluded quality (bad / nodata) and gaps are left out of total time and reported as
  ``nodata_s`` (consistent with the ISO time model: no data is never counted as up or down).
- Failures are the failure episodes of twin.episodes starting in the period; MTTR uses their repair
  time (UDT failure + repair, excluding maintenance delay) whole, MTBFp the period's PRD time.
- Downtime events are entries into a contiguous SDT/UDT run starting in the period (twin.episodes).
- E79 (KPI.md 3): AE = uptime / total time, OE = PRD / uptime, RE = Σ THT_i × actual_i / PRD,
  QE = Σ THT_i × effective_i / Σ THT_i × actual_i with effective = actual − equipment-caused scrap −
  equipment-caused rework. A recipe with units but no THT makes RE and QE unknown and is listed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from ._intervals import (
    EXCLUDED_QUALITIES,
    STATE_COLUMNS,
    US_PER_S,
    Pairs,
    StationStates,
    Window,
    check_qualities,
    overlaps,
    period_us,
    require_columns,
)
from .episodes import downtime_events, failure_episodes
from .errors import InputError
from .iso22400 import effective_time_s, ratio


@dataclass(frozen=True)
class E10Times:
    """Seconds per E10 basic state in a period; ``nodata_s`` is time without a trusted state. Addable."""

    period_s: float
    prd_s: float
    sby_s: float
    eng_s: float
    sdt_s: float
    udt_s: float
    nst_s: float
    nodata_s: float

    @property
    def uptime_s(self) -> float:
        """E10 uptime = PRD + SBY + ENG (KPI.md 3)."""
        return self.prd_s + self.sby_s + self.eng_s

    @property
    def downtime_s(self) -> float:
        """E10 downtime = SDT + UDT (KPI.md 3)."""
        return self.sdt_s + self.udt_s

    @property
    def operations_s(self) -> float:
        """E10 operations time = uptime + downtime (KPI.md 3)."""
        return self.uptime_s + self.downtime_s

    @property
    def total_time_s(self) -> float:
        """E10 total time = NST + operations time (KPI.md 3); excludes nodata."""
        return self.nst_s + self.operations_s

    def __add__(self, other: E10Times) -> E10Times:
        if not isinstance(other, E10Times):
            return NotImplemented
        return E10Times(*(a + b for a, b in zip(_fields(self), _fields(other), strict=True)))

    def __radd__(self, other: Any) -> E10Times:
        if other == 0:
            return self
        return NotImplemented


def _fields(t: E10Times) -> tuple[float, ...]:
    return (t.period_s, t.prd_s, t.sby_s, t.eng_s, t.sdt_s, t.udt_s, t.nst_s, t.nodata_s)


_E10_STATES = ("PRD", "SBY", "ENG", "SDT", "UDT", "NST")


def e10_times_many(states: pl.DataFrame | StationStates, periods: Sequence[Window], stations: Sequence[str], *,
                   pairs: Iterable[tuple[int, str]] | None = None,
                   excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> pl.DataFrame:
    """Seconds per E10 state (KPI.md 3) of many (period, station) pairs in one vectorised pass.

    ``pairs`` (period index, station) default every period x station. Columns: period, station, period_s,
    prd_s, sby_s, eng_s, sdt_s, udt_s, nst_s, nodata_s; each row equals ``e10_times`` of that pair.
    """
    check_qualities(excluded_qualities)
    index = {name: g for g, name in enumerate(stations)}
    for _, name in pairs or ():
        if name not in index:
            raise InputError("pairs", f"station {name!r} is not in the batch")
    pr = Pairs.of(periods, len(index), None if pairs is None else [(k, index[name]) for k, name in pairs])
    st = StationStates.of(states, stations)
    trusted = st.frame.filter(~pl.col("quality").is_in(sorted(excluded_qualities)))
    code = trusted.select(pl.col("state").replace_strict(_E10_STATES, range(len(_E10_STATES)),
                                                        return_dtype=pl.Int64))[:, 0].to_numpy()
    rep, idx, length = overlaps(pr, *st.arrays(trusted))
    width = len(_E10_STATES)
    us = np.bincount(rep * width + code[idx], weights=length.astype(np.float64),
                     minlength=len(pr) * width).reshape(len(pr), width)
    period_s = pr.period_s()
    return pl.DataFrame([
        pl.Series("period", pr.period, dtype=pl.Int64),
        pl.Series("station", list(st.stations), dtype=pl.String).gather(pr.g),
        pl.Series("period_s", period_s, dtype=pl.Float64),
        *(pl.Series(f"{name.lower()}_s", us[:, i] / US_PER_S, dtype=pl.Float64) for i, name in enumerate(_E10_STATES)),
        pl.Series("nodata_s", period_s - us.sum(axis=1) / US_PER_S, dtype=pl.Float64),
    ])


def e10_times_by_pair(frame: pl.DataFrame) -> dict[tuple[int, str], E10Times]:
    """``E10Times`` per (period, station) from an ``e10_times_many`` frame."""
    return {(int(r[0]), str(r[1])): E10Times(*r[2:]) for r in frame.iter_rows()}


def e10_times(states: pl.DataFrame, t0: datetime, t1: datetime, *,
              excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> E10Times:
    """Seconds per E10 state in ``[t0, t1)`` (KPI.md 3 time definitions); one pair of ``e10_times_many``."""
    check_qualities(excluded_qualities)
    period_us(t0, t1)
    require_columns(states, STATE_COLUMNS, "states")
    single = states.select(pl.lit("", pl.String).alias("station"), *STATE_COLUMNS)
    return e10_times_by_pair(e10_times_many(single, [(t0, t1)], [""], excluded_qualities=excluded_qualities))[(0, "")]


@dataclass(frozen=True)
class RecipeUnits:
    """Units of one recipe in the period and those the equipment caused to be scrapped or reworked (E79)."""

    actual: int
    equipment_scrap: int = 0
    equipment_rework: int = 0

    def __post_init__(self) -> None:
        if min(self.actual, self.equipment_scrap, self.equipment_rework) < 0:
            raise InputError("recipe_units", "units cannot be negative")
        if self.equipment_scrap + self.equipment_rework > self.actual:
            raise InputError("recipe_units", "equipment-caused scrap + rework exceed the actual units")

    @property
    def effective(self) -> int:
        """Effective units = actual − equipment-caused scrap − equipment-caused rework (KPI.md 3)."""
        return self.actual - self.equipment_scrap - self.equipment_rework


@dataclass(frozen=True)
class E10Kpis:
    """SEMI E10 / E79 metrics (KPI.md 3); None = unknown."""

    times: E10Times
    operational_uptime: float | None
    operational_utilization: float | None
    total_utilization: float | None
    mtbf_p_s: float | None
    mcbf_cycles: float | None
    mttr_s: float | None
    mtol_s: float | None
    e79_ae: float | None
    e79_oe: float | None
    e79_re: float | None
    e79_qe: float | None
    e79_oee: float | None
    failures: int
    downtime_events: int
    missing_tht: tuple[str, ...]


def e10_kpis(times: E10Times, *, failures: int, repair_s: float, downtime_event_count: int, cycles: int | None,
             tht_s: Mapping[str, float], recipe_units: Mapping[str, RecipeUnits]) -> E10Kpis:
    """E10 and E79 metrics of KPI.md section 3 from state times and event figures.

    ``repair_s`` is the failure episodes' UDT time excluding maintenance delay; ``cycles`` None means
    no cycle counter (MCBF unknown); ``tht_s`` is the theoretical time per unit of each recipe.
    """
    if min(failures, downtime_event_count) < 0 or (cycles is not None and cycles < 0):
        raise InputError("failures", "event counts cannot be negative")
    t = times
    actual_s, missing = effective_time_s({r: u.actual for r, u in recipe_units.items()}, tht_s)
    good_s, _ = effective_time_s({r: u.effective for r, u in recipe_units.items()}, tht_s)
    ae, oe = ratio(t.uptime_s, t.total_time_s), ratio(t.prd_s, t.uptime_s)
    re = None if missing else ratio(actual_s, t.prd_s)
    qe = None if missing else ratio(good_s, actual_s)
    oee = None if None in (ae, oe, re, qe) else math.prod(x for x in (ae, oe, re, qe) if x is not None)
    return E10Kpis(
        times=t,
        operational_uptime=ratio(t.uptime_s, t.operations_s),
        operational_utilization=ratio(t.prd_s, t.operations_s),
        total_utilization=ratio(t.prd_s, t.total_time_s),
        mtbf_p_s=ratio(t.prd_s, failures), mcbf_cycles=ratio(cycles, failures), mttr_s=ratio(repair_s, failures),
        mtol_s=ratio(t.downtime_s, downtime_event_count),
        e79_ae=ae, e79_oe=oe, e79_re=re, e79_qe=qe, e79_oee=oee,
        failures=failures, downtime_events=downtime_event_count, missing_tht=missing,
    )


def e10_from_states(states: pl.DataFrame, t0: datetime, t1: datetime, *, cycles: int | None,
                    tht_s: Mapping[str, float], recipe_units: Mapping[str, RecipeUnits],
                    excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> E10Kpis:
    """``e10_kpis`` with times, failures, repair time and downtime events taken from the state frame (KPI.md 3)."""
    episodes = failure_episodes(states, t0, t1, excluded_qualities=excluded_qualities)
    return e10_kpis(
        e10_times(states, t0, t1, excluded_qualities=excluded_qualities),
        failures=episodes.height, repair_s=float(episodes["repair_s"].sum()),
        downtime_event_count=downtime_events(states, t0, t1, excluded_qualities=excluded_qualities),
        cycles=cycles, tht_s=tht_s, recipe_units=recipe_units,
    )
