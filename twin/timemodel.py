"""ISO 22400 time model: every second of a station's period lands in exactly one time element.

Implements KPI.md section 1. Inputs are the station's SEMI E10 state intervals (polars: start, end,
state, reason, quality), the period ``[t0, t1)``, the scheduled windows (shift instances of the plant
calendar) and the planned-downtime windows. Precedence, highest first, for each instant:

1. outside every scheduled window                  -> outside POT (not counted)
2. inside a planned-downtime window                -> PDOT (the calendar overrides the state)
3. no state interval, or quality bad / nodata      -> nodata (excluded, reported, not in PBT)
4. the state: NST -> outside; SDT setup -> AUST (PDOT when ``changeover_counts_as_planned``);
   other SDT -> PDOT; PRD -> APT; UDT -> ADET; SBY, ENG -> ADOT.

Planned-downtime windows outside scheduled time stay "outside" (PDOT is part of POT). A planned window
with no data is still PDOT because it comes from the calendar, not from telemetry.
Derived: POT = period − outside (it includes nodata: the calendar scheduled it), PBT = APT + AUST +
ADET + ADOT = POT − PDOT − nodata, AUPT = APT + AUST, AUBT = AUPT + ADET.
Classification is vectorised: all boundaries become breakpoints, each elementary segment is located
in the windows and intervals with ``searchsorted``, and seconds are summed with ``bincount``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from ._intervals import (
    EXCLUDED_QUALITIES,
    I64,
    US_PER_S,
    check_qualities,
    locate,
    period_us,
    states_us,
    windows_us,
)
from .errors import InputError

OUTSIDE, PDOT, AUST, APT, ADET, ADOT, NODATA = range(7)
ELEMENT_NAMES = ("outside", "pdot", "aust", "apt", "adet", "adot", "nodata")
_TOLERANCE_S = 1e-6


@dataclass(frozen=True)
class TimeElements:
    """Seconds per ISO 22400 time element of one station over one period (KPI.md section 1).

    ``period_s == outside_s + pdot_s + aust_s + apt_s + adet_s + adot_s + nodata_s`` always.
    Elements add (``a + b``, ``sum([...])``): a period's elements equal the sum over any split of it.
    """

    period_s: float
    outside_s: float
    pdot_s: float
    aust_s: float
    apt_s: float
    adet_s: float
    adot_s: float
    nodata_s: float
    changeover_counts_as_planned: bool = False

    def __post_init__(self) -> None:
        parts = (self.outside_s, self.pdot_s, self.aust_s, self.apt_s, self.adet_s, self.adot_s, self.nodata_s)
        if min((self.period_s, *parts)) < 0:
            raise InputError("TimeElements", "time elements cannot be negative")
        if abs(sum(parts) - self.period_s) > _TOLERANCE_S * max(1.0, self.period_s):
            raise InputError("TimeElements", f"elements sum to {sum(parts)} s, not the period {self.period_s} s")

    @property
    def pot_s(self) -> float:
        """Planned operation time: period − outside POT (KPI.md 1)."""
        return self.period_s - self.outside_s

    @property
    def pbt_s(self) -> float:
        """Planned busy time: APT + AUST + ADET + ADOT = POT − PDOT − nodata (KPI.md 1)."""
        return self.apt_s + self.aust_s + self.adet_s + self.adot_s

    @property
    def aupt_s(self) -> float:
        """Actual unit processing time AUPT = APT + AUST (ISO 22400-2)."""
        return self.apt_s + self.aust_s

    @property
    def aubt_s(self) -> float:
        """Actual unit busy time AUBT = AUPT + ADET (ISO 22400-2)."""
        return self.aupt_s + self.adet_s

    @property
    def covered_fraction(self) -> float | None:
        """Share of scheduled time (POT) the result rests on: (POT − nodata) / POT; None when POT is 0."""
        pot = self.pot_s
        return None if pot <= 0 else (pot - self.nodata_s) / pot

    def __add__(self, other: TimeElements) -> TimeElements:
        if not isinstance(other, TimeElements):
            return NotImplemented
        if other.changeover_counts_as_planned != self.changeover_counts_as_planned:
            raise InputError("changeover_counts_as_planned", "cannot add elements classified under different settings")
        return TimeElements(
            self.period_s + other.period_s, self.outside_s + other.outside_s, self.pdot_s + other.pdot_s,
            self.aust_s + other.aust_s, self.apt_s + other.apt_s, self.adet_s + other.adet_s,
            self.adot_s + other.adot_s, self.nodata_s + other.nodata_s, self.changeover_counts_as_planned,
        )

    def __radd__(self, other: Any) -> TimeElements:
        if other == 0:  # lets the builtin sum() start from 0
            return self
        return NotImplemented


def _interval_codes(frame: pl.DataFrame, changeover_counts_as_planned: bool,
                    excluded_qualities: frozenset[str]) -> I64:
    state, reason = pl.col("state"), pl.col("reason")
    code = (
        pl.when(pl.col("quality").is_in(sorted(excluded_qualities))).then(NODATA)
        .when(state == "NST").then(OUTSIDE)
        .when((state == "SDT") & (reason == "setup")).then(PDOT if changeover_counts_as_planned else AUST)
        .when(state == "SDT").then(PDOT)
        .when(state == "PRD").then(APT)
        .when(state == "UDT").then(ADET)
        .otherwise(ADOT)  # SBY, ENG: validated upstream, nothing else is left
    )
    return frame.select(code.cast(pl.Int64))[:, 0].to_numpy()


def _segments(states: pl.DataFrame, t0: datetime, t1: datetime,
              scheduled: Iterable[tuple[datetime, datetime]], planned_downtime: Iterable[tuple[datetime, datetime]],
              changeover_counts_as_planned: bool, excluded_qualities: frozenset[str]
              ) -> tuple[I64, I64, I64, pl.DataFrame]:
    """Elementary segments of ``[t0, t1)``: (length µs, element code, state-interval row or -1, states)."""
    check_qualities(excluded_qualities)
    a, b = period_us(t0, t1)
    frame = states_us(states)
    sch_s, sch_e = windows_us(scheduled, "scheduled")
    pdt_s, pdt_e = windows_us(planned_downtime, "planned_downtime")
    st_s, st_e = frame["s"].to_numpy(), frame["e"].to_numpy()
    cuts = np.concatenate([np.array([a, b], np.int64), st_s, st_e, sch_s, sch_e, pdt_s, pdt_e])
    cuts = np.unique(np.clip(cuts, a, b))
    seg_start, seg_len = cuts[:-1], np.diff(cuts)
    row = locate(seg_start, st_s, st_e)
    codes = _interval_codes(frame, changeover_counts_as_planned, excluded_qualities)
    from_state = codes[np.maximum(row, 0)] if len(codes) else np.full(len(row), NODATA, np.int64)
    element = np.select(
        [locate(seg_start, sch_s, sch_e) < 0, locate(seg_start, pdt_s, pdt_e) >= 0, row < 0],
        [OUTSIDE, PDOT, NODATA], default=from_state,
    ).astype(np.int64)
    return seg_len.astype(np.int64), element, row, frame


def time_elements(states: pl.DataFrame, t0: datetime, t1: datetime,
                  scheduled: Iterable[tuple[datetime, datetime]],
                  planned_downtime: Iterable[tuple[datetime, datetime]] = (), *,
                  changeover_counts_as_planned: bool = False,
                  excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> TimeElements:
    """Classify every second of ``[t0, t1)`` into ISO 22400 time elements (KPI.md section 1).

    ``scheduled`` are the shift instances (outside them is outside POT); ``planned_downtime`` windows
    override the state. ``changeover_counts_as_planned`` (KPI.md 1 per-site switch, default False =
    ISO reading) moves SDT setup from AUST to PDOT. ``excluded_qualities`` names the data qualities
    whose intervals count as nodata (default bad and nodata; "uncertain" keeps its state).
    """
    seg_len, element, _, _ = _segments(states, t0, t1, scheduled, planned_downtime,
                                    changeover_counts_as_planned, excluded_qualities)
    totals = np.bincount(element, weights=seg_len.astype(np.float64), minlength=7) / US_PER_S
    outside, pdot, aust, apt, adet, adot, nodata = (float(x) for x in totals)
    a, b = period_us(t0, t1)
    period = (b - a) / US_PER_S
    return TimeElements(period, outside, pdot, aust, apt, adet, adot, nodata, changeover_counts_as_planned)


def seconds_by_reason(states: pl.DataFrame, t0: datetime, t1: datetime,
                      scheduled: Iterable[tuple[datetime, datetime]],
                      planned_downtime: Iterable[tuple[datetime, datetime]] = (), *,
                      changeover_counts_as_planned: bool = False,
                      excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> pl.DataFrame:
    """Seconds per (element, state, reason) under the same classification as ``time_elements`` (KPI.md 1).

    Returns columns element (str), state, reason and seconds, sorted by seconds descending. State and
    reason are those of the underlying interval (so a planned-downtime window shows what the station
    reported during it); they are null for nodata, which has no trusted state.
    """
    seg_len, element, row, frame = _segments(states, t0, t1, scheduled, planned_downtime,
                                             changeover_counts_as_planned, excluded_qualities)
    idx = np.where((row >= 0) & (element != NODATA), row, -1)
    lookup = frame.select("state", "reason").with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    segs = pl.DataFrame({"_row": idx, "_code": element, "us": seg_len})
    out = (segs.join(lookup, on="_row", how="left")
           .group_by("_code", "state", "reason").agg(pl.col("us").sum())
           .with_columns(pl.col("_code").replace_strict(list(range(7)), list(ELEMENT_NAMES)).alias("element"),
                         (pl.col("us") / US_PER_S).alias("seconds"))
           .filter(pl.col("seconds") > 0)
           .select("element", "state", "reason", "seconds")
           .sort(["seconds", "element", "state", "reason"], descending=[True, False, False, False], nulls_last=True))
    return out

