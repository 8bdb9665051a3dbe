"""Line OEE and line yield (KPI.md 4)."""

from __future__ import annotations

import pytest

from twinline.twin.errors import InputError
from twinline.twin.iso22400 import Counts, ProductCounts
from twinline.twin.lines import line_ideal_cycle_s, line_oee, line_yield

pytestmark = pytest.mark.unit

ROUTES = {"A": [30.0, 45.0, 40.0], "B": [20.0, None, 25.0], "C": [10.0, 12.0]}


def test_line_pri_is_the_bottleneck_cycle() -> None:
    assert line_ideal_cycle_s([30.0, 45.0, 40.0]) == 45.0
    assert line_ideal_cycle_s([20.0, None]) is None
    assert line_ideal_cycle_s([]) is None
    with pytest.raises(InputError):
        line_ideal_cycle_s([0.0])


def test_line_oee_hand_computed() -> None:
    r = line_oee({"A": 500, "C": 100, "B": 0}, ROUTES, line_pbt_s=27_000.0)
    assert r.oee == pytest.approx((45 * 500 + 12 * 100) / 27_000)  # 0.877777...
    assert r.line_pri_s["A"] == 45.0 and r.line_pri_s["B"] is None and r.missing == ()


def test_line_oee_unknown_and_empty() -> None:
    r = line_oee({"A": 500, "B": 10}, ROUTES, line_pbt_s=27_000.0)
    assert r.oee is None and r.missing == ("B",)
    assert line_oee({"A": 0}, ROUTES, line_pbt_s=0.0).oee is None
    assert line_oee({"A": 0}, ROUTES, line_pbt_s=3_600.0).oee == 0.0


def test_line_yield_is_product_of_station_yields() -> None:
    counts = {"S1": Counts({"A": ProductCounts(1_000, 980, 20), "B": ProductCounts(100, 50, 50)}),
              "S2": Counts({"A": ProductCounts(980, 960, 20)}),
              "S3": Counts({"A": ProductCounts(960, 950, 10)})}
    r = line_yield(["S1", "S2", "S3"], counts, sku="A")
    assert r.line_yield == pytest.approx(0.98 * 960 / 980 * 950 / 960)  # 0.95
    assert [s for s, _ in r.station_yields] == ["S1", "S2", "S3"]
    all_products = line_yield(["S1", "S2", "S3"], counts)
    assert all_products.line_yield == pytest.approx(1_030 / 1_100 * 960 / 980 * 950 / 960)
    assert line_yield(["S1", "S2"], counts, sku="B").line_yield is None  # S2 made no B
    assert line_yield([], counts).line_yield is None
    with pytest.raises(InputError):
        line_yield(["S9"], counts)
