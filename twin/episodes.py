"""Failure episodes and downtime events from a station's E10 state intervals (KPI.md sections 2 and 3).

A failure (KPI.md 2) is an entry into UDT with reason ``failure``. The episode then lasts through the
contiguous UDT intervals with reason failure, repair or maintenance_delay until the station leaves that
chain. Readings fixed here:

- "Contiguous" means the next interval starts where the previous one ended; a gap or an interval of
  excluded quality (bad / nodata) ends the chain, because the state in between is not known.
- Within one chain the episode starts at its first ``failure`` interval: a chain that opens with repair
  or delay after a gap has no proven failure entry before that point; a second failure inside a running
  episode is not a new failure (the station never left UDT). A ``minor_stop`` is not part of the chain,
  so a minor stop that escalates into a failure counts as a failure entry at the escalation.
- An episode belongs to the period in which it starts and is reported whole (not clipped), so failure
  counts and repair times add over any split of a period.

A downtime event (KPI.md 3, MTOL) is an entry into a contiguous run of SDT/UDT intervals of trusted
quality; an SDT -> UDT switch without leaving downtime is the same event (the tool went off-line once).

The ``*_many`` functions do the same for many stations and (period, station) pairs in one pass; sums run in
integer microseconds, so batched and single-period figures are identical.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import polars as pl

from ._intervals import (
    EXCLUDED_QUALITIES,
    STATE_COLUMNS,
    US_PER_S,
    Pairs,
    StationStates,
    Window,
    check_qualities,
    in_periods,
    period_us,
    range_sums,
    require_columns,
)
from .errors import InputError

_CHAIN_REASONS = ("failure", "repair", "maintenance_delay")


def _runs(frame: pl.DataFrame, member: pl.Expr) -> pl.DataFrame:
    """Rows where ``member`` holds, each with ``run``: the id of its maximal contiguous run of members.

    ``frame`` is a ``StationStates`` frame (sorted by station index g, then start); runs never span stations.
    """
    contiguous = (pl.col("s") == pl.col("e").shift(1)) & (pl.col("g") == pl.col("g").shift(1))
    with_member = frame.with_columns(member.alias("_m"))
    new_run = pl.col("_m") & ~(pl.col("_m").shift(1).fill_null(False) & contiguous.fill_null(False))
    return with_member.with_columns(new_run.cum_sum().alias("run")).filter(pl.col("_m"))


def _episodes(st: StationStates, excluded_qualities: frozenset[str]) -> pl.DataFrame:
    """Whole failure episodes of every station: g, s, e, repair_us, delay_us, udt_us; sorted by (g, s)."""
    member = ((pl.col("state") == "UDT") & pl.col("reason").is_in(_CHAIN_REASONS)
              & ~pl.col("quality").is_in(sorted(excluded_qualities)))
    dur = pl.col("e") - pl.col("s")
    return (
        _runs(st.frame, member)
        .filter((pl.col("reason") == "failure").cast(pl.Int32).cum_sum().over("run") > 0)
        .group_by("run").agg(
            pl.col("g").first(), pl.col("s").min(), pl.col("e").max(),
            dur.filter(pl.col("reason") != "maintenance_delay").sum().alias("repair_us"),
            dur.filter(pl.col("reason") == "maintenance_delay").sum().alias("delay_us"),
            dur.sum().alias("udt_us"))
        .select("g", "s", "e", *(pl.col(c).cast(pl.Int64) for c in ("repair_us", "delay_us", "udt_us")))
        .sort("g", "s")
    )


def failure_episodes_many(states: pl.DataFrame | StationStates, stations: Sequence[str], *,
                          excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> pl.DataFrame:
    """Whole failure episodes of many stations: ``failure_episodes`` per station with a station column first."""
    check_qualities(excluded_qualities)
    st = StationStates.of(states, stations)
    ep = _episodes(st, excluded_qualities)
    return ep.select(pl.Series("station", st.stations, dtype=pl.String).gather(ep["g"]), *_public(ep))


def _public(ep: pl.DataFrame) -> list[pl.Series]:
    return [ep["s"].cast(pl.Datetime("us", "UTC")).alias("start"), ep["e"].cast(pl.Datetime("us", "UTC")).alias("end"),
            *((ep[f"{c}_us"] / US_PER_S).alias(f"{c}_s") for c in ("repair", "delay", "udt"))]


def failure_counts_many(states: pl.DataFrame | StationStates, periods: Sequence[Window], stations: Sequence[str], *,
                        pairs: Iterable[tuple[int, str]] | None = None,
                        excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> pl.DataFrame:
    """Failure episodes starting in each (period, station) pair: period, station, failures, repair_s, delay_s, udt_s.

    ``pairs`` (period index, station) default every period x station; sums are of whole episodes (KPI.md 2, 3).
    """
    check_qualities(excluded_qualities)
    st, pr = StationStates.of(states, stations), _pairs(periods, stations, pairs)
    ep = _episodes(st, excluded_qualities)
    first, stop = in_periods(pr, ep["g"].to_numpy(), ep["s"].to_numpy())
    sums = {c: range_sums(ep[f"{c}_us"].to_numpy(), first, stop) / US_PER_S for c in ("repair", "delay", "udt")}
    return pl.DataFrame([*_pair_columns(pr, st.stations), pl.Series("failures", stop - first, dtype=pl.Int64),
                         *(pl.Series(f"{c}_s", v, dtype=pl.Float64) for c, v in sums.items())])


def downtime_events_many(states: pl.DataFrame | StationStates, periods: Sequence[Window], stations: Sequence[str], *,
                         pairs: Iterable[tuple[int, str]] | None = None,
                         excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> pl.DataFrame:
    """Entries into downtime starting in each (period, station) pair: period, station, events (KPI.md 3)."""
    check_qualities(excluded_qualities)
    st, pr = StationStates.of(states, stations), _pairs(periods, stations, pairs)
    member = pl.col("state").is_in(["SDT", "UDT"]) & ~pl.col("quality").is_in(sorted(excluded_qualities))
    starts = _runs(st.frame, member).group_by("run").agg(pl.col("g").first(), pl.col("s").min()).sort("g", "s")
    first, stop = in_periods(pr, starts["g"].to_numpy(), starts["s"].to_numpy())
    return pl.DataFrame([*_pair_columns(pr, st.stations), pl.Series("events", stop - first, dtype=pl.Int64)])


def _pairs(periods: Sequence[Window], stations: Sequence[str], pairs: Iterable[tuple[int, str]] | None) -> Pairs:
    index = {name: g for g, name in enumerate(stations)}
    if pairs is None:
        return Pairs.of(periods, len(index))
    chosen = []
    for k, name in pairs:
        if name not in index:
            raise InputError("pairs", f"station {name!r} is not in the batch")
        chosen.append((k, index[name]))
    return Pairs.of(periods, len(index), chosen)


def _pair_columns(pr: Pairs, stations: Sequence[str]) -> list[pl.Series]:
    return [pl.Series("period", pr.period, dtype=pl.Int64),
            pl.Series("station", list(stations), dtype=pl.String).gather(pr.g)]


def _single(states: pl.DataFrame) -> pl.DataFrame:
    require_columns(states, STATE_COLUMNS, "states")
    return states.select(pl.lit("", pl.String).alias("station"), *STATE_COLUMNS)


def failure_episodes(states: pl.DataFrame, t0: datetime | None = None, t1: datetime | None = None, *,
                     excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> pl.DataFrame:
    """Failure episodes (KPI.md 2 MTTR, KPI.md 3 MTTR/MTBFp): columns start, end, repair_s, delay_s, udt_s.

    ``repair_s`` is the episode's time in UDT failure or repair, ``delay_s`` its time in UDT
    maintenance_delay, ``udt_s = repair_s + delay_s``. With ``t0``/``t1`` only episodes starting in
    ``[t0, t1)`` are kept (whole, not clipped). Sorted by start.
    """
    check_qualities(excluded_qualities)
    ep = _episodes(StationStates.of(_single(states), [""]), excluded_qualities)
    if t0 is not None or t1 is not None:
        if t0 is None or t1 is None:
            raise InputError("t0", "give both t0 and t1, or neither")
        a, b = period_us(t0, t1)
        ep = ep.filter((pl.col("s") >= a) & (pl.col("s") < b))
    return pl.DataFrame(_public(ep))


def downtime_events(states: pl.DataFrame, t0: datetime, t1: datetime, *,
                    excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> int:
    """Number of entries into downtime (SDT or UDT) starting in ``[t0, t1)`` (KPI.md 3, MTOL denominator)."""
    check_qualities(excluded_qualities)
    period_us(t0, t1)
    frame = downtime_events_many(_single(states), [(t0, t1)], [""], excluded_qualities=excluded_qualities)
    return int(frame["events"][0])


