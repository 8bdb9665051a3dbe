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
Classification is vectorised over many (period, station) pairs at once (``classify_many``,
``time_elements_many``, ``seconds_by_reason_many``): each station's state and window boundaries become
breakpoints, each elementary segment is located in the windows and intervals with ``searchsorted`` on
(station, time) keys, segments are cut to every pair's period and seconds summed with ``bincount`` in
integer microseconds (exact, so any split or batching gives the same numbers). The single-period
functions are one pair of the batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from ._intervals import (
    EXCLUDED_QUALITIES,
    I64,
    STATE_COLUMNS,
    US_PER_S,
    Pairs,
    StationStates,
    Window,
    check_qualities,
    locate,
    overlaps,
    period_us,
    require_columns,
    station_windows,
)
from .errors import InputError

OUTSIDE, PDOT, AUST, APT, ADET, ADOT, NODATA = range(7)
ELEMENT_NAMES = ("outside", "pdot", "aust", "apt", "adet", "adot", "nodata")
_TOLERANCE_S = 1e-6
_DENSE_LIMIT = 4_000_000  # (pair, element, state, reason) cells summed with one dense bincount up to this


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


_Windows = Mapping[str, Iterable[Window]]


@dataclass(frozen=True)
class _Classified:
    """Every non-empty overlap of a pair's period with an elementary segment: pair, element, state row, µs."""

    states: StationStates
    pairs: Pairs
    rep: I64
    element: I64
    row: I64
    length: I64


def _classify(states: pl.DataFrame | StationStates, periods: Sequence[Window], scheduled: _Windows,
              planned_downtime: _Windows | None, pairs: Iterable[tuple[int, str]] | None,
              changeover_counts_as_planned: bool, excluded_qualities: frozenset[str], field: str) -> _Classified:
    """Cut each station's timeline at every state and window boundary and classify each segment (module doc)."""
    check_qualities(excluded_qualities)
    names = tuple(scheduled)
    index = {name: g for g, name in enumerate(names)}
    chosen = None if pairs is None else [(k, _station_index(index, name)) for k, name in pairs]
    pr = Pairs.of(periods, len(names), chosen)
    st = StationStates.of(states, names, field)
    g, s, e = st.arrays()
    sch_g, sch_s, sch_e = station_windows(names, scheduled, "scheduled")
    pdt_g, pdt_s, pdt_e = station_windows(names, planned_downtime or {}, "planned_downtime")
    empty = np.empty(0, np.int64)
    if not len(pr):
        return _Classified(st, pr, empty, empty, empty, empty)
    lo, hi = int(pr.a.min()), int(pr.b.max())
    every = np.arange(len(names), dtype=np.int64)
    cut_g = np.concatenate([g, g, sch_g, sch_g, pdt_g, pdt_g, every, every])
    cut_t = np.concatenate([s, e, sch_s, sch_e, pdt_s, pdt_e, np.full(len(names), lo), np.full(len(names), hi)])
    keys = np.sort(pr.key(cut_g, np.clip(cut_t, lo, hi)))
    cut_g, cut_t = pr.split(keys[np.concatenate([[True], keys[1:] != keys[:-1]])])
    same = cut_g[:-1] == cut_g[1:]
    seg_g, seg_s, seg_e = cut_g[:-1][same], cut_t[:-1][same], cut_t[1:][same]
    point = pr.key(seg_g, seg_s)
    row = locate(point, pr.key(g, s), pr.key(g, e))
    codes = _interval_codes(st.frame, changeover_counts_as_planned, excluded_qualities)
    from_state = codes[np.maximum(row, 0)] if len(codes) else np.full(len(row), NODATA, np.int64)
    element = np.select(
        [locate(point, pr.key(sch_g, sch_s), pr.key(sch_g, sch_e)) < 0,
         locate(point, pr.key(pdt_g, pdt_s), pr.key(pdt_g, pdt_e)) >= 0, row < 0],
        [OUTSIDE, PDOT, NODATA], default=from_state,
    ).astype(np.int64)
    rep, idx, length = overlaps(pr, seg_g, seg_s, seg_e)
    return _Classified(st, pr, rep, element[idx], row[idx], length)


def _station_index(index: Mapping[str, int], name: str) -> int:
    if name not in index:
        raise InputError("pairs", f"station {name!r} has no scheduled windows entry")
    return index[name]


def _pair_columns(c: _Classified, rep: I64) -> list[pl.Series]:
    return [pl.Series("period", c.pairs.period[rep], dtype=pl.Int64),
            pl.Series("station", c.states.stations, dtype=pl.String).gather(c.pairs.g[rep])]


def _elements_frame(c: _Classified) -> pl.DataFrame:
    n = len(c.pairs)
    us = np.bincount(c.rep * 7 + c.element, weights=c.length.astype(np.float64), minlength=n * 7).reshape(n, 7)
    seconds = us / US_PER_S
    return pl.DataFrame([*_pair_columns(c, np.arange(n, dtype=np.int64)),
                         pl.Series("period_s", c.pairs.period_s(), dtype=pl.Float64),
                         *(pl.Series(f"{name}_s", seconds[:, i], dtype=pl.Float64)
                           for i, name in enumerate(ELEMENT_NAMES))])


def _reasons_frame(c: _Classified) -> pl.DataFrame:
    frame = c.states.frame
    combos = frame.select("state", "reason").unique(maintain_order=True)
    cat = (frame.join(combos.with_row_index("_cat"), on=["state", "reason"], how="left")["_cat"]
           .cast(pl.Int64).to_numpy()) if frame.height else np.empty(0, np.int64)
    width = combos.height + 1
    trusted = (c.row >= 0) & (c.element != NODATA)
    which = np.where(trusted, cat[np.where(trusted, c.row, 0)] + 1 if len(cat) else 0, 0)
    full = (c.rep * 7 + c.element) * width + which
    if len(c.pairs) * 7 * width <= _DENSE_LIMIT:
        dense = np.bincount(full, weights=c.length.astype(np.float64), minlength=len(c.pairs) * 7 * width)
        keys = np.flatnonzero(dense)
        us = dense[keys]
    else:
        keys, inverse = np.unique(full, return_inverse=True)
        us = np.bincount(inverse.reshape(-1), weights=c.length.astype(np.float64), minlength=len(keys))
    which, element, rep = keys % width, (keys // width) % 7, keys // width // 7
    lookup = pl.concat([combos.clear(1), combos])  # index 0: nodata, no trusted state
    return (pl.DataFrame([*_pair_columns(c, rep),
                          pl.Series("element", ELEMENT_NAMES, dtype=pl.String).gather(element),
                          lookup["state"].gather(which), lookup["reason"].gather(which),
                          pl.Series("seconds", us / US_PER_S, dtype=pl.Float64)])
            .filter(pl.col("seconds") > 0)
            .sort(["period", "station", "seconds", "element", "state", "reason"],
                  descending=[False, False, True, False, False, False], nulls_last=True))


@dataclass(frozen=True)
class TimeModelFrames:
    """Batch results of ``classify_many``: elements per pair and seconds per (pair, element, state, reason)."""

    elements: pl.DataFrame
    by_reason: pl.DataFrame


def classify_many(states: pl.DataFrame | StationStates, periods: Sequence[Window], scheduled: _Windows,
                  planned_downtime: _Windows | None = None, *, pairs: Iterable[tuple[int, str]] | None = None,
                  changeover_counts_as_planned: bool = False,
                  excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> TimeModelFrames:
    """``time_elements_many`` and ``seconds_by_reason_many`` from one classification pass (KPI.md section 1)."""
    c = _classify(states, periods, scheduled, planned_downtime, pairs, changeover_counts_as_planned,
                  excluded_qualities, "states")
    return TimeModelFrames(_elements_frame(c), _reasons_frame(c))


def time_elements_many(states: pl.DataFrame | StationStates, periods: Sequence[Window], scheduled: _Windows,
                       planned_downtime: _Windows | None = None, *, pairs: Iterable[tuple[int, str]] | None = None,
                       changeover_counts_as_planned: bool = False,
                       excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> pl.DataFrame:
    """ISO 22400 time elements (KPI.md section 1) of many (period, station) pairs in one vectorised pass.

    ``states`` holds the intervals of every station (a ``station`` column, or a ``StationStates``);
    ``scheduled`` maps each station to its scheduled windows (its keys are the stations of the batch, in
    order) and ``planned_downtime`` to its planned-downtime windows; windows may cover more than a period
    (only their part inside it counts). ``pairs`` lists (period index, station), default every period x
    every station. Returns one row per pair in that order: period, station, period_s, outside_s, pdot_s,
    aust_s, apt_s, adet_s, adot_s, nodata_s; each row equals ``time_elements`` of that station and period.
    """
    c = _classify(states, periods, scheduled, planned_downtime, pairs, changeover_counts_as_planned,
                  excluded_qualities, "states")
    return _elements_frame(c)


def seconds_by_reason_many(states: pl.DataFrame | StationStates, periods: Sequence[Window], scheduled: _Windows,
                           planned_downtime: _Windows | None = None, *,
                           pairs: Iterable[tuple[int, str]] | None = None, changeover_counts_as_planned: bool = False,
                           excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> pl.DataFrame:
    """``seconds_by_reason`` of many (period, station) pairs (arguments as ``time_elements_many``).

    Columns period, station, element, state, reason, seconds; sorted by period, station, then as
    ``seconds_by_reason``.
    """
    c = _classify(states, periods, scheduled, planned_downtime, pairs, changeover_counts_as_planned,
                  excluded_qualities, "states")
    return _reasons_frame(c)


def elements_by_pair(frame: pl.DataFrame, changeover_counts_as_planned: bool = False
                     ) -> dict[tuple[int, str], TimeElements]:
    """``TimeElements`` per (period, station) from a ``time_elements_many`` frame."""
    out = {}
    for r in frame.iter_rows():
        period, outside, pdot, aust, apt, adet, adot, nodata = (float(x) for x in r[2:10])
        out[(int(r[0]), str(r[1]))] = TimeElements(period, outside, pdot, aust, apt, adet, adot, nodata,
                                                   changeover_counts_as_planned)
    return out


def _single(states: pl.DataFrame) -> pl.DataFrame:
    require_columns(states, STATE_COLUMNS, "states")
    return states.select(pl.lit("", pl.String).alias("station"), *STATE_COLUMNS)


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
    One pair of ``time_elements_many``.
    """
    check_qualities(excluded_qualities)
    period_us(t0, t1)
    frame = time_elements_many(_single(states), [(t0, t1)], {"": scheduled}, {"": planned_downtime},
                               changeover_counts_as_planned=changeover_counts_as_planned,
                               excluded_qualities=excluded_qualities)
    return elements_by_pair(frame, changeover_counts_as_planned)[(0, "")]


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
    check_qualities(excluded_qualities)
    period_us(t0, t1)
    return seconds_by_reason_many(_single(states), [(t0, t1)], {"": scheduled}, {"": planned_downtime},
                                  changeover_counts_as_planned=changeover_counts_as_planned,
                                  excluded_qualities=excluded_qualities).select("element", "state", "reason", "seconds")
