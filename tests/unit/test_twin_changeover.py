"""Changeovers, run-up, matrix and mix-adjusted reduction (KPI.md 5): hand-computed cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from twinline.twin.changeover import changeover_matrix, changeover_reduction, changeovers
from twinline.twin.errors import InputError

pytestmark = pytest.mark.unit

T0 = datetime(2024, 3, 4, 6, 0, tzinfo=UTC)
TS = pl.Datetime("us", "UTC")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def events(rows: list[tuple[float, str, int, int]]) -> pl.DataFrame:
    """(ts s, product, good, scrap) rows."""
    return pl.DataFrame({"ts": [at(r[0]) for r in rows], "product": [r[1] for r in rows],
                         "good": [r[2] for r in rows], "scrap": [r[3] for r in rows], "rework": [0] * len(rows)},
                        schema={"ts": TS, "product": pl.String, "good": pl.Int64, "scrap": pl.Int64,
                                "rework": pl.Int64})


def states(rows: list[tuple[float, float, str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame({"start": [at(r[0]) for r in rows], "end": [at(r[1]) for r in rows],
                         "state": [r[2] for r in rows], "reason": [r[3] for r in rows],
                         "quality": [r[4] for r in rows]},
                        schema={"start": TS, "end": TS, "state": pl.String, "reason": pl.String, "quality": pl.String})


EVENTS = events([(0, "A", 1, 0), (10, "A", 1, 0), (20, "A", 1, 0), (90, "B", 0, 2),
                 (100, "B", 1, 0), (130, "B", 1, 0), (150, "B", 1, 0), (160, "B", 1, 0), (170, "B", 1, 0),
                 (180, "B", 1, 0), (300, "A", 1, 0), (310, "A", 1, 0)])
STATES = states([(0, 30, "PRD", "run", "good"), (30, 60, "SDT", "setup", "good"), (60, 200, "PRD", "run_up", "good"),
                 (200, 250, "SDT", "setup", "good"), (250, 260, "SDT", "setup", "bad"),
                 (260, 400, "PRD", "run", "good")])


def test_hand_computed_changeovers_with_run_up() -> None:
    # B ideal 10 s, window 2 units, 95 %: a window is at rate when u[i+2] − u[i] ≤ 2 × 10 / 0.95 = 21.05 s.
    # B units 100,130,150,160,170,180: windows from 100 (50 s), 130 (30 s), 150 (20 s: at rate) -> run-up 50 s.
    co = changeovers(EVENTS, STATES, {"A": 10.0, "B": 10.0}, runup_window_units=2)
    rows = co.to_dicts()
    assert [(r["from_product"], r["to_product"]) for r in rows] == [("A", "B"), ("B", "A")]
    ab, ba = rows
    assert (ab["start"], ab["end"]) == (at(20), at(100))  # last good A, first good B (scrap at 90 ignored)
    assert ab["changeover_s"] == 80.0 and ab["setup_s"] == 30.0
    assert ab["run_up_s"] == 50.0 and ab["total_s"] == 130.0 and ab["run_up_end"] == at(150)
    assert (ba["start"], ba["end"]) == (at(180), at(300))
    assert ba["changeover_s"] == 120.0 and ba["setup_s"] == 50.0  # bad-quality setup 250-260 not counted
    assert ba["run_up_s"] is None and ba["total_s"] is None  # only 2 units of A: no full window at rate


def test_run_up_zero_batched_units_and_unknown_cycle() -> None:
    ev = events([(0, "A", 1, 0), (100, "B", 3, 0), (105, "B", 1, 0), (200, "B", 1, 0)])
    co = changeovers(ev, states([]), {"A": 10.0, "B": 5.0}, runup_window_units=3)
    # first window u0..u3 = 100..105: 3 units in 5 s >= 0.95 / 5 s -> at rate immediately
    assert co["run_up_s"].to_list() == [0.0] and co["setup_s"].to_list() == [0.0]
    unknown = changeovers(ev, states([]), {"A": 10.0}, runup_window_units=3)
    assert unknown["run_up_s"].to_list() == [None] and unknown["changeover_s"].to_list() == [100.0]


def test_no_changeover_and_validation() -> None:
    assert changeovers(events([]), states([]), {}, runup_window_units=5).height == 0
    assert changeovers(events([(0, "A", 5, 0)]), states([]), {"A": 1.0}, runup_window_units=5).height == 0
    with pytest.raises(InputError):
        changeovers(EVENTS, STATES, {"A": 10.0}, runup_window_units=0)
    with pytest.raises(InputError):
        changeovers(EVENTS, STATES, {"A": -1.0}, runup_window_units=2)


def test_matrix() -> None:
    co = changeovers(EVENTS, STATES, {"A": 10.0, "B": 10.0}, runup_window_units=2)
    m = {(r["from_product"], r["to_product"]): r for r in changeover_matrix(co).to_dicts()}
    assert m[("A", "B")]["count"] == 1 and m[("A", "B")]["mean_total_s"] == 130.0
    assert m[("B", "A")]["mean_changeover_s"] == 120.0 and m[("B", "A")]["mean_total_s"] is None
    assert m[("B", "A")]["total_known"] == 0


def pairs(rows: list[tuple[str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame({"from_product": [r[0] for r in rows], "to_product": [r[1] for r in rows],
                         "changeover_s": [r[2] for r in rows], "total_s": [r[2] + 60.0 for r in rows]})


def test_mix_adjusted_reduction_hand_computed() -> None:
    base = pairs([("A", "B", 600), ("A", "B", 800), ("B", "A", 300), ("A", "C", 1000)])
    cur = pairs([("A", "B", 500), ("A", "B", 500), ("A", "B", 500), ("B", "A", 200), ("B", "C", 400)])
    r = changeover_reduction(base, cur)
    # weights = current counts (A>B 3, B>A 1): T_base = (3×700 + 300) / 4 = 600; T_cur = (3×500 + 200) / 4 = 425
    assert r.t_baseline_s == pytest.approx(600.0) and r.t_current_s == pytest.approx(425.0)
    assert r.reduction == pytest.approx(175 / 600)
    assert r.pairs == (("A", "B"), ("B", "A"))
    assert r.only_baseline == (("A", "C"),) and r.only_current == (("B", "C"),)
    with_run_up = changeover_reduction(base, cur, measure="total_s")
    assert with_run_up.reduction == pytest.approx((660 - 485) / 660)


def test_reduction_without_common_pairs_is_none() -> None:
    r = changeover_reduction(pairs([("A", "B", 600)]), pairs([("B", "A", 300)]))
    assert r.reduction is None and r.pairs == ()
    assert changeover_reduction(pairs([]), pairs([])).reduction is None
