"""Golden end-to-end tests: a seeded live line -> edge agent -> broker -> ingest -> database -> twin == truth.

One test per line archetype of the sample plant (panel, wafer, laptop). Each runs the real pipeline (the
simulator's OPC UA server and MQTT devices, `twinline edge run` as a subprocess, the shared broker, an
ingest service with its own shared-subscription group, a fresh database) for about 36 s of wall time at
1000x, then compares over the window of simulated time the pipeline can know (tests/e2e/support.py):

- state time per station and (E10 state, reason): exact to the microsecond (OPC UA stations keep the
  SourceTimestamp; MQTT devices stamp milliseconds and report a status, so their truth is put on the same
  grid and mapped with the device status map);
- good / scrap / rework per station and product: exact;
- changeovers (from, to, start, end) per station, from twin.compute: exact;
- energy per station: equal within float rounding of cumulative totals;
- nothing lost on the way: every sample the agent produced is in the database, no dead letters.

The simulated period is a fixed Monday in the past (2025-03-03 08:00 Asia/Shanghai), so the scenario -
shifts, changeovers, failures - is the same on every run whatever the date, and no timestamp is in the
future. The panel line is warmed up silently for 11 h so its first product campaign ends inside the window.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.support import (
    Run,
    Scenario,
    energy_close,
    run_line,
    truth_changeovers,
    truth_counts,
    truth_energy,
    truth_state_us,
    twin_figures,
    twin_state_us,
)
from twinline.uns.plant import load_plant, sample_plant_path

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

log = logging.getLogger(__name__)
START = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)  # Monday 08:00 in Chongqing: the start of the day shift
SPEED = 1000.0
SIM_S = 36_000.0


def _check(run: Run) -> None:
    as_of = datetime.now(UTC)
    status = run.status
    for name, src in status["sources"].items():
        assert src["rejected_total"] == 0, f"source {name} rejected readings: {src}"
        assert src["overflow_total"] == 0, f"source {name}: server-side queue overflowed: {src}"
    assert status["queue"]["dropped_total"] == 0, status["queue"]
    produced = sum(int(s["samples_total"]) for s in status["sources"].values())
    assert run.ledger_samples == produced, f"database holds {run.ledger_samples} samples, the agent made {produced}"
    assert run.dead_letters == [], run.dead_letters
    # the simulated counters never go down: a "reset" would count a whole cumulative total once more
    assert run.counter_resets == [], run.counter_resets[:5]

    truth_states, twin_states = truth_state_us(run), twin_state_us(run, as_of)
    window_us = round((run.w1 - run.w0).total_seconds() * 1_000_000)
    for station, expected in truth_states.items():
        assert sum(expected.values()) == window_us, f"{station}: truth does not cover the window"
        assert twin_states[station] == expected, f"{station}: state time (µs) differs"

    twin = twin_figures(run, as_of)
    expected_counts = truth_counts(run)
    assert sum(g for d in expected_counts.values() for g, _, _ in d.values()) > 0
    for station in run.truth.stations:
        assert twin.counts.get(station, {}) == expected_counts.get(station, {}), f"{station}: counts differ"

    expected_cos = truth_changeovers(run)
    assert expected_cos, "the scenario has no changeover inside the window"
    assert twin.changeovers == expected_cos

    n_states = sum(len(ivs) for ivs in run.truth.intervals)
    log.info("%s: window %s .. %s (%.0f s); %d truth intervals; units %d; changeovers %d; samples %d; foreign rows "
             "removed %d; wall %s", run.line, run.w0, run.w1, window_us / 1e6, n_states,
             sum(g + s + r for d in expected_counts.values() for g, s, r in d.values()),
             sum(len(v) for v in expected_cos.values()), produced, run.foreign_rows, run.wall_s)
    expected_energy = truth_energy(run)
    assert set(twin.energy) == set(expected_energy)
    for station, kwh in expected_energy.items():
        assert energy_close(twin.energy[station], kwh), f"{station}: energy {twin.energy[station]} != {kwh}"


async def _run(scn: Scenario, db_dsn: str, mqtt_shared_url: str, tmp_path: Path, uid: str) -> Run:
    plant = load_plant(sample_plant_path())
    run = await run_line(scn, plant, db_dsn, mqtt_shared_url, tmp_path, uid)
    _check(run)
    return run


async def test_panel_line_twin_equals_truth(db_dsn: str, mqtt_shared_url: str, tmp_path: Path, uid: str) -> None:
    scn = Scenario("cq/display/amoled1", seed=11, speed=SPEED, sim_s=SIM_S, start=START, warmup_s=11 * 3600.0)
    await _run(scn, db_dsn, mqtt_shared_url, tmp_path, uid)


async def test_wafer_line_twin_equals_truth(db_dsn: str, mqtt_shared_url: str, tmp_path: Path, uid: str) -> None:
    scn = Scenario("cq/fab/fab12", seed=12, speed=SPEED, sim_s=SIM_S, start=START)
    await _run(scn, db_dsn, mqtt_shared_url, tmp_path, uid)


async def test_laptop_line_twin_equals_truth(db_dsn: str, mqtt_shared_url: str, tmp_path: Path, uid: str) -> None:
    # no warm-up: the simulated MQTT devices start their totals at 0 (see the report on simulators/live.py)
    scn = Scenario("cq/terminal/nb1", seed=13, speed=SPEED, sim_s=SIM_S, start=START)
    await _run(scn, db_dsn, mqtt_shared_url, tmp_path, uid)
