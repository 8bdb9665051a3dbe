"""KPIs of an asset (station, line, area or site) over a period: store reads + plant model + pure engine.

``compute`` reads everything for the period in a handful of queries (twin.store: state intervals, count
and energy sums for the whole period and every shift in one query each, good-unit rows for changeovers),
then classifies every (period, station) pair in one vectorised pass of the pure engine (timemodel, e10 and
episodes ``*_many`` functions), finishes per station and line from those frames (iso22400, losses,
changeover, lines) and returns a frozen ``KpiResult`` (twin.results).

Readings fixed here (beside those of the engine modules):
- Scheduled time is the station's line calendar (shift instances); planned downtime is the calendar's
  windows for that station. Line PBT = the line calendar's scheduled time − line-wide planned downtime
  over ``[t0, min(t1, as_of))``: time that has not happened yet is not planned busy time of the line.
- Per shift: every shift instance of the lines' calendars overlapping ``[t0, t1)``, clipped to it. The
  scheduled elements and counts of the shifts add up to the whole period's (counts outside every shift
  stay in the whole period only). Line-type figures (wafer, panel, laptop) are computed for the whole
  period only.
- E10 / E79: cycles (MCBF) = units produced (PQ); all scrap and rework at a station count as
  equipment-caused (E79 QE) because the data does not say otherwise.
- Changeovers belong to the period in which they end (the first good unit of B); the last good unit
  before ``t0`` is read so a changeover across ``t0`` is found. Run-up that is still under way at the
  end of the read window is unknown (None).
- Units with no product in the data are counted under product ``(none)``; having no ideal cycle time
  they make E and OEE unknown, as KPI.md asks.
- Data quality (issue 7 part 3): time before a station's first state entry, time after ``as_of``, bad /
  uncertain state rows and STALE telemetry are nodata: excluded from every time element (never counted as
  running or stopped, not in PBT) and reported by cause in ``DataQuality``. Stale: wherever a station's
  telemetry (rows of any of its channels: state, count, process, energy, product, alarm) is silent for more
  than the plant setting ``stale_after_s``, the time from (last instant + stale_after_s) to the next
  instant, or to ``min(t1, as_of)`` when none came, is stale (twin.store.stale_gaps, read in one query).
  The edge agents publish energy and counts continuously while a station is scheduled, so such a silence
  means the link (edge agent down, network cut, frozen device), not the machine: carrying the last state
  on would count a dead link as running or stopped. The gaps are overlaid on the state intervals before
  classification (quality ``stale``, ``_intervals.mark_stale``); a trusted NST keeps its state, as a
  non-scheduled station need not publish. The elements still sum to the period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import psycopg

from twinline.uns.plant import Line, LineType, Plant, Station

from . import store
from ._intervals import Pairs, StationStates, mark_stale, overlaps
from .changeover import changeover_matrix, changeovers
from .e10 import E10Times, RecipeUnits, e10_kpis, e10_times_by_pair, e10_times_many
from .episodes import downtime_events_many, failure_counts_many
from .errors import InputError, UnknownAsset
from .iso22400 import Counts, ProductCounts, kpis
from .lines import line_oee, line_pbt_s, line_yield
from .linetypes import type_kpis
from .losses import StationWaiting, bottleneck, loss_tree
from .results import (
    Changeover,
    DataQuality,
    KpiResult,
    LineKpis,
    MatrixCell,
    PeriodResult,
    ReasonLoss,
    StaleInterval,
    StationKpis,
)
from .timemodel import TimeElements, classify_many, elements_by_pair

NO_PRODUCT = "(none)"
TOP_REASONS = 5


@dataclass(frozen=True)
class Scope:
    """What an asset path covers: its kind and the lines with the stations in scope."""

    asset: str
    kind: str
    lines: tuple[tuple[Line, tuple[Station, ...]], ...]

    @property
    def stations(self) -> list[str]:
        return [str(st.path) for _, sts in self.lines for st in sts]


def resolve(plant: Plant, asset_path: str) -> Scope:
    """Scope of a site, area, line or station path; UnknownAsset when the plant has no such asset."""
    path = asset_path.strip().strip("/")
    parts = path.split("/")
    if not path or parts[0] != plant.site_id or len(parts) > 4:
        raise UnknownAsset(path, f"not an asset of site {plant.site_id!r} (site/area/line/station)")
    if len(parts) == 4:
        if path not in plant.stations:
            raise UnknownAsset(path, "no such station in the plant model")
        ln = plant.line_of(path)
        return Scope(path, "station", ((ln, (plant.station(path),)),))
    if len(parts) == 3:
        if path not in plant.lines:
            raise UnknownAsset(path, "no such line in the plant model")
        ln = plant.lines[path]
        return Scope(path, "line", ((ln, ln.stations),))
    lines = [ln for ln in plant.lines.values() if len(parts) == 1 or ln.path.area == parts[1]]
    if not lines:
        raise UnknownAsset(path, "no such area in the plant model")
    return Scope(path, "site" if len(parts) == 1 else "area", tuple((ln, ln.stations) for ln in lines))


def _utc(ts: datetime, field: str) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise InputError(field, f"{ts!r} is naive; twinline times are timezone-aware UTC")
    return ts.astimezone(UTC)


@dataclass(frozen=True)
class _Period:
    label: str
    t0: datetime
    t1: datetime
    lines: frozenset[str]


def _periods(scope: Scope, t0: datetime, t1: datetime, per_shift: bool) -> list[_Period]:
    periods = [_Period("period", t0, t1, frozenset(str(ln.path) for ln, _ in scope.lines))]
    if not per_shift:
        return periods
    shifts: dict[tuple[datetime, datetime, str], set[str]] = {}
    for ln, _ in scope.lines:
        for w in ln.calendar.shift_windows(t0, t1):
            key = (max(w.start, t0), min(w.end, t1), f"{w.day.isoformat()} {w.name}")
            shifts.setdefault(key, set()).add(str(ln.path))
    periods += [_Period(label, a, b, frozenset(lines)) for (a, b, label), lines in sorted(shifts.items())]
    return periods


def compute(conn: psycopg.Connection[Any], plant: Plant, asset_path: str, t0: datetime, t1: datetime, *,
            as_of: datetime, per_shift: bool = False, rollups: store.RollupMode = "refresh",
            with_changeovers: bool = True) -> KpiResult:
    """KPIs of ``asset_path`` over ``[t0, t1)`` as known at ``as_of`` (module docstring for the readings).

    ``rollups="raw"`` reads counts and energy from the raw tables only (TimescaleDB); results are equal.
    Raises UnknownAsset, InputError (bad period), StoreError / StoreUnavailable (database).
    """
    t0, t1, as_of = _utc(t0, "t0"), _utc(t1, "t1"), _utc(as_of, "as_of")
    if t1 <= t0:
        raise InputError("t1", f"period end {t1.isoformat()} is not after its start {t0.isoformat()}")
    scope = resolve(plant, asset_path)
    te = store.effective_end(t0, t1, as_of)
    wafer = any(ln.type is LineType.WAFER for ln, _ in scope.lines) and scope.kind != "station"
    plan = store.prepare_rollups(conn, None if wafer else t0, te, mode=rollups)
    periods = _periods(scope, t0, t1, per_shift)
    stations = scope.stations
    gaps = store.stale_gaps(conn, stations, t0, t1, as_of=as_of, stale_after_s=plant.settings.stale_after_s)
    states = mark_stale(store.state_intervals(conn, stations, t0, t1, as_of=as_of), gaps)
    windows = [(p.t0, p.t1) for p in periods]
    counts = _counts_by(store.counts(conn, stations, windows, as_of=as_of, plan=plan))
    energy = _energy_by(store.energy(conn, stations, windows, as_of=as_of, plan=plan))
    good = store.good_units(conn, stations, t0, t1, as_of=as_of) if with_changeovers else None
    pairs = [(k, str(st.path)) for k, p in enumerate(periods) for ln, sts in scope.lines if str(ln.path) in p.lines
             for st in sts]
    eng = _engine(plant, scope, states, gaps, periods, pairs, t0, t1, te)
    cos = {} if good is None else {str(st.path): _changeovers(plant, st, eng.states_of(str(st.path)), good)
                                   for _, sts in scope.lines for st in sts}
    results = []
    for k, p in enumerate(periods):
        station_kpis: dict[str, StationKpis] = {}
        for ln, sts in scope.lines:
            if str(ln.path) not in p.lines:
                continue
            for st in sts:
                path = str(st.path)
                station_kpis[path] = _station(plant, ln, st, eng, k, p, te, as_of, counts.get((k, path), Counts()),
                                              energy.get((k, path)), cos.get(path))
        lines = {}
        if scope.kind != "station":
            for ln, _ in scope.lines:
                if str(ln.path) in p.lines:
                    extra = type_kpis(conn, plant, ln, t0, t1, as_of=as_of, plan=plan,
                                      station_counts={str(s.path): station_kpis[str(s.path)].iso.counts
                                                      for s in ln.stations},
                                      line_pbt_s=line_pbt_s(ln, p.t0, min(p.t1, te))) if k == 0 else None
                    lines[str(ln.path)] = _line(ln, station_kpis, eng, k, p, te, extra)
        results.append(PeriodResult(p.label, p.t0, p.t1, station_kpis, lines))
    return KpiResult(scope.asset, scope.kind, t0, t1, as_of, plant.settings.as_dict(), results[0], tuple(results[1:]))


def _counts_by(frame: pl.DataFrame) -> dict[tuple[int, str], Counts]:
    grouped: dict[tuple[int, str], dict[str, ProductCounts]] = {}
    for k, station, product, good, scrap, rework, _ in frame.iter_rows():
        sku = NO_PRODUCT if product is None else str(product)
        pc = ProductCounts(good + scrap + rework, good, scrap, rework)
        bucket = grouped.setdefault((k, station), {})
        bucket[sku] = bucket[sku] + pc if sku in bucket else pc
    return {key: Counts(v) for key, v in grouped.items()}


def _energy_by(frame: pl.DataFrame) -> dict[tuple[int, str], float]:
    return {(k, station): float(kwh) for k, station, kwh, samples in frame.iter_rows() if samples}


def _windows(ln: Line, st: Station, a: datetime, b: datetime) -> tuple[list[tuple[datetime, datetime]],
                                                                      list[tuple[datetime, datetime]]]:
    scheduled = [(w.start, w.end) for w in ln.calendar.shift_windows(a, b)]
    planned = [(w.start, w.end) for w in ln.calendar.planned_downtime_windows(a, b, str(st.path))]
    return scheduled, planned


@dataclass(frozen=True)
class _Engine:
    """Figures of every (period index, station) pair of a compute, from one batch pass of the pure engine."""

    states: StationStates
    elements: dict[tuple[int, str], TimeElements]
    e10: dict[tuple[int, str], E10Times]
    failures: dict[tuple[int, str], tuple[int, float, float]]
    downtime_events: dict[tuple[int, str], int]
    top: dict[tuple[int, str], tuple[ReasonLoss, ...]]
    line_top: dict[tuple[int, str], tuple[ReasonLoss, ...]]
    waiting: dict[tuple[int, str], tuple[float, float]]
    bad_s: dict[tuple[int, str], float]
    stale_s: dict[tuple[int, str], float]
    stale: dict[tuple[int, str], tuple[StaleInterval, ...]]
    first_start: dict[str, datetime]

    def states_of(self, station: str) -> pl.DataFrame:
        """One station's validated intervals as a state frame (start, end, state, reason, quality)."""
        return self.states.frame.filter(pl.col("station") == station).select(
            pl.col("s").cast(store.TS).alias("start"), pl.col("e").cast(store.TS).alias("end"),
            "state", "reason", "quality")


def _engine(plant: Plant, scope: Scope, states: pl.DataFrame, gaps: pl.DataFrame, periods: Sequence[_Period],
            pairs: Sequence[tuple[int, str]], t0: datetime, t1: datetime, te: datetime) -> _Engine:
    cap = plant.settings.changeover_counts_as_planned
    scheduled: dict[str, list[tuple[datetime, datetime]]] = {}
    planned: dict[str, list[tuple[datetime, datetime]]] = {}
    line_of: dict[str, str] = {}
    for ln, sts in scope.lines:
        shifts = [(w.start, w.end) for w in ln.calendar.shift_windows(t0, t1)]
        for st in sts:
            path = str(st.path)
            scheduled[path], line_of[path] = shifts, str(ln.path)
            planned[path] = [(w.start, w.end) for w in ln.calendar.planned_downtime_windows(t0, t1, path)]
    stations = list(scheduled)
    prepared = StationStates.of(states, stations)
    windows = [(p.t0, p.t1) for p in periods]
    model = classify_many(prepared, windows, scheduled, planned, pairs=pairs, changeover_counts_as_planned=cap)
    fails = failure_counts_many(prepared, windows, stations, pairs=pairs)
    events = downtime_events_many(prepared, windows, stations, pairs=pairs)
    loss = model.by_reason.filter(pl.col("element").is_in(["aust", "adet", "adot"]))
    waiting = (loss.filter((pl.col("element") == "adot") & (pl.col("state") == "SBY"))
               .group_by("period", "station").agg(
                   pl.col("seconds").filter(pl.col("reason") == "starved").sum().alias("starved"),
                   pl.col("seconds").filter(pl.col("reason") == "blocked").sum().alias("blocked")))
    by_line = (loss.with_columns(pl.col("station").replace_strict(line_of, return_dtype=pl.String).alias("line"))
               .group_by("period", "line", "element", "state", "reason").agg(pl.col("seconds").sum()))
    quality_windows = [(p.t0, max(p.t0, min(p.t1, te))) for p in periods]
    index = {name: g for g, name in enumerate(stations)}
    bad_pairs = Pairs.of(quality_windows, len(stations), [(k, index[path]) for k, path in pairs])
    rep, _, length = overlaps(bad_pairs, *prepared.arrays(prepared.frame.filter(pl.col("quality") == "nodata")))
    bad_us = np.bincount(rep, weights=length.astype(np.float64), minlength=len(pairs))
    stale_us, stale = _stale(prepared, gaps, bad_pairs, pairs)
    firsts = prepared.frame.group_by("station").agg(pl.col("s").min())
    return _Engine(
        states=prepared,
        elements=elements_by_pair(model.elements, cap),
        e10=e10_times_by_pair(e10_times_many(prepared, windows, stations, pairs=pairs)),
        failures={(int(r[0]), str(r[1])): (int(r[2]), float(r[3]), float(r[5])) for r in fails.iter_rows()},
        downtime_events={(int(r[0]), str(r[1])): int(r[2]) for r in events.iter_rows()},
        top=_top(loss, "station"), line_top=_top(by_line, "line"),
        waiting={(int(r[0]), str(r[1])): (float(r[2]), float(r[3])) for r in waiting.iter_rows()},
        bad_s={pair: float(us) / 1e6 for pair, us in zip(pairs, bad_us, strict=True)},
        stale_s={pair: float(us) / 1e6 for pair, us in zip(pairs, stale_us, strict=True)}, stale=stale,
        first_start={str(r[0]): _from_us(int(r[1])) for r in firsts.iter_rows()},
    )


def _stale(prepared: StationStates, gaps: pl.DataFrame, quality_pairs: Pairs, pairs: Sequence[tuple[int, str]]
           ) -> tuple[np.ndarray[Any, np.dtype[np.float64]], dict[tuple[int, str], tuple[StaleInterval, ...]]]:
    """Stale µs per pair and the stale stretches of each pair (contiguous pieces merged) with the last instant seen."""
    frame = prepared.frame.filter(pl.col("quality") == "stale")
    g, s, e = prepared.arrays(frame)
    rep, idx, length = overlaps(quality_pairs, g, s, e)
    total = np.bincount(rep, weights=length.astype(np.float64), minlength=len(pairs)).astype(np.float64)
    starts = np.maximum(s[idx], quality_pairs.a[rep])
    ends = np.minimum(e[idx], quality_pairs.b[rep])
    seen = {str(name): (sub["start"].dt.epoch("us").to_numpy(), sub["last_seen"].dt.epoch("us").to_numpy())
            for (name,), sub in gaps.sort("station", "start").group_by("station")}
    out: dict[tuple[int, str], list[StaleInterval]] = {}
    for r, a, b in zip(rep.tolist(), starts.tolist(), ends.tolist(), strict=True):
        rows = out.setdefault(pairs[r], [])
        if rows and _us(rows[-1].end) == a:
            rows[-1] = StaleInterval(rows[-1].start, _from_us(b), rows[-1].last_seen)
            continue
        gap_starts, last = seen[pairs[r][1]]
        seen_us = int(last[np.searchsorted(gap_starts, a, "right") - 1])
        rows.append(StaleInterval(_from_us(a), _from_us(b), _from_us(seen_us)))
    return total, {pair: tuple(rows) for pair, rows in out.items()}


def _us(value: datetime) -> int:
    return (value - datetime.fromtimestamp(0, UTC)) // timedelta(microseconds=1)


def _from_us(value: int) -> datetime:
    return datetime.fromtimestamp(0, UTC) + timedelta(microseconds=value)


def _top(loss: pl.DataFrame, key: str) -> dict[tuple[int, str], tuple[ReasonLoss, ...]]:
    """Top loss reasons per (period, key), ordered as ``losses.top_reasons``."""
    ranked = (loss.sort(["period", key, "seconds", "state", "reason"], descending=[False, False, True, False, False])
              .group_by("period", key, maintain_order=True).head(TOP_REASONS))
    out: dict[tuple[int, str], list[ReasonLoss]] = {}
    for k, name, element, state, reason, seconds in ranked.select("period", key, "element", "state", "reason",
                                                                  "seconds").iter_rows():
        out.setdefault((k, name), []).append(ReasonLoss(element, state, reason, seconds))
    return {pair: tuple(rows) for pair, rows in out.items()}


def _station(plant: Plant, ln: Line, st: Station, eng: _Engine, k: int, p: _Period, te: datetime, as_of: datetime,
             counts: Counts, energy_kwh: float | None, cos: pl.DataFrame | None) -> StationKpis:
    path = str(st.path)
    el = eng.elements[(k, path)]
    failures, repair_s, udt_s = eng.failures[(k, path)]
    iso = kpis(el, counts, st.ideal_cycle_s, energy_kwh, failures, udt_s)
    e10 = e10_kpis(eng.e10[(k, path)], failures=failures, repair_s=repair_s,
                   downtime_event_count=eng.downtime_events[(k, path)], cycles=counts.pq, tht_s=st.ideal_cycle_s,
                   recipe_units={sku: RecipeUnits(c.pq, c.sq, c.rq) for sku, c in counts.by_sku.items()})
    mine = None if cos is None else cos.filter((pl.col("end") >= p.t0) & (pl.col("end") < min(p.t1, te)))
    return StationKpis(
        station=path, line=str(ln.path), elements=el, iso=iso, e10=e10, energy_kwh=energy_kwh,
        losses=loss_tree(el, counts, st.ideal_cycle_s), top_reasons=eng.top.get((k, path), ()),
        changeovers=() if mine is None else _changeover_rows(mine),
        matrix=() if mine is None or mine.is_empty() else _matrix_rows(changeover_matrix(mine)),
        quality=_quality(eng, path, k, el.nodata_s, el.covered_fraction, p, te, as_of),
    )


def _changeovers(plant: Plant, st: Station, states: pl.DataFrame, good: pl.DataFrame) -> pl.DataFrame:
    events = (good.filter(pl.col("station") == str(st.path))
              .select("ts", pl.col("product").fill_null(NO_PRODUCT), "good",
                      pl.lit(0, pl.Int64).alias("scrap"), pl.lit(0, pl.Int64).alias("rework")))
    return changeovers(events, states, st.ideal_cycle_s, runup_window_units=plant.settings.runup_window_units,
                       runup_rate_fraction=plant.settings.runup_rate_fraction)


def _changeover_rows(frame: pl.DataFrame) -> tuple[Changeover, ...]:
    return tuple(Changeover(r["from_product"], r["to_product"], r["start"], r["end"], r["changeover_s"],
                            r["setup_s"], r["run_up_s"], r["total_s"]) for r in frame.iter_rows(named=True))


def _matrix_rows(frame: pl.DataFrame) -> tuple[MatrixCell, ...]:
    return tuple(MatrixCell(r["from_product"], r["to_product"], int(r["count"]), r["mean_changeover_s"],
                            r["mean_total_s"]) for r in frame.iter_rows(named=True))


def _quality(eng: _Engine, path: str, k: int, nodata_s: float, covered: float | None, p: _Period, te: datetime,
             as_of: datetime) -> DataQuality:
    end = min(p.t1, te)
    first = eng.first_start.get(path)
    no_entry_end = end if first is None else min(max(first, p.t0), end)
    no_entry = max(0.0, (no_entry_end - p.t0).total_seconds()) if end > p.t0 else 0.0
    after = max(0.0, (p.t1 - max(p.t0, as_of)).total_seconds())
    return DataQuality(covered, nodata_s, no_entry, eng.bad_s[(k, path)], after, eng.stale_s[(k, path)],
                       eng.stale.get((k, path), ()))


def _line(ln: Line, stations: Mapping[str, StationKpis], eng: _Engine, k: int, p: _Period, te: datetime,
          extra: Any) -> LineKpis:
    route = [str(s.path) for s in ln.stations]
    counts = {s: stations[s].iso.counts for s in route}
    line_gq: dict[str, int] = {}
    route_cycles: dict[str, Sequence[float | None]] = {}
    for sku, ids in ln.routes.items():
        last = counts[str(ln.station(ids[-1]).path)].by_sku.get(sku)
        if last is not None and last.gq > 0:
            line_gq[sku] = last.gq
            route_cycles[sku] = [ln.station(i).ideal_cycle_s.get(sku) for i in ids]
    oee = line_oee(line_gq, route_cycles, line_pbt_s(ln, p.t0, min(p.t1, te)))
    by_product = {sku: line_yield([str(ln.station(i).path) for i in ids], counts, sku)
                  for sku, ids in ln.routes.items() if any(sku in c.by_sku for c in counts.values())}
    waiting = {s: StationWaiting(stations[s].elements, *eng.waiting.get((k, s), (0.0, 0.0))) for s in route}
    return LineKpis(
        line=str(ln.path), line_type=ln.type.value, oee=oee, line_yield=line_yield(route, counts),
        yield_by_product=by_product, station_oee={s: stations[s].iso.oee for s in route},
        bottleneck=bottleneck(route, waiting), top_reasons=eng.line_top.get((k, str(ln.path)), ()),
        type_kpis=extra,
    )


__all__ = ["NO_PRODUCT", "Scope", "compute", "resolve"]
