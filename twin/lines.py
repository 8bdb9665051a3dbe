"""Line KPIs (KPI.md section 4): line OEE from line output, and line yield as a product of station yields.

Line OEE is never an average of station OEEs. Line output is the good units leaving the last station of
each product's route; the line ideal cycle time of a product is the largest station ideal cycle time on
its route (the bottleneck); line PBT comes from the line's calendar (scheduled time − planned
downtime), given by the caller. Readings fixed here:
- If any station on a product's route has no ideal cycle time for it, the line PRI is unknown (the
  maximum cannot be known); a product with line GQ > 0 and unknown PRI makes line OEE ``None`` and is
  listed in ``missing``.
- Station yield = GQ / PQ of the station (all products, or one product when ``sku`` is given); a station
  on the route with PQ = 0 makes the line yield unknown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from twinline.uns.plant import Line

from .errors import InputError
from .iso22400 import Counts, ratio


@dataclass(frozen=True)
class LineOee:
    """Line OEE = Σ_p line PRI_p × line GQ_p / line PBT (KPI.md 4)."""

    oee: float | None
    line_pri_s: Mapping[str, float | None]
    line_gq: Mapping[str, int]
    line_pbt_s: float
    missing: tuple[str, ...]


def line_ideal_cycle_s(route_ideal_cycle_s: Sequence[float | None]) -> float | None:
    """Line PRI of one product: the largest station ideal cycle time on its route; None if any is unknown."""
    if not route_ideal_cycle_s:
        return None
    known = [c for c in route_ideal_cycle_s if c is not None]
    for c in known:
        if not (math.isfinite(c) and c > 0):
            raise InputError("route_ideal_cycle_s", f"{c!r} is not a positive, finite time")
    return max(known) if len(known) == len(route_ideal_cycle_s) else None


def line_oee(line_gq: Mapping[str, int], route_ideal_cycle_s: Mapping[str, Sequence[float | None]],
             line_pbt_s: float) -> LineOee:
    """Line OEE (KPI.md 4) from good units leaving the line per product and each product's route.

    ``route_ideal_cycle_s[p]`` lists the ideal cycle time of product p at every station of its route
    (None where unknown).
    """
    if line_pbt_s < 0 or any(q < 0 for q in line_gq.values()):
        raise InputError("line_gq", "quantities and line PBT cannot be negative")
    pri = {p: line_ideal_cycle_s(route_ideal_cycle_s.get(p, ())) for p in line_gq}
    missing = tuple(sorted(p for p, q in line_gq.items() if q > 0 and pri[p] is None))
    valuable_s = math.fsum((pri[p] or 0.0) * q for p, q in line_gq.items() if q > 0)
    return LineOee(None if missing else ratio(valuable_s, line_pbt_s), pri, dict(line_gq), line_pbt_s, missing)


@dataclass(frozen=True)
class LineYield:
    """Line yield = Π station yields along the route (KPI.md 4), with each station's yield."""

    line_yield: float | None
    station_yields: tuple[tuple[str, float | None], ...]


def line_yield(route: Sequence[str], station_counts: Mapping[str, Counts], sku: str | None = None) -> LineYield:
    """Line yield (KPI.md 4): Π over ``route`` of station GQ / PQ (one product when ``sku`` is given)."""
    yields: list[tuple[str, float | None]] = []
    for station in route:
        if station not in station_counts:
            raise InputError(f"station_counts[{station}]", "station on the route has no counts")
        counts = station_counts[station]
        if sku is not None:
            one = counts.by_sku.get(sku)
            yields.append((station, None if one is None else ratio(one.gq, one.pq)))
        else:
            yields.append((station, ratio(counts.gq, counts.pq)))
    values = [y for _, y in yields]
    total = None if not values or any(y is None for y in values) else math.prod(y for y in values if y is not None)
    return LineYield(total, tuple(yields))


def line_pbt_s(line: Line, a: datetime, b: datetime) -> float:
    """Line PBT over [a, b): scheduled time of the line calendar − line-wide planned downtime (KPI.md 4).

    A planned-downtime entry naming stations is not line-wide; the station path "" matches only entries
    for every station.
    """
    if b <= a:
        return 0.0
    scheduled = math.fsum(max(0.0, (min(w.end, b) - max(w.start, a)).total_seconds())
                          for w in line.calendar.shift_windows(a, b))
    planned = math.fsum((w.end - w.start).total_seconds() for w in line.calendar.planned_downtime_windows(a, b, ""))
    return scheduled - planned
