"""Shared interval plumbing for the KPI engine: validation of state frames and integer-microsecond maths.

All interval arithmetic runs on int64 microseconds since the Unix epoch (exact sums, no float drift);
results are turned into float seconds only at the end. Intervals are half-open ``[start, end)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import polars as pl

from twinline.uns.states import REASONS

from .errors import InputError

I64 = npt.NDArray[np.int64]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_S = 1_000_000
QUALITIES = frozenset({"good", "uncertain", "bad", "nodata"})
# Default data-quality policy: OPC UA "Uncertain" (e.g. last usable value) still carries the state;
# "bad" and "nodata" (gaps, stale sources) do not and are excluded from every time element.
EXCLUDED_QUALITIES: frozenset[str] = frozenset({"bad", "nodata"})

STATE_COLUMNS = ("start", "end", "state", "reason", "quality")
_VALID_PAIRS = pl.DataFrame(
    [(s.value, r.value) for s, reasons in REASONS.items() for r in reasons],
    schema={"state": pl.String, "reason": pl.String}, orient="row",
).with_columns(pl.lit(True).alias("_ok"))


def to_us(value: datetime, field: str) -> int:
    """Microseconds since the epoch of a timezone-aware datetime; naive datetimes are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(field, f"{value!r} is naive; twinline times are timezone-aware UTC")
    return (value - EPOCH) // timedelta(microseconds=1)


def from_us(value: int) -> datetime:
    """The UTC datetime of a microsecond count."""
    return EPOCH + timedelta(microseconds=int(value))


def period_us(t0: datetime, t1: datetime) -> tuple[int, int]:
    """Validated ``[t0, t1)`` in microseconds."""
    a, b = to_us(t0, "t0"), to_us(t1, "t1")
    if b < a:
        raise InputError("t1", f"period end {t1.isoformat()} is before its start {t0.isoformat()}")
    return a, b


def windows_us(windows: Iterable[tuple[datetime, datetime]], field: str) -> tuple[I64, I64]:
    """Union of windows as sorted, disjoint (starts, ends) arrays; overlapping or touching windows merge."""
    pairs = [(to_us(a, f"{field}[{i}].start"), to_us(b, f"{field}[{i}].end")) for i, (a, b) in enumerate(windows)]
    for i, (a, b) in enumerate(pairs):
        if b < a:
            raise InputError(f"{field}[{i}]", "window ends before it starts")
    if not pairs:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    arr = np.array(sorted(pairs), dtype=np.int64)
    starts, ends = arr[:, 0], arr[:, 1]
    reach = np.maximum.accumulate(ends)
    new = np.ones(len(starts), dtype=bool)
    new[1:] = starts[1:] > reach[:-1]
    group = np.cumsum(new) - 1
    merged_ends = np.zeros(int(group[-1]) + 1, dtype=np.int64)
    np.maximum.at(merged_ends, group, ends)
    return starts[new], merged_ends


def locate(points: I64, starts: I64, ends: I64) -> I64:
    """Index of the disjoint sorted interval containing each point, or -1."""
    idx = np.searchsorted(starts, points, side="right") - 1
    inside = idx >= 0
    inside[inside] = points[inside] < ends[idx[inside]]
    return np.where(inside, idx, -1).astype(np.int64)


def _datetime_us(frame: pl.DataFrame, column: str, field: str) -> pl.Expr:
    dtype = frame.schema[column]
    if not isinstance(dtype, pl.Datetime):
        raise InputError(f"{field}.{column}", f"must be a Datetime column, got {dtype}")
    if dtype.time_zone is None:
        raise InputError(f"{field}.{column}", "is naive; twinline times are timezone-aware UTC")
    return pl.col(column).dt.convert_time_zone("UTC").dt.cast_time_unit("us").cast(pl.Int64)


def require_columns(frame: pl.DataFrame, columns: Sequence[str], field: str) -> None:
    """Raise InputError naming the missing columns."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(field, f"missing column(s) {', '.join(missing)}")
    nulls = [c for c in columns if frame[c].null_count()]
    if nulls:
        raise InputError(f"{field}.{nulls[0]}", "has nulls")


def states_us(states: pl.DataFrame, field: str = "states") -> pl.DataFrame:
    """Validate a state-interval frame; return it sorted with integer columns ``s``/``e`` (µs) added.

    Checks: columns present and non-null, timezone-aware datetimes, ``end >= start``, no two intervals
    overlap (a station is in exactly one state at a time), every (state, reason) pair allowed by
    ``twinline.uns.states.REASONS``, quality one of good / uncertain / bad / nodata.
    Zero-length intervals are dropped.
    """
    require_columns(states, STATE_COLUMNS, field)
    out = states.select(
        _datetime_us(states, "start", field).alias("s"), _datetime_us(states, "end", field).alias("e"),
        pl.col("state").cast(pl.String), pl.col("reason").cast(pl.String), pl.col("quality").cast(pl.String),
    ).sort("s")
    if out.height and (out["e"] < out["s"]).any():
        raise InputError(f"{field}.end", "an interval ends before it starts")
    out = out.filter(pl.col("e") > pl.col("s"))
    if out.height > 1 and (out["s"].slice(1) < out["e"].slice(0, out.height - 1)).any():
        raise InputError(field, "intervals overlap; a station is in exactly one E10 state at a time")
    bad_pair = out.join(_VALID_PAIRS, on=["state", "reason"], how="left").filter(pl.col("_ok").is_null())
    if bad_pair.height:
        row = bad_pair.row(0, named=True)
        raise InputError(f"{field}.reason", f"({row['state']!r}, {row['reason']!r}) is not an E10 state and reason")
    bad_q = out.filter(~pl.col("quality").is_in(sorted(QUALITIES)))
    if bad_q.height:
        raise InputError(f"{field}.quality", f"{bad_q['quality'][0]!r} is not one of {sorted(QUALITIES)}")
    return out


def check_qualities(excluded: frozenset[str]) -> None:
    """The excluded-quality setting may name only known qualities."""
    unknown = excluded - QUALITIES
    if unknown:
        raise InputError("excluded_qualities", f"unknown quality {sorted(unknown)}")


def clipped(frame: pl.DataFrame, a: int, b: int) -> pl.DataFrame:
    """Intervals of a validated frame clipped to ``[a, b)``, with a ``dur_us`` column; empty ones dropped."""
    return frame.with_columns(pl.col("s").clip(a, b), pl.col("e").clip(a, b)).with_columns(
        (pl.col("e") - pl.col("s")).alias("dur_us")).filter(pl.col("dur_us") > 0)
