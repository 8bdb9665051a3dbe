"""Shift calendar and planned downtime of a site or line, and the plant-file reader they share.

A calendar says when a station is scheduled (its shifts on workdays that are not holidays) and which
parts of that scheduled time are planned downtime (KPI.md 1: outside the calendar is outside POT,
planned-downtime windows are PDOT). Shifts are local wall-clock times: a shift belongs to the day it
starts, may cross midnight, and ends at its wall-clock end, so on a DST night a 12 h night shift lasts
11 h or 13 h and never overlaps the next shift. Wall times that do not exist (spring gap) or occur
twice (autumn) resolve with zoneinfo's ``fold=0`` rule. Everything here is pure: callers pass the
period, nothing reads a clock.

The `_Reader` at the bottom turns YAML nodes into typed values and every failure into a
PlantModelError naming the YAML path; plant.py uses it too.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any, NamedTuple, NoReturn
from zoneinfo import ZoneInfo

from twinline.uns.errors import ContractError, PlantModelError
from twinline.uns.topics import AssetPath, check_name

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK_MIN = 7 * 24 * 60


@dataclass(frozen=True, slots=True)
class Shift:
    """A shift pattern: starts at local wall time `start` and lasts `hours` of wall-clock time."""

    name: str
    start: time
    hours: float


@dataclass(frozen=True, slots=True)
class ShiftWindow:
    """One shift instance; `day` is the local date it starts on, `start` / `end` are UTC."""

    name: str
    day: date
    start: datetime
    end: datetime


class DowntimeWindow(NamedTuple):
    """A merged planned-downtime window in UTC; `name` joins the names of the entries merged into it."""

    start: datetime
    end: datetime
    name: str


@dataclass(frozen=True, slots=True)
class PlannedDowntime:
    """Either a daily window (`daily` local time, `minutes` long) or a dated one (`start` .. `end`, UTC).

    `stations` holds station paths; None means every station in the calendar's scope.
    """

    name: str
    daily: time | None = None
    minutes: float = 0.0
    start: datetime | None = None
    end: datetime | None = None
    stations: tuple[str, ...] | None = None

    def applies_to(self, station_path: str) -> bool:
        return self.stations is None or station_path in self.stations


@dataclass(frozen=True, slots=True)
class Calendar:
    """Shifts on workdays (0 = Monday) minus holidays, with planned downtime, in one time zone."""

    timezone: ZoneInfo
    shifts: tuple[Shift, ...]
    workdays: frozenset[int]
    holidays: frozenset[date]
    planned_downtime: tuple[PlannedDowntime, ...] = ()

    def shift_windows(self, start: datetime, end: datetime) -> list[ShiftWindow]:
        """Every shift instance overlapping [start, end), whole (not clipped), ordered by start."""
        lo, hi = _aware(start, "start"), _aware(end, "end")
        first = lo.astimezone(self.timezone).date() - timedelta(days=2)
        last = hi.astimezone(self.timezone).date()
        found: list[ShiftWindow] = []
        for day in _days(first, last):
            if day.weekday() not in self.workdays or day in self.holidays:
                continue
            for shift in self.shifts:
                w_start = self._utc(datetime.combine(day, shift.start))
                w_end = self._utc(datetime.combine(day, shift.start) + timedelta(hours=shift.hours))
                if w_end > lo and w_start < hi:
                    found.append(ShiftWindow(shift.name, day, w_start, w_end))
        found.sort(key=lambda w: w.start)
        return found

    def shift_at(self, ts: datetime) -> ShiftWindow | None:
        """The shift instance that contains `ts` (start inclusive, end exclusive), or None."""
        moment = _aware(ts, "ts")
        for window in self.shift_windows(moment, moment + timedelta(microseconds=1)):
            if window.start <= moment < window.end:
                return window
        return None

    def planned_downtime_windows(self, start: datetime, end: datetime, station_path: str) -> list[DowntimeWindow]:
        """Planned downtime of one station inside scheduled shift time, clipped to [start, end), merged, UTC."""
        lo, hi = _aware(start, "start"), _aware(end, "end")
        scheduled = _merge((max(w.start, lo), min(w.end, hi), w.name) for w in self.shift_windows(lo, hi))
        raw: list[DowntimeWindow] = []
        for entry in self.planned_downtime:
            if entry.applies_to(station_path):
                for d_start, d_end in self._instances(entry, lo, hi):
                    raw.extend(_intersect(d_start, d_end, entry.name, scheduled))
        return _merge(raw)

    def _instances(self, entry: PlannedDowntime, lo: datetime, hi: datetime) -> Iterator[tuple[datetime, datetime]]:
        if entry.start is not None and entry.end is not None:
            yield entry.start, entry.end
            return
        if entry.daily is None:
            return
        first = lo.astimezone(self.timezone).date() - timedelta(days=1)
        for day in _days(first, hi.astimezone(self.timezone).date()):
            local = datetime.combine(day, entry.daily)
            yield self._utc(local), self._utc(local + timedelta(minutes=entry.minutes))

    def _utc(self, wall: datetime) -> datetime:
        return wall.replace(tzinfo=self.timezone).astimezone(UTC)


def _aware(ts: datetime, field: str) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ContractError(field, "naive datetime (no time zone)")
    return ts.astimezone(UTC)


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _intersect(start: datetime, end: datetime, name: str, windows: list[DowntimeWindow]) -> Iterator[DowntimeWindow]:
    for w in windows:
        lo, hi = max(start, w.start), min(end, w.end)
        if lo < hi:
            yield DowntimeWindow(lo, hi, name)


def _merge(windows: Iterable[DowntimeWindow | tuple[datetime, datetime, str]]) -> list[DowntimeWindow]:
    """Sort and merge overlapping or touching windows; names are kept once each, in order."""
    merged: list[DowntimeWindow] = []
    for start, end, name in sorted((w for w in windows if w[0] < w[1]), key=lambda w: (w[0], w[1])):
        if merged and start <= merged[-1].end:
            last = merged[-1]
            names = last.name if name in last.name.split(" + ") else f"{last.name} + {name}"
            merged[-1] = DowntimeWindow(last.start, max(last.end, end), names)
        else:
            merged.append(DowntimeWindow(start, end, name))
    return merged


# --------------------------------------------------------------------------- plant-file reading

_MISSING: Any = object()


def sub(field: str, key: str | int) -> str:
    """Child path: `a.b` for a key, `a[3]` for an index."""
    if isinstance(key, int):
        return f"{field}[{key}]"
    return f"{field}.{key}" if field else key


class _Reader:
    """Typed access to YAML nodes of one plant file; failures are PlantModelError(field, reason, source)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field: str, reason: str) -> NoReturn:
        raise PlantModelError(field, reason, self.source)

    def mapping(self, value: Any, field: str, allowed: Collection[str],
                required: Collection[str] = ()) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(field, f"expected a mapping (key: value), got {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                self.fail(field, f"key {key!r} is not text")
            if key not in allowed:
                self.fail(sub(field, key), f"unknown key {key!r} (allowed: {', '.join(allowed)})")
        for key in required:
            if key not in value or value[key] is None:
                self.fail(sub(field, key), "missing (required)")
        return dict(value)

    def free_mapping(self, value: Any, field: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(field, f"expected a mapping (key: value), got {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                self.fail(field, f"key {key!r} is not text")
        return dict(value)

    def seq(self, value: Any, field: str, *, empty_ok: bool = True) -> list[Any]:
        if value is None:
            value = []
        if not isinstance(value, list):
            self.fail(field, f"expected a list, got {_kind(value)}")
        if not value and not empty_ok:
            self.fail(field, "must not be empty")
        return value

    def text(self, value: Any, field: str) -> str:
        if not isinstance(value, str):
            self.fail(field, f"expected text, got {_kind(value)}")
        if not value.strip():
            self.fail(field, "must not be empty")
        return value

    def name(self, value: Any, field: str) -> str:
        text = self.text(value, field)
        try:
            return check_name(text, field)
        except ContractError as exc:
            self.fail(field, exc.reason)

    def boolean(self, value: Any, field: str) -> bool:
        if not isinstance(value, bool):
            self.fail(field, f"expected true or false, got {_kind(value)}")
        return value

    def number(self, value: Any, field: str, *, minimum: float | None = None, exclusive: bool = False,
               maximum: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(field, f"expected a number, got {_kind(value)}")
        number = float(value)
        if not math.isfinite(number):
            self.fail(field, "must be a finite number")
        if minimum is not None and (number <= minimum if exclusive else number < minimum):
            self.fail(field, f"must be {'greater than' if exclusive else 'at least'} {minimum:g}, got {number:g}")
        if maximum is not None and number > maximum:
            self.fail(field, f"must be at most {maximum:g}, got {number:g}")
        return number

    def integer(self, value: Any, field: str, *, minimum: int, maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(field, f"expected a whole number, got {_kind(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            self.fail(field, f"must be {bound}, got {value}")
        return value

    def clock(self, value: Any, field: str) -> time:
        if isinstance(value, int) and not isinstance(value, bool):
            self.fail(field, f"write times in quotes, e.g. \"20:00\" (unquoted, YAML read {value // 60}:"
                             f"{value % 60:02d} as the number {value})")
        text = self.text(value, field)
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) == 2 for p in parts):
            self.fail(field, f"{text!r} is not a time of day HH:MM")
        hour, minute, second = (int(p) for p in [*parts, "00"][:3])
        if hour > 23 or minute > 59 or second > 59:
            self.fail(field, f"{text!r} is not a time of day (hours 00-23, minutes 00-59)")
        return time(hour, minute, second)

    def day(self, value: Any, field: str) -> date:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        text = self.text(value, field)
        try:
            return date.fromisoformat(text)
        except ValueError:
            self.fail(field, f"{text!r} is not a date YYYY-MM-DD")

    def instant(self, value: Any, field: str) -> datetime:
        if isinstance(value, datetime):
            moment = value
        else:
            text = self.text(value, field)
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                self.fail(field, f"{text!r} is not an ISO 8601 date-time like 2026-12-10T02:00:00+08:00")
        if moment.tzinfo is None or moment.utcoffset() is None:
            self.fail(field, "date-time has no UTC offset (naive); write it like 2026-12-10T02:00:00+08:00")
        return moment.astimezone(UTC)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean; quote it if you mean text)"
    if isinstance(value, str):
        return f"{value!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# --------------------------------------------------------------------------- calendar section

_CALENDAR_KEYS = ("shifts", "workdays", "holidays", "planned_downtime")
_SHIFT_KEYS = ("name", "start", "hours")
_DOWNTIME_KEYS = ("name", "daily", "minutes", "start", "end", "stations")


def parse_calendar(r: _Reader, node: Any, field: str, timezone: ZoneInfo) -> Calendar:
    """Read a `calendar:` section; station paths of planned downtime are checked by the caller."""
    data = r.mapping(node, field, _CALENDAR_KEYS, required=("shifts",))
    shifts = _shifts(r, data["shifts"], sub(field, "shifts"))
    workdays = _workdays(r, data["workdays"], sub(field, "workdays")) if "workdays" in data else frozenset(range(7))
    holidays = frozenset(r.day(v, sub(sub(field, "holidays"), i))
                         for i, v in enumerate(r.seq(data.get("holidays"), sub(field, "holidays"))))
    _check_overlaps(r, shifts, workdays, sub(field, "shifts"))
    downtime = tuple(_downtime(r, v, sub(sub(field, "planned_downtime"), i))
                     for i, v in enumerate(r.seq(data.get("planned_downtime"), sub(field, "planned_downtime"))))
    return Calendar(timezone, shifts, workdays, holidays, downtime)


def _shifts(r: _Reader, node: Any, field: str) -> tuple[Shift, ...]:
    shifts: list[Shift] = []
    for i, item in enumerate(r.seq(node, field, empty_ok=False)):
        where = sub(field, i)
        data = r.mapping(item, where, _SHIFT_KEYS, required=_SHIFT_KEYS)
        name = r.name(data["name"], sub(where, "name"))
        if any(s.name == name for s in shifts):
            r.fail(sub(where, "name"), f"duplicate shift name {name!r}")
        start = r.clock(data["start"], sub(where, "start"))
        hours = r.number(data["hours"], sub(where, "hours"), minimum=0.0, exclusive=True, maximum=24.0)
        shifts.append(Shift(name, start, hours))
    return tuple(shifts)


def _workdays(r: _Reader, node: Any, field: str) -> frozenset[int]:
    days: set[int] = set()
    for i, item in enumerate(r.seq(node, field, empty_ok=False)):
        text = item.lower() if isinstance(item, str) else item
        if text not in WEEKDAYS:
            r.fail(sub(field, i), f"{item!r} is not a weekday (one of {', '.join(WEEKDAYS)})")
        days.add(WEEKDAYS.index(text))
    return frozenset(days)


def _check_overlaps(r: _Reader, shifts: tuple[Shift, ...], workdays: frozenset[int], field: str) -> None:
    """Lay the shifts over one week (plus the wrap into next Monday) and look for overlaps."""
    spans: list[tuple[float, float, int, int]] = []
    for wd in sorted(workdays):
        for index, shift in enumerate(shifts):
            begin = wd * 1440 + shift.start.hour * 60 + shift.start.minute + shift.start.second / 60
            for offset in (0, _WEEK_MIN):
                spans.append((begin + offset, begin + offset + shift.hours * 60, index, wd))
    spans.sort()
    for (_, a_end, a_idx, _), (b_start, _, b_idx, b_wd) in pairwise(spans):
        if b_start < a_end:
            first, second = sorted((a_idx, b_idx))
            r.fail(sub(field, second), f"shift {shifts[second].name!r} overlaps shift {shifts[first].name!r} "
                                       f"on {WEEKDAYS[b_wd]} (shifts of one workday must not overlap)")


def _downtime(r: _Reader, node: Any, field: str) -> PlannedDowntime:
    data = r.mapping(node, field, _DOWNTIME_KEYS, required=("name",))
    name = r.text(data["name"], sub(field, "name"))
    stations = None
    if "stations" in data:
        paths = []
        for i, item in enumerate(r.seq(data["stations"], sub(field, "stations"), empty_ok=False)):
            where = sub(sub(field, "stations"), i)
            try:
                path = AssetPath.parse(r.text(item, where), where)
            except ContractError as exc:
                r.fail(where, exc.reason)
            if not path.station:
                r.fail(where, f"{item!r} is a line; name stations as site/area/line/station")
            paths.append(str(path))
        stations = tuple(paths)
    if "daily" in data:
        if "start" in data or "end" in data:
            r.fail(field, "give either daily + minutes or start + end, not both")
        if "minutes" not in data:
            r.fail(sub(field, "minutes"), "missing (required with daily)")
        daily = r.clock(data["daily"], sub(field, "daily"))
        minutes = r.number(data["minutes"], sub(field, "minutes"), minimum=0.0, exclusive=True, maximum=1440.0)
        return PlannedDowntime(name, daily=daily, minutes=minutes, stations=stations)
    if "minutes" in data:
        r.fail(sub(field, "minutes"), "minutes goes with daily; a dated window uses start + end")
    for key in ("start", "end"):
        if key not in data:
            r.fail(sub(field, key), "missing (a planned downtime needs daily + minutes or start + end)")
    start = r.instant(data["start"], sub(field, "start"))
    end = r.instant(data["end"], sub(field, "end"))
    if end <= start:
        r.fail(sub(field, "end"), f"end {end.isoformat()} is not after start {start.isoformat()}")
    return PlannedDowntime(name, start=start, end=end, stations=stations)


__all__ = ["WEEKDAYS", "Calendar", "DowntimeWindow", "PlannedDowntime", "Shift", "ShiftWindow", "parse_calendar"]
