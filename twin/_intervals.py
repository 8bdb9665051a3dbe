"""Shared interval plumbing for the KPI engine: validation of state frames and integer-microsecond maths.

All interval arithmetic runs on int64 microseconds since the Unix epoch (exact sums, no float drift);
results are turned into float seconds only at the end. Intervals are half-open ``[start, end)``.
``mark_stale`` overlays telemetry silences (stale gaps) on state intervals: the parts inside a gap get
quality ``stale``, which the engine excludes like nodata.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import polars as pl

from twinline.uns.states import REASONS

from .errors import InputError

I64 = npt.NDArray[np.int64]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_S = 1_000_000
QUALITIES = frozenset({"good", "uncertain", "bad", "nodata", "stale"})
# Default data-quality policy: OPC UA "Uncertain" (e.g. last usable value) still carries the state;
# "bad", "nodata" (gaps, bad source status) and "stale" (the station's telemetry went silent, see
# ``mark_stale``) do not and are excluded from every time element.
EXCLUDED_QUALITIES: frozenset[str] = frozenset({"bad", "nodata", "stale"})

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


def states_us(states: pl.DataFrame, field: str = "states", *, key: str | None = None) -> pl.DataFrame:
    """Validate a state-interval frame; return it sorted with integer columns ``s``/``e`` (µs) added.

    Checks: columns present and non-null, timezone-aware datetimes, ``end >= start``, no two intervals
    overlap (a station is in exactly one state at a time), every (state, reason) pair allowed by
    ``twinline.uns.states.REASONS``, quality one of good / uncertain / bad / nodata / stale.
    Zero-length intervals are dropped. With ``key`` (a column such as ``station``) the frame holds many
    stations: it is sorted by (key, start), the key column is kept and overlaps are checked per key.
    """
    require_columns(states, (*STATE_COLUMNS, *(() if key is None else (key,))), field)
    keys = [] if key is None else [pl.col(key)]
    out = states.select(
        *keys, _datetime_us(states, "start", field).alias("s"), _datetime_us(states, "end", field).alias("e"),
        pl.col("state").cast(pl.String), pl.col("reason").cast(pl.String), pl.col("quality").cast(pl.String),
    ).sort([*([] if key is None else [key]), "s"])
    if out.height and (out["e"] < out["s"]).any():
        raise InputError(f"{field}.end", "an interval ends before it starts")
    out = out.filter(pl.col("e") > pl.col("s"))
    overlap = pl.col("s") < pl.col("e").shift(1)
    if key is not None:
        overlap = overlap & (pl.col(key) == pl.col(key).shift(1))
    if out.height > 1 and out.select(overlap.fill_null(False).any()).item():
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


# --------------------------------------------------------------------------- batches of (period, station) pairs

Window = tuple[datetime, datetime]
_KEY_LIMIT = 2**62


@dataclass(frozen=True)
class StationStates:
    """Validated state intervals of many stations, ready for the batch functions.

    ``frame`` has columns station, g (index into ``stations``), s, e (µs), state, reason, quality, sorted
    by (g, s); intervals of stations not in ``stations`` are left out. Build it once with ``of`` and pass
    it to several batch functions to validate only once.
    """

    stations: tuple[str, ...]
    frame: pl.DataFrame

    @classmethod
    def of(cls, states: pl.DataFrame | StationStates, stations: Sequence[str], field: str = "states"
           ) -> StationStates:
        """Validated states (``states_us`` rules per station) of ``stations``; the frame needs a station column."""
        names = tuple(stations)
        if len(set(names)) != len(names):
            raise InputError("stations", "a station is named twice")
        if isinstance(states, StationStates):
            if states.stations == names:
                return states
            states = states.frame.select("station", pl.col("s").cast(pl.Datetime("us", "UTC")).alias("start"),
                                         pl.col("e").cast(pl.Datetime("us", "UTC")).alias("end"),
                                         "state", "reason", "quality")
        require_columns(states, ("station",), field)
        index = pl.Series(names, dtype=pl.String)
        mine = states.filter(pl.col("station").cast(pl.String).is_in(list(names))).with_columns(
            pl.col("station").cast(pl.String).replace_strict(index, pl.int_range(len(names), eager=True),
                                                             return_dtype=pl.Int64).alias("g"))
        valid = states_us(mine, field, key="g")
        frame = valid.select(index.gather(valid["g"]).alias("station"), "g", "s", "e", "state", "reason", "quality")
        return cls(names, frame)

    def arrays(self, frame: pl.DataFrame | None = None) -> tuple[I64, I64, I64]:
        """(g, s, e) of ``frame`` (default: all intervals) as int64 arrays."""
        f = self.frame if frame is None else frame
        return f["g"].to_numpy(), f["s"].to_numpy(), f["e"].to_numpy()


@dataclass(frozen=True)
class Pairs:
    """The (period, station) pairs of a batch: period index, station index ``g`` and bounds ``[a, b)`` in µs.

    Searches run on composite keys ``g * span + t`` (t clipped to just outside the union of the periods),
    so one ``searchsorted`` serves every station at once.
    """

    period: I64
    g: I64
    a: I64
    b: I64
    lo: int
    span: int

    @classmethod
    def of(cls, periods: Sequence[Window], n_stations: int, pairs: Iterable[tuple[int, int]] | None = None) -> Pairs:
        """Pairs of ``periods`` x station indices; ``pairs`` (period index, station index) picks some (default all)."""
        bounds = [period_us(t0, t1) for t0, t1 in periods]
        chosen = ([(k, g) for k in range(len(bounds)) for g in range(n_stations)] if pairs is None else list(pairs))
        for k, g in chosen:
            if not (0 <= k < len(bounds) and 0 <= g < n_stations):
                raise InputError("pairs", f"({k}, {g}) names no period or station")
        arr = np.array(chosen, dtype=np.int64).reshape(-1, 2)
        ab = np.array(bounds, dtype=np.int64).reshape(-1, 2)
        a, b = ab[arr[:, 0], 0], ab[arr[:, 0], 1]
        lo, span = (int(a.min()) - 1, int(b.max() - a.min()) + 3) if len(arr) else (0, 1)
        if max(n_stations, 1) * span >= _KEY_LIMIT:
            raise InputError("periods", f"{n_stations} stations over {span / US_PER_S / 86400:.0f} days is too "
                             "large for one batch; split it")
        return cls(arr[:, 0].copy(), arr[:, 1].copy(), a, b, lo, span)

    def __len__(self) -> int:
        return len(self.period)

    def key(self, g: I64, t: I64) -> I64:
        """Composite search key of (station index, time µs)."""
        return g * self.span + (np.clip(t, self.lo, self.lo + self.span - 1) - self.lo)

    def split(self, key: I64) -> tuple[I64, I64]:
        """(station index, time µs) of composite keys."""
        return key // self.span, key % self.span + self.lo

    def period_s(self) -> npt.NDArray[np.float64]:
        """Length of each pair's period in seconds."""
        return (self.b - self.a) / US_PER_S


def overlaps(pairs: Pairs, g: I64, s: I64, e: I64) -> tuple[I64, I64, I64]:
    """Overlaps of intervals (sorted by (g, s), disjoint per station) with every pair's period.

    Returns (pair index, interval index, overlap µs) for every non-empty overlap, grouped by pair and in
    time order within a pair.
    """
    first = np.searchsorted(pairs.key(g, e), pairs.key(pairs.g, pairs.a), side="right")
    stop = np.searchsorted(pairs.key(g, s), pairs.key(pairs.g, pairs.b), side="left")
    n = np.maximum(stop - first, 0)
    rep = np.repeat(np.arange(len(n), dtype=np.int64), n)
    idx = first[rep] + (np.arange(rep.size, dtype=np.int64) - (np.cumsum(n) - n)[rep])
    length = np.minimum(e[idx], pairs.b[rep]) - np.maximum(s[idx], pairs.a[rep])
    keep = length > 0
    return rep[keep], idx[keep].astype(np.int64), length[keep].astype(np.int64)


def in_periods(pairs: Pairs, g: I64, t: I64) -> tuple[I64, I64]:
    """For events sorted by (g, t): per pair the index range ``[first, stop)`` of its station's events in ``[a, b)``."""
    keys = pairs.key(g, t)
    first = np.searchsorted(keys, pairs.key(pairs.g, pairs.a), side="left")
    stop = np.searchsorted(keys, pairs.key(pairs.g, pairs.b), side="left")
    return first.astype(np.int64), np.maximum(stop, first).astype(np.int64)


def range_sums(values: I64, first: I64, stop: I64) -> I64:
    """Sum of ``values[first:stop]`` for each range, exact in int64."""
    cum: I64 = np.concatenate([np.zeros(1, np.int64), np.cumsum(values, dtype=np.int64)])
    out: I64 = cum[stop] - cum[first]
    return out


def station_windows(stations: Sequence[str], windows: Mapping[str, Iterable[Window]], field: str
                    ) -> tuple[I64, I64, I64]:
    """Per-station merged windows as (g, starts, ends) sorted by (g, start); stations absent from the map have none."""
    gs, ss, es = [], [], []
    for g, name in enumerate(stations):
        s, e = windows_us(windows.get(name, ()), field if len(stations) == 1 else f"{field}[{name}]")
        gs.append(np.full(len(s), g, np.int64))
        ss.append(s)
        es.append(e)
    if not gs:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(gs), np.concatenate(ss), np.concatenate(es)


def mark_stale(states: pl.DataFrame, gaps: pl.DataFrame) -> pl.DataFrame:
    """State intervals with the parts inside stale ``gaps`` split off and given quality ``stale``.

    ``states``: columns station, start, end, state, reason, quality (more columns are kept), intervals
    disjoint per station (twin.store.state_intervals). ``gaps``: station, start, end, disjoint per station
    (twin.store.stale_gaps). An interval is cut at the gap boundaries inside it; the pieces inside a gap
    become ``stale`` except a trusted NST (quality good): a station that is not scheduled is not expected to
    publish, so its silence says nothing about the link. Time without a state interval stays without one
    (no entry / after ``as_of``). Pieces of one interval with the same quality stay one interval, so the
    frame is unchanged where no gap touches it. Exact: integer microseconds.
    """
    require_columns(states, STATE_COLUMNS, "states")
    require_columns(gaps, ("station", "start", "end"), "gaps")
    if states.is_empty() or gaps.is_empty():
        return states
    columns = states.columns
    index = {name: g for g, name in enumerate(sorted(set(states["station"].to_list())))}
    st = states.with_columns(
        pl.col("station").replace_strict(index, return_dtype=pl.Int64).alias("_g"),
        _datetime_us(states, "start", "states").alias("_s"), _datetime_us(states, "end", "states").alias("_e"),
    ).sort("_g", "_s")
    gp = gaps.filter(pl.col("station").is_in(list(index))).select(
        pl.col("station").replace_strict(index, return_dtype=pl.Int64).alias("_g"),
        _datetime_us(gaps, "start", "gaps").alias("_s"), _datetime_us(gaps, "end", "gaps").alias("_e"))
    lo, hi = int(st["_s"].min()), int(st["_e"].max())  # type: ignore[arg-type]
    gp = gp.with_columns(pl.col("_s").clip(lo, hi), pl.col("_e").clip(lo, hi)).filter(
        pl.col("_e") > pl.col("_s")).sort("_g", "_s")
    if gp.is_empty():
        return states
    span = hi - lo + 1
    if (len(index) + 1) * span >= _KEY_LIMIT:
        raise InputError("gaps", "too many stations over too long a time for one overlay; split it")

    def key(g: I64, t: I64) -> I64:
        out: I64 = g * span + (t - lo)
        return out

    g, s, e = st["_g"].to_numpy(), st["_s"].to_numpy(), st["_e"].to_numpy()
    gg, gs, ge = gp["_g"].to_numpy(), gp["_s"].to_numpy(), gp["_e"].to_numpy()
    cuts = np.unique(np.concatenate([key(g, s), key(g, e), key(gg, gs), key(gg, ge)]))
    cut_g, cut_t = cuts // span, cuts % span + lo
    same = cut_g[:-1] == cut_g[1:]
    seg_g, seg_s, seg_e = cut_g[:-1][same], cut_t[:-1][same], cut_t[1:][same]
    row = locate(key(seg_g, seg_s), key(g, s), key(g, e))
    inside = locate(key(seg_g, seg_s), key(gg, gs), key(gg, ge)) >= 0
    keep = row >= 0
    trusted_nst = (pl.col("state") == "NST") & (pl.col("quality") == "good")
    pieces = st.drop("_s", "_e").with_row_index("_row")[row[keep]].with_columns(
        pl.Series("_s", seg_s[keep], dtype=pl.Int64), pl.Series("_e", seg_e[keep], dtype=pl.Int64),
        pl.when(pl.Series(inside[keep]) & ~trusted_nst).then(pl.lit("stale")).otherwise(pl.col("quality"))
        .alias("quality"))
    run = ((pl.col("_row") != pl.col("_row").shift(1)) | (pl.col("quality") != pl.col("quality").shift(1))
           ).fill_null(True).cum_sum().alias("_run")
    merged = pieces.with_columns(run).group_by("_run", maintain_order=True).agg(
        pl.col("_s").min(), pl.col("_e").max(), pl.all().exclude("_s", "_e").first())
    ts = states.schema["start"]
    return merged.with_columns(pl.col("_s").cast(pl.Datetime("us", "UTC")).cast(ts).alias("start"),
                               pl.col("_e").cast(pl.Datetime("us", "UTC")).cast(ts).alias("end")).select(columns)
