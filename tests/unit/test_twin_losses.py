"""Loss tree, top reasons and bottleneck (KPI.md 2 time model): hand-computed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from twinline.twin.iso22400 import Counts, ProductCounts, kpis
from twinline.twin.losses import StationWaiting, bottleneck, loss_tree, top_reasons, waiting_seconds
from twinline.twin.timemodel import TimeElements, seconds_by_reason

pytestmark = pytest.mark.unit

ELEMENTS = TimeElements(period_s=28_800, outside_s=3_600, pdot_s=1_800, aust_s=1_200, apt_s=18_000, adet_s=2_400,
                        adot_s=1_800, nodata_s=0)
COUNTS = Counts({"A": ProductCounts(pq=8_000, gq=7_600, sq=240, rq=160)})
T0 = datetime(2024, 3, 4, 6, 0, tzinfo=UTC)


def test_loss_tree_hand_computed() -> None:
    t = loss_tree(ELEMENTS, COUNTS, {"A": 2.0})
    assert t.pbt_min == 390.0
    assert t.availability.minutes == 90.0 and t.availability.oee_points == pytest.approx(5_400 / 234)
    assert (t.setup.minutes, t.downtime.minutes, t.idle.minutes) == (20.0, 40.0, 30.0)
    assert t.performance.minutes == pytest.approx(2_000 / 60)  # 18 000 − 2 × 8 000
    assert t.quality.minutes == pytest.approx(800 / 60)  # 2 × (8 000 − 7 600)
    assert t.valuable.minutes == pytest.approx(15_200 / 60)
    points = [t.availability.oee_points, t.performance.oee_points, t.quality.oee_points, t.valuable.oee_points]
    assert sum(p for p in points if p is not None) == pytest.approx(100.0)
    oee = kpis(ELEMENTS, COUNTS, {"A": 2.0}, None, 0, None).oee
    assert oee is not None and t.valuable.oee_points == pytest.approx(oee * 100)  # single product: exact


def test_loss_tree_unknowns() -> None:
    t = loss_tree(ELEMENTS, COUNTS, {})
    assert t.performance.minutes is None and t.quality.minutes is None and t.missing_ideal_cycle == ("A",)
    empty = loss_tree(TimeElements(60, 60, 0, 0, 0, 0, 0, 0), Counts(), {})
    assert empty.availability.minutes == 0.0 and empty.availability.oee_points is None


def frame(rows: list[tuple[float, float, str, str]]) -> pl.DataFrame:
    at = [T0 + timedelta(minutes=m) for m in range(200)]
    return pl.DataFrame({"start": [at[int(r[0])] for r in rows], "end": [at[int(r[1])] for r in rows],
                         "state": [r[2] for r in rows], "reason": [r[3] for r in rows],
                         "quality": ["good"] * len(rows)})


def test_top_reasons_and_waiting() -> None:
    s = frame([(0, 50, "PRD", "run"), (50, 60, "SBY", "starved"), (60, 90, "UDT", "failure"),
               (90, 95, "SBY", "blocked"), (95, 110, "SDT", "setup"), (110, 120, "SBY", "starved")])
    window = [(T0, T0 + timedelta(minutes=120))]
    by_reason = seconds_by_reason(s, T0, T0 + timedelta(minutes=120), window)
    top = top_reasons(by_reason, limit=2)
    assert top.select("state", "reason", "seconds").rows() == [("UDT", "failure", 1800.0), ("SBY", "starved", 1200.0)]
    assert waiting_seconds(by_reason) == (1200.0, 300.0)
    both = pl.concat([by_reason.with_columns(pl.lit("S1").alias("station")),
                      by_reason.with_columns(pl.lit("S2").alias("station"))])
    per_station = top_reasons(both, limit=1)
    assert per_station.select("station", "reason").rows() == [("S1", "failure"), ("S2", "failure")]


def station(apt: float, starved: float, blocked: float) -> StationWaiting:
    return StationWaiting(TimeElements(1_000, 0, 0, 0, apt, 0, 1_000 - apt, 0), starved, blocked)


def test_bottleneck_hand_computed() -> None:
    stations = {"S1": station(700, 0, 250), "S2": station(900, 50, 0), "S3": station(600, 350, 0)}
    b = bottleneck(["S1", "S2", "S3"], stations)
    assert b.station == "S2"  # waiting shares 0.25, 0.05, 0.35
    assert [s.waiting_share for s in b.shares] == [0.25, 0.05, 0.35]
    assert b.arrows == ("down", "up") and b.arrow_candidates == ("S2",)
    tie = bottleneck(["S1", "S2"], {"S1": station(700, 0, 0), "S2": station(900, 0, 0)})
    assert tie.station == "S2"  # equal waiting share: higher utilization wins
    assert bottleneck(["S1"], {"S1": StationWaiting(TimeElements(10, 10, 0, 0, 0, 0, 0, 0), 0, 0)}).station is None
