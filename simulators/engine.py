"""One SimPy engine for serial lines of every archetype (panel, wafer, laptop), driven by the `sim:` sections.

What the model covers, per station (a SimPy process each):
- jobs flow through finite buffers (`buffer_capacity` jobs between two stations; SBY starved when the input
  is empty, SBY blocked when the output is full); the first station releases jobs from the line's product
  schedule (cycled); a job is one substrate (panel), one lot of `lot_size` wafers (wafer) or one laptop;
- processing in rounds of `parallel` units (cluster tool chambers, polishing heads) with cycle time
  ideal x speed_factor x noise; PRD run, or PRD run_up for the first `runup_units` after a changeover
  (slower, linearly back to normal);
- changeovers when the next job is another product: ProductSample, SDT setup for the internal setup time,
  then run-up;
- failures as interrupts from a breaker process (exponential times between failures of scheduled calendar
  time; a failure arriving while the station is not processing surfaces when it next starts a round):
  UDT failure (operator response), UDT maintenance_delay while waiting for the shared repair crew (a SimPy
  Resource), UDT repair; an alarm is raised and cleared around it;
- micro-stops (UDT minor_stop) before a round, Poisson in processing time;
- scrap and rework per unit; rework goes back to `rework_to` (itself: processed again in the same job;
  an upstream station: a rework job in its unbounded rework queue, taken before new work so rework loops
  cannot deadlock the finite buffers);
- the calendar overlay (windows.py): NST outside shifts, SDT preventive_maintenance in planned downtime and
  periodic PM; a round that would run into a window is not started (SBY idle until the window);
- process values with units every `process_every_units` rounds; an energy meter integrating power per
  displayed E10 state, emitted as kWh increments at state changes and rounds at most every
  `energy_interval_s` (and at the end of the run).

Everything observed goes to the Truth and to observers (history batcher, OPC UA, MQTT); times are seconds
after `t0`. Deterministic for a seed: one numpy Generator per station, spawned from the seed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import simpy

from twinline.simulators.draws import Draws
from twinline.simulators.errors import SimConfigError
from twinline.simulators.params import LineParams, StationParams, line_params
from twinline.simulators.truth import Truth
from twinline.simulators.windows import Window, station_windows
from twinline.uns.plant import Line, Plant, Station
from twinline.uns.states import E10, Reason

Label = tuple[E10, Reason]
CHUNK_S = 7 * 86400.0  # calendar windows are generated a week at a time, one week ahead

RUN: Label = (E10.PRD, Reason.RUN)
RUN_UP: Label = (E10.PRD, Reason.RUN_UP)
STARVED: Label = (E10.SBY, Reason.STARVED)
BLOCKED: Label = (E10.SBY, Reason.BLOCKED)
IDLE: Label = (E10.SBY, Reason.IDLE)
SETUP: Label = (E10.SDT, Reason.SETUP)
FAILURE: Label = (E10.UDT, Reason.FAILURE)
DELAY: Label = (E10.UDT, Reason.MAINTENANCE_DELAY)
REPAIR: Label = (E10.UDT, Reason.REPAIR)
MINOR: Label = (E10.UDT, Reason.MINOR_STOP)


class Observer(Protocol):
    """Receives every event of a running model, in simulated time order (t = seconds after t0)."""

    def on_state(self, st: int, t: float, state: E10, reason: Reason, power_kw: float) -> None: ...
    def on_count(self, st: int, t: float, product: str, good: int, scrap: int, rework: int) -> None: ...
    def on_product(self, st: int, t: float, product: str) -> None: ...
    def on_process(self, st: int, t: float, name: str, value: float, unit: str) -> None: ...
    def on_energy(self, st: int, t: float, kwh: float, power_kw: float) -> None: ...
    def on_alarm(self, st: int, t: float, code: str, active: bool, severity: int, text: str) -> None: ...


class Job:
    __slots__ = ("qty", "sku")

    def __init__(self, sku: str, qty: int) -> None:
        self.sku = sku
        self.qty = qty


class LineModel:
    """A serial line as SimPy processes; `run_until(t)` advances it, `close(t)` ends the period."""

    def __init__(self, plant: Plant, line: Line | str, t0: datetime, seed: int,
                 env: simpy.Environment | None = None, observers: Sequence[Observer] = ()) -> None:
        self.line = plant.line(line) if isinstance(line, str) else line
        if t0.tzinfo is None:
            raise SimConfigError("start", "naive datetime (no time zone)")
        self.plant = plant
        self.t0 = t0.astimezone(UTC)
        self.params: LineParams = line_params(self.line)
        self.env = env if env is not None else simpy.Environment()
        self.observers: tuple[Observer, ...] = tuple(observers)
        self.crew = simpy.Resource(self.env, capacity=self.params.repair_crews)
        self.truth = Truth(str(self.line.path), tuple(str(s.path) for s in self.line.stations), self.t0,
                           tuple(dict(s.ideal_cycle_s) for s in self.line.stations),
                           plant.settings.runup_window_units, plant.settings.runup_rate_fraction)
        seqs = np.random.SeedSequence(seed).spawn(len(self.line.stations))
        self.stations = [_Station(self, i, st, p, Draws(np.random.Generator(np.random.PCG64(sq))))
                         for i, (st, p, sq) in enumerate(zip(self.line.stations, self.params.stations, seqs,
                                                             strict=True))]
        self._release = self._releases()
        self.closed = False
        for s in self.stations:
            s.start()

    def add_observer(self, observer: Observer) -> None:
        self.observers = (*self.observers, observer)
        for s in self.stations:
            s.obs = self.observers

    def _releases(self) -> Generator[Job, None, None]:
        lot = self.params.lot_size
        while True:
            for sku, units in self.params.schedule:
                self.truth.releases.append((self.env.now, sku, units))
                for _ in range(units):
                    yield Job(sku, lot)

    def next_job(self) -> Job:
        return next(self._release)

    def run_until(self, t: float) -> None:
        if t > self.env.now:
            self.env.run(until=t)

    def close(self, t: float) -> Truth:
        """End the period at `t` (seconds after t0): close every open interval and flush the energy meters."""
        self.run_until(t)
        if not self.closed:
            for s in self.stations:
                s.close(t)
            self.truth.end_s = t
            self.closed = True
        return self.truth


class _Station:
    """One station: its process, breaker, calendar overlay, counters and meters."""

    def __init__(self, model: LineModel, index: int, station: Station, p: StationParams, draws: Draws) -> None:
        self.m = model
        self.env = model.env
        self.i = index
        self.station = station
        self.p = p
        self.d = draws
        self.obs = model.observers
        self.truth = model.truth
        self.ideal = dict(station.ideal_cycle_s)
        self.path = str(station.path)
        self.products = model.plant.products
        self.inq: deque[Job] = deque()
        self.rq: deque[Job] = deque()
        self.in_cap = 1 << 62 if index == 0 else model.params.stations[index - 1].buffer_after
        self.get_ev: simpy.Event | None = None
        self.space_ev: simpy.Event | None = None
        self.wins: deque[Window] = deque()
        self.sku: str | None = None
        self.act: Label = IDLE
        self.disp: Label = IDLE
        self.since = 0.0
        self.busy = False
        self.fail_pending = False
        self.runup_left = 0
        self.rounds = 0
        self.kwh_pending = 0.0
        self.kwh_emit_t = 0.0
        self.e_t = 0.0
        self.power = p.power_kw[E10.SBY]
        self.good = self.scrap = self.rework = 0
        self.failures = 0
        self.proc: simpy.Process | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        env = self.env
        self.wins.extend(self._windows(0.0, CHUNK_S))
        env.process(self._calendar())
        env.process(self._meter())
        self.proc = env.process(self._run())
        if self.p.mtbf_s > 0:
            env.process(self._breaker())
        lab = self._label(IDLE)
        self.disp = lab
        self.power = self.p.power_kw[lab[0]]
        for o in self.obs:
            o.on_state(self.i, 0.0, lab[0], lab[1], self.power)

    def close(self, t: float) -> None:
        if t > self.since:
            self.truth.intervals[self.i].append((self.since, t, self.disp[0], self.disp[1]))
        self.since = t
        self._emit_energy(t)

    def _windows(self, a: float, b: float) -> list[Window]:
        m = self.m
        windows: list[Window] = station_windows(m.line.calendar, self.path, self.p.pm, m.plant.epoch, m.t0, a, b)
        return windows

    # ------------------------------------------------------------------ state and meters
    def _label(self, act: Label) -> Label:
        now = self.env.now
        wins = self.wins
        while wins and wins[0].end <= now:
            wins.popleft()
        if wins and wins[0].start <= now:
            w = wins[0]
            return (w.state, w.reason)
        return act

    def set(self, act: Label) -> None:
        self.act = act
        lab = self._label(act)
        if lab != self.disp:
            self._change(lab)

    def refresh(self) -> None:
        lab = self._label(self.act)
        if lab != self.disp:
            self._change(lab)

    def _change(self, lab: Label) -> None:
        now = self.env.now
        self.kwh_pending += self.power * (now - self.e_t) / 3600.0
        self.e_t = now
        ivs = self.truth.intervals[self.i]
        if now > self.since:
            ivs.append((self.since, now, self.disp[0], self.disp[1]))
            self.since = now
        elif ivs and ivs[-1][1] == now and (ivs[-1][2], ivs[-1][3]) == lab:
            self.since = ivs.pop()[0]  # a zero-length detour: the previous interval simply continues
        self.disp = lab
        self.power = power = self.p.power_kw[lab[0]]
        for o in self.obs:
            o.on_state(self.i, now, lab[0], lab[1], power)
        if now - self.kwh_emit_t >= self.m.params.energy_interval_s:
            self._emit_energy(now)

    def _emit_energy(self, now: float) -> None:
        kwh = self.kwh_pending + self.power * (now - self.e_t) / 3600.0
        self.kwh_pending = 0.0
        self.e_t = self.kwh_emit_t = now
        if kwh <= 0.0:
            return
        self.truth.energy_kwh[self.i] += kwh
        for o in self.obs:
            o.on_energy(self.i, now, kwh, self.power)

    def alarm(self, code: str, active: bool, severity: int, text: str) -> None:
        now = self.env.now
        if active:
            self.truth.alarms[self.i] += 1
        for o in self.obs:
            o.on_alarm(self.i, now, code, active, severity, text)

    # ------------------------------------------------------------------ processes
    def _calendar(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        a = 0.0
        pending = list(self.wins)
        while True:
            nxt = self._windows(a + CHUNK_S, a + 2 * CHUNK_S)
            self.wins.extend(nxt)
            for w in pending:
                if w.start > env.now:
                    yield env.timeout(w.start - env.now)
                self.refresh()
                if w.end > env.now:
                    yield env.timeout(w.end - env.now)
                self.refresh()
            pending = nxt
            a += CHUNK_S
            if a > env.now:
                yield env.timeout(a - env.now)

    def _meter(self) -> Generator[simpy.Event, Any, None]:
        """The energy meter also reports on its own period, whatever the station does: a real meter is read
        every `energy_interval_s`, and a silent station is how the twin recognises a dead link (stale data)."""
        interval = self.m.params.energy_interval_s
        while True:
            wait = self.kwh_emit_t + interval - self.env.now
            if wait > 0:
                yield self.env.timeout(wait)
            else:
                self._emit_energy(self.env.now)

    def _breaker(self) -> Generator[simpy.Event, Any, None]:
        while True:
            yield self.env.timeout(self.d.exponential(self.p.mtbf_s))
            if self.busy and self.proc is not None:
                self.busy = False
                self.proc.interrupt("failure")
            else:
                self.fail_pending = True

    def _fit(self, need: float) -> Generator[simpy.Event, Any, None]:
        """Wait out calendar windows and do not start `need` seconds of work that would run into one."""
        env = self.env
        while True:
            wins = self.wins
            while wins and wins[0].end <= env.now:
                wins.popleft()
            if not wins:
                return
            w = wins[0]
            if w.start <= env.now:
                yield env.timeout(w.end - env.now)
            elif env.now + need > w.start:
                self.set(IDLE)
                yield env.timeout(w.start - env.now)
            else:
                return

    def _fail(self) -> Generator[simpy.Event, Any, None]:
        p, d, env = self.p, self.d, self.env
        self.fail_pending = False
        self.failures += 1
        self.set(FAILURE)
        self.alarm(f"{self.station.id}.FAILURE", True, 700, f"{self.station.name}: equipment failure")
        yield env.timeout(max(1.0, p.response_s * (0.5 + d.uniform())))
        with self.m.crew.request() as req:
            if not req.triggered:
                self.set(DELAY)
            yield req
            self.set(REPAIR)
            yield env.timeout(max(1.0, d.lognormal(p.mttr_s, p.mttr_cv)))
        self.alarm(f"{self.station.id}.FAILURE", False, 700, f"{self.station.name}: repaired")

    def _take(self) -> Generator[simpy.Event, Any, Job]:
        while True:
            if self.rq:
                return self.rq.popleft()
            if self.inq:
                job = self.inq.popleft()
                if self.space_ev is not None:
                    ev, self.space_ev = self.space_ev, None
                    ev.succeed()
                return job
            if self.i == 0:
                return self.m.next_job()
            self.set(STARVED)
            self.get_ev = self.env.event()
            yield self.get_ev

    def _put(self, job: Job) -> Generator[simpy.Event, Any, None]:
        if self.i + 1 >= len(self.m.stations):
            return
        dn = self.m.stations[self.i + 1]
        while len(dn.inq) >= dn.in_cap:
            self.set(BLOCKED)
            dn.space_ev = self.env.event()
            yield dn.space_ev
        dn.inq.append(job)
        dn.wake()

    def wake(self) -> None:
        if self.get_ev is not None:
            ev, self.get_ev = self.get_ev, None
            ev.succeed()

    def _changeover(self, sku: str) -> Generator[simpy.Event, Any, None]:
        first = self.sku is None
        self.sku = sku
        now = self.env.now
        self.truth.product_switches.append((self.i, now, sku))
        for o in self.obs:
            o.on_product(self.i, now, sku)
        if first or self.p.setup_s <= 0:
            return
        yield from self._fit(0.0)
        self.set(SETUP)
        yield self.env.timeout(max(1.0, self.p.setup_s * max(0.2, 1.0 + self.p.setup_cv * self.d.normal())))
        self.runup_left = self.p.runup_units

    def _run(self) -> Generator[simpy.Event, Any, None]:
        env, p, d, lp = self.env, self.p, self.d, self.m.params
        sf, cv, par = lp.speed_factor, lp.cycle_cv, p.parallel
        ms_rate = p.microstop_rate_per_s
        while True:
            job = yield from self._take()
            if job.sku != self.sku:
                yield from self._changeover(job.sku)
            sku = job.sku
            ideal = self.ideal[sku] * par
            left, good = job.qty, 0
            while left > 0:
                n = left if left < par else par
                ct = ideal * sf * (1.0 + cv * d.normal())
                if ct < 0.5 * ideal:
                    ct = 0.5 * ideal
                runup = self.runup_left > 0
                if runup:
                    ct *= 1.0 + (p.runup_slowdown - 1.0) * self.runup_left / max(1, p.runup_units)
                    self.runup_left -= 1
                ms = 0.0
                if ms_rate > 0.0 and d.uniform() < 1.0 - math.exp(-ms_rate * ct):
                    ms = p.microstop_s * (0.5 + d.uniform())
                if self.wins and env.now + ct + ms > self.wins[0].start:
                    yield from self._fit(ct + ms)
                if self.fail_pending:
                    yield from self._fail()
                    yield from self._fit(ct + ms)
                if ms:
                    self.set(MINOR)
                    yield env.timeout(ms)
                yield from self._cycle(ct, RUN_UP if runup else RUN)
                left -= n
                g, s, r = self._outcomes(n)
                good += g
                if r:
                    if p.rework_to == self.i:
                        left += r
                    else:
                        target = self.m.stations[p.rework_to]
                        target.rq.append(Job(sku, r))
                        target.wake()
                self._record(sku, g, s, r)
            if good:
                job.qty = good
                yield from self._put(job)

    def _cycle(self, ct: float, label: Label) -> Generator[simpy.Event, Any, None]:
        env = self.env
        self.set(label)
        remaining = ct
        while True:
            self.busy = True
            t1 = env.now
            try:
                yield env.timeout(remaining)
                self.busy = False
                return
            except simpy.Interrupt:
                self.busy = False
                remaining -= env.now - t1
                yield from self._fail()
                yield from self._fit(remaining)
                self.set(label)

    def _outcomes(self, n: int) -> tuple[int, int, int]:
        p_scrap, p_bad = self.p.scrap, self.p.scrap + self.p.rework
        if p_bad <= 0.0:
            return n, 0, 0
        g = s = r = 0
        for _ in range(n):
            u = self.d.uniform()
            if u < p_scrap:
                s += 1
            elif u < p_bad:
                r += 1
            else:
                g += 1
        return g, s, r

    def _record(self, sku: str, g: int, s: int, r: int) -> None:
        now = self.env.now
        self.good += g
        self.scrap += s
        self.rework += r
        self.truth.units.append((self.i, now, sku, g, s, r))
        for o in self.obs:
            o.on_count(self.i, now, sku, g, s, r)
        self.rounds += 1
        if self.p.process and self.rounds % self.m.params.process_every_units == 0:
            self._process_values(sku, now)
        if now - self.kwh_emit_t >= self.m.params.energy_interval_s:
            self._emit_energy(now)

    def _process_values(self, sku: str, now: float) -> None:
        d = self.d
        for spec in self.p.process:
            if spec.attr is not None:
                base = self.products[sku].attrs.get(spec.attr) if sku in self.products else None
                if not isinstance(base, int | float):
                    continue
                value = float(round(base * min(1.0, max(0.0, spec.mean + spec.sd * d.normal()))))
            else:
                value = spec.mean + spec.sd * d.normal()
            for o in self.obs:
                o.on_process(self.i, now, spec.name, value, spec.unit)


def build(plant: Plant, line: Line | str, t0: datetime, seed: int, env: simpy.Environment | None = None,
          observers: Sequence[Observer] = ()) -> LineModel:
    """Build a line model (processes registered, nothing run yet)."""
    return LineModel(plant, line, t0, seed, env, observers)

