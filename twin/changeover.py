"""Changeovers (SMED) from a station's count events and state intervals (KPI.md section 5).

A changeover starts at the last good unit of product A and ends at the first good unit of product B
(``changeover_s``, KPI.md 5). It is reported with its parts:

- ``setup_s``: time in SDT/setup (trusted quality) inside ``[start, end)``.
- ``run_up_s``: from the first good unit of B until B runs at rate. Precisely: number B's good units
  in time order u_0 (the first good unit of B), u_1, ... up to the next product change (an event with
  ``good = n`` is n units at its timestamp). The window of W = ``runup_window_units`` units starting at
  unit i spans u_i .. u_{i+W}, and its rate is W / (u_{i+W} − u_i). Run-up ends at u_i for the first i
  with W / (u_{i+W} − u_i) ≥ ``runup_rate_fraction`` / ideal_cycle_s(B), i.e. the start of the first
  full window at rate (0 when the very first window is at rate). Only good units count. If no window
  of B reaches the rate before B's run ends, or B has no ideal cycle time, run-up is unknown (None).
- ``total_s`` = changeover_s + run_up_s: last good A until B runs at rate (Shingo's "first good piece
  at full speed"); None when run-up is unknown.

The changeover time reduction % (KPI.md 5) is mix-adjusted over product pairs seen in both periods and
measures ``changeover_s`` by default (the KPI.md boundary); ``measure="total_s"`` includes run-up.
The result is a fraction, positive when changeovers got shorter (0.368 = the plan's "−36.8%").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from ._intervals import (
    EXCLUDED_QUALITIES,
    I64,
    US_PER_S,
    check_qualities,
    require_columns,
    states_us,
)
from .errors import InputError

Measure = Literal["changeover_s", "total_s"]
_TS = pl.Datetime("us", "UTC")


def _good_units(events: pl.DataFrame) -> tuple[I64, np.ndarray]:
    """Timestamps (µs) and products of every good unit, in time order."""
    require_columns(events, ("ts", "product", "good", "scrap", "rework"), "events")
    dtype = events.schema["ts"]
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
        raise InputError("events.ts", "must be a timezone-aware Datetime column")
    if (events["good"] < 0).any() or (events["scrap"] < 0).any() or (events["rework"] < 0).any():
        raise InputError("events.good", "counts cannot be negative")
    good = (events.select(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("us").cast(pl.Int64),
                          pl.col("product").cast(pl.String), pl.col("good").cast(pl.Int64))
            .filter(pl.col("good") > 0).sort("ts", maintain_order=True))
    reps = good["good"].to_numpy()
    return np.repeat(good["ts"].to_numpy(), reps), np.repeat(good["product"].to_numpy(), reps)


def _setup_between(states: pl.DataFrame, starts: I64, ends: I64, excluded: frozenset[str]) -> I64:
    """µs of SDT/setup inside each ``[starts[k], ends[k])``, via the cumulative setup-time function."""
    setup = states_us(states).filter((pl.col("state") == "SDT") & (pl.col("reason") == "setup")
                                     & ~pl.col("quality").is_in(sorted(excluded)))
    s, e = setup["s"].to_numpy(), setup["e"].to_numpy()
    before = np.concatenate([[0], np.cumsum(e - s)]).astype(np.int64)

    def cumulative(t: I64) -> I64:
        k = np.searchsorted(s, t, side="right")
        partial = np.where(k > 0, np.clip(t - s[np.maximum(k - 1, 0)], 0, (e - s)[np.maximum(k - 1, 0)]), 0) \
            if len(s) else np.zeros(len(t), np.int64)
        return (before[np.maximum(k - 1, 0)] * (k > 0) + partial).astype(np.int64)

    return cumulative(ends) - cumulative(starts)


def _run_up(units: I64, run_start: I64, run_end: I64, cycle_s: np.ndarray,
            window: int, fraction: float) -> I64:
    """Per run: index of the first unit that starts a window at rate, or -1 (see module docstring)."""
    n = len(units)
    i = np.arange(max(n - window, 0))
    run_of = np.searchsorted(run_start, i, side="right") - 1
    same_run = i + window < run_end[run_of] if len(i) else np.zeros(0, bool)
    cycle_at = cycle_s[run_of] if len(i) else np.zeros(0)
    span = (units[i + window] - units[i]).astype(np.float64) if len(i) else np.zeros(0)
    at_rate = same_run & ~np.isnan(cycle_at) & (span * fraction <= window * cycle_at * US_PER_S)
    qual = np.flatnonzero(at_rate)
    pos = np.searchsorted(qual, run_start)
    first = np.where(pos < len(qual), qual[np.minimum(pos, max(len(qual) - 1, 0))] if len(qual) else -1, -1)
    return np.where((first >= run_start) & (first < run_end), first, -1).astype(np.int64)


def changeovers(events: pl.DataFrame, states: pl.DataFrame, ideal_cycle_s: Mapping[str, float], *,
                runup_window_units: int, runup_rate_fraction: float = 0.95,
                excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> pl.DataFrame:
    """Changeovers of one station (or line end) with their parts (KPI.md 5; definitions in the module docstring).

    ``events``: ts, product, good, scrap, rework. ``states``: the station's E10 intervals. Returns columns
    from_product, to_product, start, end, changeover_s, setup_s, run_up_s, total_s, run_up_end, sorted by start.
    ``runup_rate_fraction`` 0.95 is KPI.md 5's "≥ 95% of ideal".
    """
    if runup_window_units < 1:
        raise InputError("runup_window_units", "must be at least 1")
    if not 0 < runup_rate_fraction <= 1:
        raise InputError("runup_rate_fraction", "must be in (0, 1]")
    check_qualities(excluded_qualities)
    for sku, c in ideal_cycle_s.items():
        if not (math.isfinite(c) and c > 0):
            raise InputError(f"ideal_cycle_s[{sku}]", f"{c!r} is not a positive, finite time")
    units, products = _good_units(events)
    change = np.flatnonzero(products[1:] != products[:-1]) + 1 if len(units) else np.zeros(0, np.int64)
    run_start = np.concatenate([[0], change]).astype(np.int64) if len(units) else np.zeros(0, np.int64)
    run_end = np.concatenate([run_start[1:], [len(units)]]).astype(np.int64)
    cycles = np.array([ideal_cycle_s.get(str(products[k]), np.nan) for k in run_start], dtype=np.float64)
    first_at_rate = _run_up(units, run_start, run_end, cycles, runup_window_units, runup_rate_fraction)
    k = run_start[1:]
    start, end = units[k - 1], units[k]
    ok = first_at_rate[1:] >= 0
    run_up_end = np.where(ok, units[np.maximum(first_at_rate[1:], 0)], 0) if len(k) else np.zeros(0, np.int64)
    run_up_s = np.where(ok, (run_up_end - end) / US_PER_S, np.nan)
    co_s = (end - start) / US_PER_S
    frame = pl.DataFrame({
        "from_product": products[k - 1].astype(str), "to_product": products[k].astype(str),
        "start": start, "end": end, "changeover_s": co_s.astype(np.float64),
        "setup_s": _setup_between(states, start, end, excluded_qualities) / US_PER_S,
        "run_up_s": run_up_s, "total_s": co_s + run_up_s, "run_up_end": np.where(ok, run_up_end, -1),
    }, schema_overrides={"from_product": pl.String, "to_product": pl.String, "start": pl.Int64, "end": pl.Int64,
                         "run_up_end": pl.Int64})
    as_ts = [pl.col(c).cast(pl.Datetime("us")).dt.replace_time_zone("UTC") for c in ("start", "end")]
    return frame.with_columns(
        *as_ts, pl.col("setup_s").cast(pl.Float64), pl.col("run_up_s").fill_nan(None),
        pl.col("total_s").fill_nan(None),
        pl.when(pl.col("run_up_end") >= 0).then(pl.col("run_up_end")).cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC").alias("run_up_end"),
    ).sort("start")


def changeover_matrix(changeovers_df: pl.DataFrame) -> pl.DataFrame:
    """From × to matrix in long form (KPI.md 5): count, mean changeover_s, mean total_s (over known run-ups)."""
    return (changeovers_df.group_by("from_product", "to_product")
            .agg(pl.len().alias("count"), pl.col("changeover_s").mean().alias("mean_changeover_s"),
                 pl.col("total_s").mean().alias("mean_total_s"),
                 pl.col("total_s").is_not_null().sum().alias("total_known"))
            .sort("from_product", "to_product"))


@dataclass(frozen=True)
class ChangeoverReduction:
    """Mix-adjusted changeover time reduction (KPI.md 5); ``reduction`` is a fraction, positive = shorter."""

    reduction: float | None
    t_baseline_s: float | None
    t_current_s: float | None
    measure: str
    pairs: tuple[tuple[str, str], ...]
    only_baseline: tuple[tuple[str, str], ...]
    only_current: tuple[tuple[str, str], ...]


def _pair_stats(frame: pl.DataFrame, measure: Measure) -> dict[tuple[str, str], tuple[int, float]]:
    require_columns(frame.select("from_product", "to_product"), ("from_product", "to_product"), "changeovers")
    stats = (frame.filter(pl.col(measure).is_not_null())
             .group_by("from_product", "to_product").agg(pl.len().alias("n"), pl.col(measure).mean().alias("m")))
    return {(str(r[0]), str(r[1])): (int(r[2]), float(r[3])) for r in stats.iter_rows()}


def changeover_reduction(baseline: pl.DataFrame, current: pl.DataFrame,
                         measure: Measure = "changeover_s") -> ChangeoverReduction:
    """Changeover time reduction % (KPI.md 5): (T_base − T_cur) / T_base, mix-adjusted by current pair counts.

    T_x = Σ_pair n_current(pair) × mean_x(pair) / Σ_pair n_current(pair) over pairs seen in both periods;
    a pair is "seen" when it has a changeover with a known ``measure``. Other pairs are listed apart.
    """
    base, cur = _pair_stats(baseline, measure), _pair_stats(current, measure)
    pairs = tuple(sorted(set(base) & set(cur)))
    only_b, only_c = tuple(sorted(set(base) - set(cur))), tuple(sorted(set(cur) - set(base)))
    if not pairs:
        return ChangeoverReduction(None, None, None, measure, pairs, only_b, only_c)
    weight = sum(cur[p][0] for p in pairs)
    t_base = math.fsum(cur[p][0] * base[p][1] for p in pairs) / weight
    t_cur = math.fsum(cur[p][0] * cur[p][1] for p in pairs) / weight
    reduction = None if t_base == 0 else (t_base - t_cur) / t_base
    return ChangeoverReduction(reduction, t_base, t_cur, measure, pairs, only_b, only_c)
