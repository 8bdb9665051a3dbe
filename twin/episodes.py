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
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from ._intervals import EXCLUDED_QUALITIES, US_PER_S, check_qualities, period_us, states_us
from .errors import InputError

_CHAIN_REASONS = ("failure", "repair", "maintenance_delay")


def _runs(frame: pl.DataFrame, member: pl.Expr) -> pl.DataFrame:
    """Rows where ``member`` holds, each with ``run``: the id of its maximal contiguous run of members."""
    contiguous = pl.col("s") == pl.col("e").shift(1)
    with_member = frame.with_columns(member.alias("_m"))
    new_run = pl.col("_m") & ~(pl.col("_m").shift(1).fill_null(False) & contiguous.fill_null(False))
    return with_member.with_columns(new_run.cum_sum().alias("run")).filter(pl.col("_m"))


def failure_episodes(states: pl.DataFrame, t0: datetime | None = None, t1: datetime | None = None, *,
                     excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> pl.DataFrame:
    """Failure episodes (KPI.md 2 MTTR, KPI.md 3 MTTR/MTBFp): columns start, end, repair_s, delay_s, udt_s.

    ``repair_s`` is the episode's time in UDT failure or repair, ``delay_s`` its time in UDT
    maintenance_delay, ``udt_s = repair_s + delay_s``. With ``t0``/``t1`` only episodes starting in
    ``[t0, t1)`` are kept (whole, not clipped). Sorted by start.
    """
    check_qualities(excluded_qualities)
    frame = states_us(states)
    member = ((pl.col("state") == "UDT") & pl.col("reason").is_in(_CHAIN_REASONS)
              & ~pl.col("quality").is_in(sorted(excluded_qualities)))
    dur = (pl.col("e") - pl.col("s")) / US_PER_S
    episodes = (
        _runs(frame, member)
        .filter((pl.col("reason") == "failure").cast(pl.Int32).cum_sum().over("run") > 0)
        .group_by("run").agg(
            pl.col("s").min(), pl.col("e").max(),
            dur.filter(pl.col("reason") != "maintenance_delay").sum().alias("repair_s"),
            dur.filter(pl.col("reason") == "maintenance_delay").sum().alias("delay_s"),
            dur.sum().alias("udt_s"))
        .sort("s")
    )
    if t0 is not None or t1 is not None:
        if t0 is None or t1 is None:
            raise InputError("t0", "give both t0 and t1, or neither")
        a, b = period_us(t0, t1)
        episodes = episodes.filter((pl.col("s") >= a) & (pl.col("s") < b))
    return episodes.select(
        pl.col("s").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("start"),
        pl.col("e").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("end"),
        pl.col("repair_s").cast(pl.Float64), pl.col("delay_s").cast(pl.Float64), pl.col("udt_s").cast(pl.Float64),
    )


def downtime_events(states: pl.DataFrame, t0: datetime, t1: datetime, *,
                    excluded_qualities: frozenset[str] = EXCLUDED_QUALITIES) -> int:
    """Number of entries into downtime (SDT or UDT) starting in ``[t0, t1)`` (KPI.md 3, MTOL denominator)."""
    check_qualities(excluded_qualities)
    a, b = period_us(t0, t1)
    frame = states_us(states)
    member = pl.col("state").is_in(["SDT", "UDT"]) & ~pl.col("quality").is_in(sorted(excluded_qualities))
    starts = _runs(frame, member).group_by("run").agg(pl.col("s").min())["s"]
    return int(((starts >= a) & (starts < b)).sum())


__all__ = ["downtime_events", "failure_episodes"]
