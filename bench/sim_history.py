"""Benchmark: history-mode speed of the line simulators in simulated station-hours per wall second.

For each line of the sample plant, simulate DAYS days into contract envelopes (ground truth included) and
count the SimPy events scheduled. The limit is the same SimPy event loop running the same number of events
with no model work (a process yielding bare timeouts), measured in the same run; the ratio says how much
of the event loop's speed the model keeps.
Usage: python bench/sim_history.py [DAYS]
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import simpy

from twinline.simulators import run_history
from twinline.uns.plant import load_plant, sample_plant_path

START = datetime(2026, 11, 1, tzinfo=UTC)


def _events(env: simpy.Environment) -> int:
    counter: Any = env._eid
    return int(next(counter))


def _bare_loop(n_events: int) -> float:
    env = simpy.Environment()

    def proc() -> Any:
        for _ in range(n_events):
            yield env.timeout(1.0)

    env.process(proc())
    t = time.perf_counter()
    env.run()
    return time.perf_counter() - t


def main(days: float) -> None:
    plant = load_plant(sample_plant_path())
    total_h = total_s = 0.0
    total_events = 0
    print(f"{'line':24} {'station-h':>10} {'wall s':>8} {'events':>10} {'envelopes':>10} {'samples':>10} "
          f"{'station-h/s':>12}")
    for path in plant.lines:
        t = time.perf_counter()
        result = run_history(plant, path, START, START + timedelta(days=days), seed=1)
        envelopes = samples = 0
        for _, env in result:
            envelopes += 1
            samples += len(env.samples)
        wall = time.perf_counter() - t
        events = _events(result.model.env)
        total_h += result.station_hours
        total_s += wall
        total_events += events
        print(f"{path:24} {result.station_hours:10.0f} {wall:8.2f} {events:10d} {envelopes:10d} {samples:10d} "
              f"{result.station_hours / wall:12.0f}")
    limit_s = _bare_loop(total_events)
    figure, limit = total_h / total_s, total_h / limit_s
    print(f"bare SimPy loop: {total_events} events in {limit_s:.2f} s")
    print(f"sim_history: {figure:.0f} station-h/s; limit {limit:.0f} station-h/s; ratio {figure / limit:.2f}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
