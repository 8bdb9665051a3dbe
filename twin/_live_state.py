"""Per-station state of the live twin, the frozen snapshot types and the text rendering (twin.live).

Everything here runs under the LiveTwin's lock or on frozen data; no I/O.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from twinline.uns.calendar import ShiftWindow
from twinline.uns.plant import Line

from .iso22400 import Counts, ProductCounts, kpis, ratio
from .lines import line_pbt_s
from .timemodel import time_elements

_HOUR = timedelta(hours=1)
_TS = pl.Datetime("us", "UTC")
NO_PRODUCT = "(none)"


@dataclass(frozen=True)
class StationLive:
    """One station now: state since when, product, shift counts so far, availability and OEE so far."""

    station: str
    state: str | None
    reason: str | None
    since: datetime | None
    product: str | None
    good: int
    scrap: int
    rework: int
    availability: float | None
    oee: float | None


@dataclass(frozen=True)
class HourPlan:
    """One hour of the shift: plan (ideal output at the bottleneck rate) and actual good output."""

    start: datetime
    plan_units: float | None
    actual_units: int


@dataclass(frozen=True)
class LineLive:
    """One line now: shift, stations, output so far, hourly plan vs actual and the shift-end forecast."""

    line: str
    shift: str | None
    shift_start: datetime | None
    shift_end: datetime | None
    stations: tuple[StationLive, ...]
    output: int
    hourly: tuple[HourPlan, ...]
    forecast_units: float | None


@dataclass(frozen=True)
class LiveSnapshot:
    """Every line now, with the stream's counters (messages applied, dropped by overflow, rejected)."""

    at: datetime
    lines: tuple[LineLive, ...]
    messages: int
    dropped: int
    rejected: int
    connected: bool


class StationState:
    """Mutable state of one station in the running shift (guarded by the LiveTwin lock)."""

    def __init__(self, path: str, line: Line) -> None:
        self.path = path
        self.line = line
        self.shift: ShiftWindow | None = None
        self.entries: list[tuple[datetime, str, str, str]] = []
        self.product: str | None = None
        self.product_since: datetime | None = None
        self.counts: dict[str, list[int]] = {}
        self.hourly: dict[int, int] = {}

    def hour_windows(self, start: datetime, now: datetime) -> list[tuple[datetime, datetime]]:
        """Hours of the shift from ``start`` up to ``now`` (the last one partial)."""
        out = []
        a = start
        while a < now:
            out.append((a, min(a + _HOUR, now)))
            a += _HOUR
        return out

    def seed(self, shift: ShiftWindow | None, states: pl.DataFrame, hours: list[tuple[datetime, datetime]],
             counts: pl.DataFrame, products: pl.DataFrame) -> None:
        self.shift = shift
        self.entries = [(r["start"], r["state"], r["reason"], r["quality"]) for r in states.iter_rows(named=True)]
        for k, _, product, good, scrap, rework, _ in counts.iter_rows():
            acc = self.counts.setdefault(NO_PRODUCT if product is None else str(product), [0, 0, 0])
            acc[0] += good
            acc[1] += scrap
            acc[2] += rework
            self.hourly[k] = self.hourly.get(k, 0) + good
        if products.height:
            last = products.row(products.height - 1, named=True)
            self.product, self.product_since = last["product"], last["ts"]

    def enter(self, ts: datetime, state: str, reason: str, quality: str) -> None:
        bisect.insort(self.entries, (ts, state, reason, "good" if quality == "good" else "nodata"))

    def set_product(self, ts: datetime, product: str) -> None:
        if self.product_since is None or ts >= self.product_since:
            self.product, self.product_since = product, ts

    def add_count(self, ts: datetime, product: str | None, good: int, scrap: int, rework: int) -> None:
        shift = self.shift
        if shift is None or not shift.start <= ts < shift.end:
            return
        sku = product or self.product or NO_PRODUCT
        acc = self.counts.setdefault(sku, [0, 0, 0])
        acc[0] += good
        acc[1] += scrap
        acc[2] += rework
        k = int((ts - shift.start) / _HOUR)
        self.hourly[k] = self.hourly.get(k, 0) + good

    def roll(self, now: datetime) -> None:
        """Enter a new shift when the clock has: counts restart, the state in force carries over."""
        current = self.line.calendar.shift_at(now)
        if current is None or current == self.shift:
            return
        self.shift = current
        self.counts, self.hourly = {}, {}
        before = [e for e in self.entries if e[0] <= current.start]
        self.entries = before[-1:] + [e for e in self.entries if e[0] > current.start]

    def live(self, now: datetime) -> StationLive:
        known = [e for e in self.entries if e[0] <= now]
        last = known[-1] if known else None
        counts = Counts({sku: ProductCounts(sum(v), v[0], v[1], v[2]) for sku, v in self.counts.items()})
        availability = oee = None
        shift = self.shift
        if shift is not None and known:
            end = min(now, shift.end)
            if end > shift.start:
                starts = [e[0] for e in known]
                frame = pl.DataFrame({"start": starts, "end": [*starts[1:], end],
                                      "state": [e[1] for e in known], "reason": [e[2] for e in known],
                                      "quality": [e[3] for e in known]},
                                     schema={"start": _TS, "end": _TS, "state": pl.String, "reason": pl.String,
                                             "quality": pl.String}).filter(pl.col("end") > pl.col("start"))
                planned = [(w.start, w.end) for w in
                           self.line.calendar.planned_downtime_windows(shift.start, end, self.path)]
                el = time_elements(frame, shift.start, end, [(shift.start, shift.end)], planned)
                result = kpis(el, counts, self.line.station(self.path.rsplit("/", 1)[1]).ideal_cycle_s, None, 0, None)
                availability, oee = result.availability, result.oee
        return StationLive(self.path, last[1] if last else None, last[2] if last else None,
                           last[0] if last else None, self.product, counts.gq, counts.sq, counts.rq,
                           availability, oee)


def build_line(ln: Line, stations: list[StationState], now: datetime) -> LineLive:
    """Frozen view of one line (plan vs actual and forecast as in twin.live's docstring)."""
    lives = tuple(st.live(now) for st in stations)
    last = stations[-1]
    shift = last.shift
    if shift is None:
        return LineLive(str(ln.path), None, None, None, lives, 0, (), None)
    output = sum(v[0] for v in last.counts.values())
    cycle = None
    if last.product is not None and last.product in ln.routes:
        cycle = ln.bottleneck_cycle_s(last.product)
    hourly = []
    for k, (a, b) in enumerate(last.hour_windows(shift.start, min(now, shift.end))):
        hour_end = min(a + _HOUR, shift.end)
        plan = None if cycle is None else line_pbt_s(ln, a, hour_end) / cycle
        hourly.append(HourPlan(a, plan, last.hourly.get(k, 0)))
        del b
    elapsed = line_pbt_s(ln, shift.start, min(now, shift.end))
    remaining = line_pbt_s(ln, min(now, shift.end), shift.end)
    rate = ratio(output, elapsed) if last.entries or last.counts else None  # no data is unknown, not 0
    forecast = None if rate is None else output + rate * remaining
    return LineLive(str(ln.path), f"{shift.day.isoformat()} {shift.name}", shift.start, shift.end, lives, output,
                    tuple(hourly), forecast)


_LABELS = {
    "en": {"line": "Line", "shift": "shift", "none": "no shift", "output": "output", "plan": "plan this hour",
           "actual": "actual", "forecast": "shift-end forecast", "station": "station", "state": "state",
           "reason": "reason", "product": "product", "good": "good", "scrap": "scrap", "oee": "OEE so far",
           "unknown": "unknown"},
    "zh-CN": {"line": "产线", "shift": "班次", "none": "非排班时间", "output": "产出", "plan": "本小时计划",
              "actual": "实际", "forecast": "班末预测", "station": "工位", "state": "状态", "reason": "原因",
              "product": "产品", "good": "良品", "scrap": "报废", "oee": "当班OEE", "unknown": "未知"},
}


def _pct(value: float | None, unknown: str) -> str:
    return unknown if value is None else f"{value * 100:.1f}%"


def _num(value: float | None, unknown: str) -> str:
    return unknown if value is None else f"{value:.0f}"


def render(snapshot: LiveSnapshot, lang: str = "en") -> str:
    """A compact text table per line: state, reason, product, good / scrap and OEE so far of each station."""
    if lang not in _LABELS:
        raise ValueError(f"lang must be one of {', '.join(_LABELS)}, not {lang!r}")
    t = _LABELS[lang]
    out: list[str] = []
    for ln in snapshot.lines:
        shift = f"{t['shift']} {ln.shift}" if ln.shift else t["none"]
        head = f"{t['line']} {ln.line} ({shift}): {t['output']} {ln.output}"
        if ln.hourly:
            hour = ln.hourly[-1]
            head += f", {t['plan']} {_num(hour.plan_units, t['unknown'])} / {t['actual']} {hour.actual_units}"
        head += f", {t['forecast']} {_num(ln.forecast_units, t['unknown'])}"
        out.append(head)
        rows = [(t["station"], t["state"], t["reason"], t["product"], t["good"], t["scrap"], t["oee"])]
        rows += [(s.station.rsplit("/", 1)[-1], s.state or "-", s.reason or "-", s.product or "-", str(s.good),
                  str(s.scrap), _pct(s.oee, t["unknown"])) for s in ln.stations]
        widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            out.append("  " + "  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(out)


def _width(text: str) -> int:
    """Display width: CJK characters take two columns."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


__all__ = ["HourPlan", "LineLive", "LiveSnapshot", "StationLive", "StationState", "build_line", "render"]
