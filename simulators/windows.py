"""Calendar overlay of one station: when it is non-scheduled (NST) or in planned downtime (SDT PM).

Windows come from the plant calendar (outside the shift windows -> NST non_scheduled; planned-downtime
entries -> SDT preventive_maintenance, since E10 has no "meeting" reason and either way the KPI engine puts
such time in PDOT) and from the station's periodic `sim.pm` (anchored at the plant epoch, so a PM falls
on the same instant whatever period is simulated). NST wins over PM where they overlap. Times are seconds
relative to the simulation start `t0`.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import NamedTuple

from twinline.simulators.params import PmSpec
from twinline.uns.calendar import Calendar
from twinline.uns.states import E10, Reason


class Window(NamedTuple):
    start: float
    end: float
    state: E10
    reason: Reason


_NST = (E10.NST, Reason.NON_SCHEDULED)
_PM = (E10.SDT, Reason.PREVENTIVE_MAINTENANCE)


def station_windows(calendar: Calendar, station_path: str, pm: PmSpec | None, epoch: datetime, t0: datetime,
                    a: float, b: float) -> list[Window]:
    """Off windows of one station inside [a, b) (seconds after t0), sorted, non-overlapping."""
    lo, hi = t0 + timedelta(seconds=a), t0 + timedelta(seconds=b)

    def rel(ts: datetime) -> float:
        return min(max((ts - t0).total_seconds(), a), b)

    nst: list[tuple[float, float]] = []
    cursor = a
    for w in calendar.shift_windows(lo, hi):
        s, e = rel(w.start), rel(w.end)
        if s > cursor:
            nst.append((cursor, s))
        cursor = max(cursor, e)
    if cursor < b:
        nst.append((cursor, b))
    pms = [(rel(w.start), rel(w.end)) for w in calendar.planned_downtime_windows(lo, hi, station_path)]
    if pm is not None:
        base = (t0 - epoch).total_seconds()  # epoch-relative time of t0
        k = max(0, int((base + a - pm.offset_s - pm.duration_s) // pm.every_s))
        while True:
            s = pm.offset_s + k * pm.every_s - base
            if s >= b:
                break
            e = s + pm.duration_s
            if e > a:
                pms.append((max(s, a), min(e, b)))
            k += 1
    return _combine(nst, pms)


def _combine(nst: list[tuple[float, float]], pms: list[tuple[float, float]]) -> list[Window]:
    points = sorted({p for s, e in nst + pms for p in (s, e)})
    out: list[Window] = []
    for s, e in itertools.pairwise(points):
        mid = (s + e) / 2
        label = _NST if any(x <= mid < y for x, y in nst) else _PM if any(x <= mid < y for x, y in pms) else None
        if label is None:
            continue
        if out and out[-1].end == s and (out[-1].state, out[-1].reason) == label:
            out[-1] = Window(out[-1].start, e, *label)
        else:
            out.append(Window(s, e, *label))
    return out
