"""Batch engine (many stations x many periods in one pass) equals the single-period functions (KPI.md 1-3)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twinline.twin._intervals import StationStates
from twinline.twin.e10 import e10_times, e10_times_by_pair, e10_times_many
from twinline.twin.episodes import (
    downtime_events,
    downtime_events_many,
    failure_counts_many,
    failure_episodes,
    failure_episodes_many,
)
from twinline.twin.errors import InputError
from twinline.twin.timemodel import (
    classify_many,
    elements_by_pair,
    seconds_by_reason,
    seconds_by_reason_many,
    time_elements,
    time_elements_many,
)

pytestmark = pytest.mark.unit

T0 = datetime(2024, 3, 4, 6, 0, tzinfo=UTC)
SCHEMA: dict[str, pl.DataType] = {"station": pl.String(), "start": pl.Datetime("us", "UTC"),
                                  "end": pl.Datetime("us", "UTC"), "state": pl.String(), "reason": pl.String(),
                                  "quality": pl.String()}
CHOICES = [("PRD", "run"), ("SBY", "starved"), ("SBY", "blocked"), ("ENG", "engineering"), ("SDT", "setup"),
           ("SDT", "preventive_maintenance"), ("UDT", "failure"), ("UDT", "repair"), ("UDT", "maintenance_delay"),
           ("UDT", "minor_stop"), ("NST", "non_scheduled")]
QUALS = ["good", "good", "good", "uncertain", "bad", "nodata"]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def frame(rows: Sequence[tuple[str, float, float, str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame([(s, at(a), at(b), state, reason, q) for s, a, b, state, reason, q in rows],
                        schema=SCHEMA, orient="row")


def one(states: pl.DataFrame, station: str) -> pl.DataFrame:
    return states.filter(pl.col("station") == station).drop("station")


# ---- hand-computed ----------------------------------------------------------------------------------------

TWO = frame([
    ("a", 0, 30, "PRD", "run", "good"), ("a", 30, 40, "UDT", "failure", "good"), ("a", 40, 60, "PRD", "run", "good"),
    ("b", 10, 20, "SDT", "setup", "good"), ("b", 20, 60, "SBY", "starved", "good"),
])


def test_two_stations_two_periods_by_hand() -> None:
    periods = [(at(0), at(60)), (at(0), at(30))]
    sched = {"a": [(at(0), at(60))], "b": [(at(0), at(60))]}
    out = elements_by_pair(time_elements_many(TWO, periods, sched, {"b": [(at(50), at(60))]}))
    m = 60.0
    assert (out[(0, "a")].apt_s, out[(0, "a")].adet_s) == (50 * m, 10 * m)
    assert (out[(0, "b")].nodata_s, out[(0, "b")].aust_s, out[(0, "b")].adot_s, out[(0, "b")].pdot_s) == (
        10 * m, 10 * m, 30 * m, 10 * m)
    assert (out[(1, "a")].apt_s, out[(1, "b")].adot_s) == (30 * m, 10 * m)
    fails = failure_counts_many(TWO, periods, ["a", "b"])
    assert fails.filter(pl.col("station") == "a")["failures"].to_list() == [1, 0]  # it starts at 30, after [0, 30)
    assert fails.filter(pl.col("station") == "a")["repair_s"].to_list() == [600.0, 0.0]
    events = downtime_events_many(TWO, periods, ["a", "b"])
    assert events.sort("period", "station")["events"].to_list() == [1, 1, 0, 1]


def test_pairs_pick_some_and_station_without_states() -> None:
    sched = {"a": [(at(0), at(60))], "c": [(at(0), at(30))]}
    out = time_elements_many(TWO, [(at(0), at(60)), (at(30), at(60))], sched, pairs=[(1, "c"), (0, "a")])
    assert out.select("period", "station").rows() == [(1, "c"), (0, "a")]
    c = elements_by_pair(out)[(1, "c")]
    assert (c.outside_s, c.nodata_s) == (1800.0, 0.0)


def test_batch_errors() -> None:
    with pytest.raises(InputError) as err:
        time_elements_many(TWO, [(at(0), at(60))], {"a": []}, pairs=[(0, "zz")])
    assert err.value.field == "pairs"
    with pytest.raises(InputError, match="station") as err:
        time_elements_many(TWO.drop("station"), [(at(0), at(60))], {"a": []})
    assert err.value.field == "states"
    overlapping = frame([("a", 0, 30, "PRD", "run", "good"), ("a", 20, 40, "PRD", "run", "good")])
    with pytest.raises(InputError, match="overlap"):
        e10_times_many(overlapping, [(at(0), at(60))], ["a"])
    # the same intervals on two different stations do not overlap
    two = frame([("a", 0, 30, "PRD", "run", "good"), ("b", 20, 40, "PRD", "run", "good")])
    assert e10_times_many(two, [(at(0), at(60))], ["a", "b"])["prd_s"].to_list() == [1800.0, 1200.0]
    with pytest.raises(InputError):
        e10_times_many(TWO, [(at(60), at(0))], ["a"])
    with pytest.raises(InputError, match="twice"):
        StationStates.of(TWO, ["a", "a"])


def test_prepared_states_are_reused_and_rekeyed() -> None:
    prepared = StationStates.of(TWO, ["a", "b"])
    assert StationStates.of(prepared, ["a", "b"]) is prepared
    swapped = StationStates.of(prepared, ["b", "a"])
    assert swapped.frame.filter(pl.col("g") == 0)["station"].unique().to_list() == ["b"]
    periods = [(at(0), at(60))]
    assert (e10_times_many(prepared, periods, ["a", "b"]).sort("station").rows()
            == e10_times_many(TWO, periods, ["b", "a"]).sort("station").rows())


# ---- hypothesis: the batch equals the single-period functions -----------------------------------------------

station_rows = st.lists(st.tuples(st.integers(0, 5), st.integers(1, 40), st.sampled_from(CHOICES),
                                  st.sampled_from(QUALS)), max_size=15)
window_specs = st.lists(st.tuples(st.integers(-20, 200), st.integers(0, 90)), max_size=3)
period_specs = st.lists(st.tuples(st.integers(-10, 150), st.integers(0, 120)), min_size=1, max_size=4)


def build(spec: dict[str, list[tuple[int, int, tuple[str, str], str]]]) -> pl.DataFrame:
    out = []
    for station, rows in spec.items():
        t = -15
        for gap, length, (state, reason), quality in rows:
            t += gap
            out.append((station, t, t + length, state, reason, quality))
            t += length
    return frame(out)


def wins(spec: list[tuple[int, int]]) -> list[tuple[datetime, datetime]]:
    return [(at(a), at(a + n)) for a, n in spec]


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(["s1", "s2", "s3"]), station_rows, max_size=3),
       st.lists(window_specs, min_size=3, max_size=3), st.lists(window_specs, min_size=3, max_size=3),
       period_specs, st.booleans(), st.booleans())
def test_batch_equals_single(spec: dict[str, list[tuple[int, int, tuple[str, str], str]]],
                             sched_specs: list[list[tuple[int, int]]], pdt_specs: list[list[tuple[int, int]]],
                             periods_spec: list[tuple[int, int]], planned: bool, strict: bool) -> None:
    states = build(spec)
    stations = ["s1", "s2", "s3"]
    sched = {s: wins(w) for s, w in zip(stations, sched_specs, strict=True)}
    pdt = {s: wins(w) for s, w in zip(stations, pdt_specs, strict=True)}
    periods = [(at(a), at(a + n)) for a, n in periods_spec]
    excluded = frozenset({"bad", "nodata", "uncertain"}) if strict else frozenset({"bad", "nodata"})
    prepared = StationStates.of(states, stations)
    model = classify_many(prepared, periods, sched, pdt, changeover_counts_as_planned=planned,
                          excluded_qualities=excluded)
    assert model.elements.equals(time_elements_many(states, periods, sched, pdt, changeover_counts_as_planned=planned,
                                                    excluded_qualities=excluded))
    assert model.by_reason.equals(seconds_by_reason_many(states, periods, sched, pdt,
                                                         changeover_counts_as_planned=planned,
                                                         excluded_qualities=excluded))
    elements = elements_by_pair(model.elements, planned)
    e10 = e10_times_by_pair(e10_times_many(prepared, periods, stations, excluded_qualities=excluded))
    fails = {(r["period"], r["station"]): r for r in
             failure_counts_many(prepared, periods, stations, excluded_qualities=excluded).iter_rows(named=True)}
    events = {(r[0], r[1]): r[2] for r in
              downtime_events_many(prepared, periods, stations, excluded_qualities=excluded).iter_rows()}
    whole = failure_episodes_many(prepared, stations, excluded_qualities=excluded)
    for station in stations:
        mine = one(states, station)
        assert whole.filter(pl.col("station") == station).drop("station").equals(
            failure_episodes(mine, excluded_qualities=excluded))
        for k, (t0, t1) in enumerate(periods):
            assert elements[(k, station)] == time_elements(mine, t0, t1, sched[station], pdt[station],
                                                           changeover_counts_as_planned=planned,
                                                           excluded_qualities=excluded)
            single_reasons = seconds_by_reason(mine, t0, t1, sched[station], pdt[station],
                                               changeover_counts_as_planned=planned, excluded_qualities=excluded)
            batch_reasons = model.by_reason.filter((pl.col("period") == k) & (pl.col("station") == station))
            assert batch_reasons.drop("period", "station").equals(single_reasons)
            assert e10[(k, station)] == e10_times(mine, t0, t1, excluded_qualities=excluded)
            episodes = failure_episodes(mine, t0, t1, excluded_qualities=excluded)
            assert fails[(k, station)]["failures"] == episodes.height
            assert fails[(k, station)]["repair_s"] == pytest.approx(episodes["repair_s"].sum(), abs=1e-9)
            assert fails[(k, station)]["udt_s"] == pytest.approx(episodes["udt_s"].sum(), abs=1e-9)
            assert events[(k, station)] == downtime_events(mine, t0, t1, excluded_qualities=excluded)


@settings(max_examples=40, deadline=None)
@given(station_rows, window_specs, window_specs, st.integers(-10, 150), st.integers(0, 120),
       st.lists(st.integers(0, 100), max_size=4))
def test_split_sums_to_whole_in_one_batch(rows: list[tuple[int, int, tuple[str, str], str]],
                                          sched: list[tuple[int, int]], pdt: list[tuple[int, int]], t0: int,
                                          length: int, cuts_pct: list[int]) -> None:
    """The elements of a period equal the sum over any split of it, exactly (integer microseconds)."""
    states = build({"s": rows})
    cuts = sorted({t0, t0 + length, *(t0 + length * c // 100 for c in cuts_pct)})
    periods = [(at(t0), at(t0 + length)), *((at(a), at(b)) for a, b in itertools.pairwise(cuts))]
    out = elements_by_pair(time_elements_many(states, periods, {"s": wins(sched)}, {"s": wins(pdt)}))
    whole = out[(0, "s")]
    parts = sum(out[(k, "s")] for k in range(1, len(periods)))
    if len(periods) > 1:
        assert parts == whole
