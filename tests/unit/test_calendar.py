"""Shift calendar: shift instances, workdays, holidays, planned downtime, DST (Europe/Berlin) and Asia/Shanghai."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from twinline.uns.calendar import Calendar, DowntimeWindow, PlannedDowntime, Shift, ShiftWindow
from twinline.uns.errors import ContractError
from twinline.uns.plant import parse_plant

pytestmark = pytest.mark.unit

SH = ZoneInfo("Asia/Shanghai")
BER = ZoneInfo("Europe/Berlin")
ALL_WEEK = frozenset(range(7))
MON_FRI = frozenset(range(5))
PHOTO = "cq/fab/fab12/litho"
ETCH = "cq/fab/fab12/etch"


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=SH)


def ber(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=BER)


def two_shifts(tz: ZoneInfo = SH, workdays: frozenset[int] = ALL_WEEK, holidays: frozenset[date] = frozenset(),
               downtime: tuple[PlannedDowntime, ...] = ()) -> Calendar:
    return Calendar(tz, (Shift("A", time(8), 12), Shift("B", time(20), 12)), workdays, holidays, downtime)


def test_shift_windows_cross_midnight_and_are_not_clipped() -> None:
    cal = two_shifts()
    windows = cal.shift_windows(sh(2026, 6, 10, 12), sh(2026, 6, 11, 9))
    assert [(w.name, w.day) for w in windows] == [("A", date(2026, 6, 10)), ("B", date(2026, 6, 10)),
                                                  ("A", date(2026, 6, 11))]
    night = windows[1]
    assert night.start == sh(2026, 6, 10, 20) and night.end == sh(2026, 6, 11, 8)
    assert windows[0].start == sh(2026, 6, 10, 8)  # whole shift, not clipped at 12:00
    assert all(w.start.tzinfo is UTC and w.end.tzinfo is UTC for w in windows)
    assert windows[0].start == datetime(2026, 6, 10, 0, tzinfo=UTC)


def test_shift_windows_includes_previous_nights_shift() -> None:
    windows = two_shifts().shift_windows(sh(2026, 6, 11, 2), sh(2026, 6, 11, 3))
    assert windows == [ShiftWindow("B", date(2026, 6, 10), sh(2026, 6, 10, 20).astimezone(UTC),
                                   sh(2026, 6, 11, 8).astimezone(UTC))]


def test_holiday_drops_shifts_starting_that_day_only() -> None:
    holiday = date(2026, 10, 1)
    cal = two_shifts(holidays=frozenset({holiday}))
    windows = cal.shift_windows(sh(2026, 9, 30, 0), sh(2026, 10, 3, 0))
    days = [(w.name, w.day) for w in windows]
    assert ("A", holiday) not in days and ("B", holiday) not in days
    # the night shift of 30 Sep runs into the holiday: it belongs to the day it starts
    assert ("B", date(2026, 9, 30)) in days
    eve = next(w for w in windows if (w.name, w.day) == ("B", date(2026, 9, 30)))
    assert cal.shift_at(sh(2026, 10, 1, 7, 59)) == eve
    assert cal.shift_at(sh(2026, 10, 1, 8)) is None
    assert cal.shift_at(sh(2026, 10, 1, 23)) is None
    assert cal.shift_at(sh(2026, 10, 2, 8)) is not None


def test_workday_filter() -> None:
    cal = two_shifts(workdays=MON_FRI)
    assert date(2026, 6, 12).weekday() == 4  # Friday
    windows = cal.shift_windows(sh(2026, 6, 12, 0), sh(2026, 6, 15, 12))
    assert [(w.name, w.day.isoformat()) for w in windows] == [
        ("B", "2026-06-11"), ("A", "2026-06-12"), ("B", "2026-06-12"), ("A", "2026-06-15"),
    ]
    assert cal.shift_at(sh(2026, 6, 13, 7)) is not None  # Friday's night shift, on Saturday morning
    assert cal.shift_at(sh(2026, 6, 13, 9)) is None
    assert cal.shift_at(sh(2026, 6, 14, 21)) is None


def test_shift_at_boundaries() -> None:
    cal = two_shifts()
    at_start = cal.shift_at(sh(2026, 6, 10, 20))
    assert at_start is not None and at_start.name == "B"
    before = cal.shift_at(sh(2026, 6, 10, 19, 59, 59))
    assert before is not None and before.name == "A"
    gap = Calendar(SH, (Shift("D", time(8), 8),), ALL_WEEK, frozenset())
    assert gap.shift_at(sh(2026, 6, 10, 16)) is None


def test_naive_datetimes_are_rejected() -> None:
    cal = two_shifts()
    with pytest.raises(ContractError, match="naive"):
        cal.shift_windows(datetime(2026, 6, 10), datetime(2026, 6, 11))
    with pytest.raises(ContractError, match="naive"):
        cal.shift_at(datetime(2026, 6, 10))
    with pytest.raises(ContractError, match="naive"):
        cal.planned_downtime_windows(datetime(2026, 6, 10), sh(2026, 6, 11), PHOTO)


def test_daily_downtime_every_scheduled_day() -> None:
    meeting = PlannedDowntime("daily meeting", daily=time(8), minutes=15)
    cal = two_shifts(workdays=MON_FRI, downtime=(meeting,))
    windows = cal.planned_downtime_windows(sh(2026, 6, 12, 0), sh(2026, 6, 16, 0), PHOTO)  # Fri .. Mon
    assert windows == [
        DowntimeWindow(sh(2026, 6, 12, 8).astimezone(UTC), sh(2026, 6, 12, 8, 15).astimezone(UTC), "daily meeting"),
        DowntimeWindow(sh(2026, 6, 15, 8).astimezone(UTC), sh(2026, 6, 15, 8, 15).astimezone(UTC), "daily meeting"),
    ]
    start, end, name = windows[0]
    assert name == "daily meeting" and end - start == timedelta(minutes=15)


def test_daily_downtime_inside_a_night_shift_on_a_non_workday() -> None:
    # a 02:00 break on Saturday belongs to Friday's night shift, which is scheduled time
    brk = PlannedDowntime("night break", daily=time(2), minutes=30)
    cal = two_shifts(workdays=MON_FRI, downtime=(brk,))
    windows = cal.planned_downtime_windows(sh(2026, 6, 13, 0), sh(2026, 6, 15, 0), PHOTO)
    assert [w.start for w in windows] == [sh(2026, 6, 13, 2).astimezone(UTC)]


def test_daily_downtime_skips_holiday_and_gaps() -> None:
    meeting = PlannedDowntime("meeting", daily=time(7, 50), minutes=20)
    cal = Calendar(SH, (Shift("D", time(8), 8),), ALL_WEEK, frozenset({date(2026, 10, 1)}), (meeting,))
    windows = cal.planned_downtime_windows(sh(2026, 10, 1, 0), sh(2026, 10, 3, 0), PHOTO)
    # only the part inside the shift counts; the holiday has none
    assert windows == [DowntimeWindow(sh(2026, 10, 2, 8).astimezone(UTC), sh(2026, 10, 2, 8, 10).astimezone(UTC),
                                      "meeting")]


def test_dated_downtime_station_filter_and_clipping() -> None:
    pm = PlannedDowntime("PM litho", start=sh(2026, 12, 10, 2).astimezone(UTC),
                         end=sh(2026, 12, 10, 6).astimezone(UTC), stations=(PHOTO,))
    cal = two_shifts(downtime=(pm,))
    assert cal.planned_downtime_windows(sh(2026, 12, 10), sh(2026, 12, 11), ETCH) == []
    full = cal.planned_downtime_windows(sh(2026, 12, 10), sh(2026, 12, 11), PHOTO)
    assert full == [DowntimeWindow(sh(2026, 12, 10, 2).astimezone(UTC), sh(2026, 12, 10, 6).astimezone(UTC),
                                   "PM litho")]
    clipped = cal.planned_downtime_windows(sh(2026, 12, 10, 3), sh(2026, 12, 10, 4), PHOTO)
    assert clipped == [DowntimeWindow(sh(2026, 12, 10, 3).astimezone(UTC), sh(2026, 12, 10, 4).astimezone(UTC),
                                      "PM litho")]
    assert cal.planned_downtime_windows(sh(2026, 12, 11), sh(2026, 12, 12), PHOTO) == []


def test_dated_downtime_only_inside_scheduled_time() -> None:
    pm = PlannedDowntime("PM", start=sh(2026, 6, 12, 18).astimezone(UTC), end=sh(2026, 6, 13, 12).astimezone(UTC))
    cal = Calendar(SH, (Shift("D", time(8), 12),), MON_FRI, frozenset(), (pm,))  # Fri 08-20, weekend off
    windows = cal.planned_downtime_windows(sh(2026, 6, 12), sh(2026, 6, 14), PHOTO)
    assert windows == [DowntimeWindow(sh(2026, 6, 12, 18).astimezone(UTC), sh(2026, 6, 12, 20).astimezone(UTC),
                                      "PM")]


def test_overlapping_downtime_is_merged() -> None:
    meeting = PlannedDowntime("meeting", daily=time(8), minutes=30)
    pm = PlannedDowntime("PM", start=sh(2026, 6, 10, 8, 15).astimezone(UTC), end=sh(2026, 6, 10, 9).astimezone(UTC),
                         stations=(PHOTO,))
    touching = PlannedDowntime("clean", start=sh(2026, 6, 10, 9).astimezone(UTC),
                               end=sh(2026, 6, 10, 9, 10).astimezone(UTC))
    cal = two_shifts(downtime=(meeting, pm, touching))
    photo = cal.planned_downtime_windows(sh(2026, 6, 10, 6), sh(2026, 6, 10, 12), PHOTO)
    assert photo == [DowntimeWindow(sh(2026, 6, 10, 8).astimezone(UTC), sh(2026, 6, 10, 9, 10).astimezone(UTC),
                                    "meeting + PM + clean")]
    etch = cal.planned_downtime_windows(sh(2026, 6, 10, 6), sh(2026, 6, 10, 12), ETCH)
    assert [(w.start, w.end) for w in etch] == [
        (sh(2026, 6, 10, 8).astimezone(UTC), sh(2026, 6, 10, 8, 30).astimezone(UTC)),
        (sh(2026, 6, 10, 9).astimezone(UTC), sh(2026, 6, 10, 9, 10).astimezone(UTC)),
    ]


def test_downtime_at_shift_change_spans_both_shifts() -> None:
    handover = PlannedDowntime("handover", daily=time(19, 50), minutes=20)
    cal = two_shifts(downtime=(handover,))
    windows = cal.planned_downtime_windows(sh(2026, 6, 10), sh(2026, 6, 11), PHOTO)
    assert windows == [DowntimeWindow(sh(2026, 6, 10, 19, 50).astimezone(UTC), sh(2026, 6, 10, 20, 10).astimezone(UTC),
                                      "handover")]


# --------------------------------------------------------------------------- DST (Europe/Berlin)

def three_shifts_berlin() -> Calendar:
    return Calendar(BER, (Shift("F", time(6), 8), Shift("S", time(14), 8), Shift("N", time(22), 8)),
                    ALL_WEEK, frozenset())


def test_dst_spring_forward_night_shift_is_one_hour_shorter() -> None:
    cal = three_shifts_berlin()
    windows = cal.shift_windows(ber(2026, 3, 28, 12), ber(2026, 3, 29, 12))
    night = next(w for w in windows if w.name == "N" and w.day == date(2026, 3, 28))
    assert night.start == datetime(2026, 3, 28, 21, tzinfo=UTC)   # 22:00 CET
    assert night.end == datetime(2026, 3, 29, 4, tzinfo=UTC)      # 06:00 CEST
    assert night.end - night.start == timedelta(hours=7)
    early = next(w for w in windows if w.name == "F" and w.day == date(2026, 3, 29))
    assert early.start == night.end  # no gap, no overlap at the changeover
    previous_early = next(w for w in windows if w.name == "F" and w.day == date(2026, 3, 28))
    assert previous_early.start == datetime(2026, 3, 28, 5, tzinfo=UTC)
    assert early.start == datetime(2026, 3, 29, 4, tzinfo=UTC)


def test_dst_fall_back_night_shift_is_one_hour_longer() -> None:
    cal = three_shifts_berlin()
    windows = cal.shift_windows(ber(2026, 10, 24, 23), ber(2026, 10, 25, 1))
    assert [w.name for w in windows] == ["N"]
    night = windows[0]
    assert night.day == date(2026, 10, 24)
    assert night.end - night.start == timedelta(hours=9)
    # the repeated hour 02:00-03:00 is inside the night shift both times
    first_two = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)   # 02:30 CEST
    second_two = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert cal.shift_at(first_two) == night and cal.shift_at(second_two) == night


def test_dst_shifts_tile_the_week_without_gaps() -> None:
    cal = three_shifts_berlin()
    for lo, hi in ((ber(2026, 3, 25), ber(2026, 4, 2)), (ber(2026, 10, 21), ber(2026, 10, 29))):
        windows = cal.shift_windows(lo, hi)
        for a, b in pairwise(windows):
            assert a.end == b.start


def test_dst_daily_downtime_keeps_local_wall_time() -> None:
    meeting = PlannedDowntime("meeting", daily=time(6), minutes=10)
    cal = Calendar(BER, three_shifts_berlin().shifts, ALL_WEEK, frozenset(), (meeting,))
    windows = cal.planned_downtime_windows(ber(2026, 3, 28), ber(2026, 3, 30), PHOTO)
    assert [w.start for w in windows] == [datetime(2026, 3, 28, 5, tzinfo=UTC), datetime(2026, 3, 29, 4, tzinfo=UTC)]
    assert all(w.start.astimezone(BER).time() == time(6) for w in windows)


# --------------------------------------------------------------------------- from the plant file

PLANT = """
version: 1
site: {id: cq, name: CQ, timezone: Asia/Shanghai, epoch: "2026-01-01"}
products: [{sku: W1}]
calendar:
  shifts:
    - {name: A, start: "08:00", hours: 12}
    - {name: B, start: "20:00", hours: 12}
  workdays: [mon, tue, wed, thu, fri]
  holidays: ["2026-10-01"]
  planned_downtime:
    - {name: "daily meeting", daily: "08:00", minutes: 15}
    - {name: "PM litho", start: "2026-12-10T02:00:00+08:00", end: "2026-12-10T06:00:00+08:00",
       stations: [cq/fab/fab12/litho]}
areas:
  - id: fab
    lines:
      - id: fab12
        type: wafer
        stations:
          - {id: litho, protocol: opcua, ideal_cycle_s: {W1: 90}}
          - {id: etch, protocol: opcua, ideal_cycle_s: {W1: 80}}
"""


def test_calendar_from_plant_file() -> None:
    plant = parse_plant(PLANT)
    cal = plant.line("cq/fab/fab12").calendar
    assert cal.timezone == SH and cal.workdays == MON_FRI and cal.holidays == frozenset({date(2026, 10, 1)})
    day = (sh(2026, 12, 10), sh(2026, 12, 11))  # a Thursday
    litho = cal.planned_downtime_windows(*day, PHOTO)
    etch = cal.planned_downtime_windows(*day, ETCH)
    assert [w.name for w in litho] == ["PM litho", "daily meeting"]
    assert [w.name for w in etch] == ["daily meeting"]
    assert litho[0].start == datetime(2026, 12, 9, 18, tzinfo=UTC)
