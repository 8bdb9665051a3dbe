"""End-to-end harness: a seeded live line -> edge agent (subprocess) -> broker -> ingest -> database -> twin.

`run_line(...)` runs the whole pipeline for one line and returns what the comparisons need: the simulator's
ground truth, the energy increments the model emitted (with their instants), the edge agent's final status
and the comparison window. The `compare_*` helpers read the database through the twin and put the
figures next to the truth computed the same way; the tests assert equality.

The window `[w0, w1)` of simulated time (whole seconds):
- w0 is after the instant the edge agent's OPC UA subscription existed (read from the agent's status file):
  before it the agent saw only the latest value of each node (the OPC UA data model holds no history), so
  earlier state changes and units are legitimately absent. MQTT devices are subscribed before the line
  starts, so they lose nothing.
- w1 is a fixed instant of the scenario; the line keeps running until the agent has received a value stamped
  after it from every source, so everything before w1 had been published when the line stops.
Rows from other publishers on the shared broker (another test of the sample plant) are removed before
the comparison and counted in `Run.foreign_rows`. Nothing else is clipped, and nothing is compared with a
tolerance except float sums of energy.

Timestamps: OPC UA stations keep the simulator's microseconds (SourceTimestamp); MQTT devices stamp
milliseconds (`t_ms`), so their truth is put on the same millisecond grid as the device does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from tests.helpers import async_wait_until
from twinline.cli.embedded import free_port
from twinline.cli.simline import DEVICE_STATUS, edge_config
from twinline.ingest.plant_store import load_plant_into
from twinline.ingest.service import IngestConfig, IngestService
from twinline.simulators.live import LiveLine, serve_line
from twinline.simulators.mqtt_devices import device_status
from twinline.simulators.truth import Truth, to_us
from twinline.twin import store
from twinline.twin.service import compute
from twinline.twin.timemodel import seconds_by_reason
from twinline.uns.mqtturl import parse_mqtt_url
from twinline.uns.plant import Plant, Protocol, sample_plant_path
from twinline.uns.states import E10, Reason

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
DEADLINE_S = 60.0


@dataclass(frozen=True)
class Scenario:
    """One seeded run: line, seed, speed (simulated s per wall s), simulated span after `start`, warm-up."""

    line: str
    seed: int
    speed: float
    sim_s: float
    start: datetime
    warmup_s: float = 0.0


@dataclass
class EnergyLog:
    """A model observer that keeps every energy increment with its instant (the Truth keeps totals only)."""

    rows: list[tuple[int, float, float]] = field(default_factory=list)

    def on_energy(self, st: int, t: float, kwh: float, power_kw: float) -> None:
        self.rows.append((st, t, kwh))

    def on_state(self, st: int, t: float, state: E10, reason: Reason, power_kw: float) -> None:
        pass

    def on_count(self, st: int, t: float, product: str, good: int, scrap: int, rework: int) -> None:
        pass

    def on_product(self, st: int, t: float, product: str) -> None:
        pass

    def on_process(self, st: int, t: float, name: str, value: float, unit: str) -> None:
        pass

    def on_alarm(self, st: int, t: float, code: str, active: bool, severity: int, text: str) -> None:
        pass


@dataclass
class Run:
    """What a pipeline run left behind for the comparisons."""

    plant: Plant
    line: str
    dsn: str
    agent: str
    truth: Truth
    energy: EnergyLog
    w0: datetime
    w1: datetime
    status: dict[str, Any]
    ledger_samples: int
    dead_letters: list[str]
    foreign_rows: int
    counter_resets: list[str]
    protocols: dict[str, Protocol]
    wall_s: dict[str, float] = field(default_factory=dict)


def us(ts: datetime) -> int:
    return (ts - _EPOCH) // _US


# --------------------------------------------------------------------------- running the pipeline


def _read_status(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not written yet, or replaced while we read it: poll again
    return data


def _edge_yaml(plant: Plant, scn: Scenario, live: LiveLine, mqtt_url: str, state_dir: Path, agent: str,
               prefix: str, uid: str) -> Path:
    doc = edge_config(plant, scn.line, live.endpoint, mqtt_url, state_dir, mqtt_prefix=prefix)
    doc["agent"] = agent
    doc["health"] = {"interval_s": 0.2}
    doc["uplink"] = {**doc["uplink"], "client_id": f"e2e-up-{uid}", "reconnect_min_s": 0.2, "reconnect_max_s": 1.0}
    for src in doc["sources"]:
        src["reconnect_min_s"] = 0.2
        src["reconnect_max_s"] = 1.0
        if src["type"] == "mqtt":
            src["client_id"] = f"e2e-dev-{uid}"
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "edge.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _edge_process(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("twinline")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINLINE_")}
    cmd = [str(exe), "edge", "run", "--config", str(config)]
    with log_path.open("wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def _stop_process(proc: subprocess.Popen[bytes]) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def _ledger_samples(dsn: str, agent: str) -> tuple[int, list[str]]:
    """Samples of `agent` stored, and the dead letters of its envelopes (as `topic: reason`)."""
    with store.connect(dsn) as conn:
        row = conn.execute("SELECT coalesce(sum(samples), 0)::bigint FROM envelope_ledger WHERE source LIKE %s",
                           (f"{agent}/%",)).fetchone()
        dead = conn.execute("SELECT topic || ': ' || reason FROM dead_letter WHERE source LIKE %s OR topic LIKE %s "
                            "ORDER BY id LIMIT 20", (f"{agent}/%", f"%/_edge/{agent}")).fetchall()
    return int(row[0]) if row else 0, [str(r[0]) for r in dead]


_EVENT_TABLES = ("state_event", "count_event", "process_sample", "product_event", "alarm_event", "energy_sample")


def _drop_foreign(dsn: str, agent: str) -> int:
    """Delete rows other tests published on the shared broker for the same plant's stations; return how many.

    Ingest subscribes to the whole namespace, so a concurrent test of the sample plant on the shared broker
    lands in this database too. The comparison is about this run's agent only.
    """
    removed = 0
    with store.connect(dsn) as conn:
        for table in _EVENT_TABLES:
            cur = conn.execute(f"DELETE FROM {table} WHERE source NOT LIKE %s", (f"{agent}/%",))
            removed += cur.rowcount
    return removed


async def run_line(scn: Scenario, plant: Plant, dsn: str, mqtt_url: str, tmp: Path, uid: str) -> Run:
    """Run the pipeline for `scn` and return the truth, the window and the agent's final status."""
    loop = asyncio.get_running_loop()
    t_begin = loop.time()
    load_plant_into(dsn, plant, sample_plant_path().read_text(encoding="utf-8"))
    agent, prefix = f"e2e-{uid}", f"e2e{uid}"
    ingest = IngestService(IngestConfig(dsn=dsn, mqtt=parse_mqtt_url(mqtt_url), group=f"e2e{uid}",
                                        name=f"e2e-ingest-{uid}", heartbeat_s=1.0))
    live = serve_line(plant, scn.line, speed=scn.speed, seed=scn.seed, port=free_port(), mqtt_url=mqtt_url,
                      start=scn.start, mqtt_prefix=prefix, client_id=f"e2e-sim-{uid}", warmup_s=scn.warmup_s)
    energy = EnergyLog()
    live.model.add_observer(energy)
    state_dir = tmp / "edge"
    config = _edge_yaml(plant, scn, live, mqtt_url, state_dir, agent, prefix, uid)
    status_path = state_dir / "status.json"
    w1 = scn.start + timedelta(seconds=scn.sim_s)
    proc: subprocess.Popen[bytes] | None = None
    wall: dict[str, float] = {}
    ingest.start()
    try:
        assert ingest.wait_subscribed(DEADLINE_S), "ingest did not subscribe"
        proc = _edge_process(config, tmp / "edge.log")

        def sources_up(kinds: tuple[str, ...]) -> bool:
            snap = _read_status(status_path)
            return bool(snap and snap["uplink"]["connected"]
                        and all(s["connected"] for s in snap["sources"].values() if s["kind"] in kinds))

        # MQTT devices are subscribed before the line publishes anything: they lose nothing
        await async_wait_until(lambda: sources_up(("mqtt",)), DEADLINE_S, 0.05, "edge uplink + MQTT source up")
        async with live:
            wall["line_started"] = loop.time() - t_begin
            await async_wait_until(lambda: sources_up(("opcua", "mqtt")), DEADLINE_S, 0.05, "edge OPC UA source up")
            x = live.sim_time()  # every change after this instant reaches the subscription as a notification
            w0 = x.replace(microsecond=0) + timedelta(seconds=2)
            assert w0 < w1, f"the agent connected too late: sim time {x} is past the window end {w1}"
            await async_wait_until(lambda: live.sim_time() >= w1, scn.sim_s / scn.speed + DEADLINE_S, 0.1,
                                   "the line reaching the window end")

            def seen_past_w1() -> bool:
                snap = _read_status(status_path)
                return snap is not None and all(s["last_value_ts"] is not None and datetime.fromisoformat(
                    s["last_value_ts"]) >= w1 for s in snap["sources"].values())
            await async_wait_until(seen_past_w1, DEADLINE_S, 0.05, "the agent receiving values stamped after w1")
        live.model.close(live.model.env.now)  # closes the open truth intervals at the stop instant
        wall["line_stopped"] = loop.time() - t_begin

        def drained() -> bool:
            snap = _read_status(status_path)
            return bool(snap and snap["queue"]["depth"] == 0 and snap["queue"]["pending"] == 0)
        await async_wait_until(drained, DEADLINE_S, 0.05, "the edge queue to drain")
        code = _stop_process(proc)
        assert code == 0, f"edge agent exited with {code}; see {tmp / 'edge.log'}"
        status = _read_status(status_path)
        assert status is not None
        produced = sum(int(s["samples_total"]) for s in status["sources"].values())

        def stored() -> bool:
            return _ledger_samples(dsn, agent)[0] >= produced
        await async_wait_until(stored, DEADLINE_S, 0.1, f"{produced} samples of agent {agent} in the database")
        wall["drained"] = loop.time() - t_begin
    finally:
        with contextlib.suppress(Exception):  # already closed on the normal path
            await live.aclose()
        if proc is not None:
            _stop_process(proc)
        ingest.stop()
    ledger, dead = _ledger_samples(dsn, agent)
    foreign = _drop_foreign(dsn, agent)
    log_text = (tmp / "edge.log").read_text(encoding="utf-8", errors="replace")
    resets = [line for line in log_text.splitlines() if "went down" in line]  # normalise.py: a counter reset
    protocols = {str(s.path): s.protocol for s in plant.lines[scn.line].stations}
    return Run(plant, scn.line, dsn, agent, live.truth, energy, w0, w1, status, ledger, dead, foreign, resets,
               protocols, wall)


# --------------------------------------------------------------------------- truth on the emitted grid


def device_us(truth: Truth, t: float) -> int:
    """The instant an MQTT device stamps for sim time `t`: milliseconds, computed as the device does."""
    ts: datetime = truth.t0 + timedelta(seconds=float(t))
    ms: int = round(ts.timestamp() * 1000)
    return ms * 1000


def emitted_us(run: Run, station: int, t: float) -> int:
    """The instant the pipeline carries for sim time `t` of `station` (OPC UA: the truth's microseconds)."""
    path = run.truth.stations[station]
    if run.protocols[path] is Protocol.MQTT:
        return device_us(run.truth, t)
    return int(to_us(run.truth.t0_us, t))


def _device_label(state: E10, reason: Reason) -> tuple[str, str]:
    st, rs = DEVICE_STATUS[device_status(state, reason)].split("/")
    return st, rs


def truth_state_us(run: Run) -> dict[str, dict[tuple[str, str], int]]:
    """Per station: microseconds in each (state, reason) inside the window, as the pipeline can carry them."""
    a, b = us(run.w0), us(run.w1)
    out: dict[str, dict[tuple[str, str], int]] = {}
    for i, ivs in enumerate(run.truth.intervals):
        path = run.truth.stations[i]
        mqtt = run.protocols[path] is Protocol.MQTT
        row: dict[tuple[str, str], int] = defaultdict(int)
        for s, e, state, reason in ivs:
            lo, hi = max(emitted_us(run, i, s), a), min(emitted_us(run, i, e), b)
            if hi > lo:
                label = _device_label(state, reason) if mqtt else (state.value, reason.value)
                row[label] += hi - lo
        out[path] = dict(row)
    return out


def twin_state_us(run: Run, as_of: datetime) -> dict[str, dict[tuple[str, str], int]]:
    """Per station: microseconds in each (state, reason) inside the window, from the database via the twin."""
    stations = list(run.truth.stations)
    with store.connect(run.dsn) as conn:
        frame = store.state_intervals(conn, stations, run.w0, run.w1, as_of=as_of)
    out: dict[str, dict[tuple[str, str], int]] = {}
    for path in stations:
        mine = frame.filter(pl.col("station") == path)
        by = seconds_by_reason(mine, run.w0, run.w1, [(run.w0, run.w1)])
        row: dict[tuple[str, str], int] = {}
        for state, reason, seconds in by.select("state", "reason", "seconds").iter_rows():
            assert state is not None, f"{path}: {seconds} s of the window have no state in the database"
            row[(state, reason)] = row.get((state, reason), 0) + round(seconds * 1_000_000)
        out[path] = row
    return out


def truth_counts(run: Run) -> dict[str, dict[str, tuple[int, int, int]]]:
    """Per station and product: (good, scrap, rework) of units stamped inside the window."""
    a, b = us(run.w0), us(run.w1)
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    for i, t, sku, g, s, r in run.truth.units:
        if a <= emitted_us(run, i, t) < b:
            acc = out[run.truth.stations[i]][sku]
            acc[0] += g
            acc[1] += s
            acc[2] += r
    return {st: {sku: (v[0], v[1], v[2]) for sku, v in d.items()} for st, d in out.items()}


def truth_energy(run: Run) -> dict[str, float]:
    a, b = us(run.w0), us(run.w1)
    out: dict[str, float] = defaultdict(float)
    for i, t, kwh in run.energy.rows:
        if a <= emitted_us(run, i, t) < b:
            out[run.truth.stations[i]] += kwh
    return dict(out)


def truth_changeovers(run: Run) -> dict[str, list[tuple[str, str, int, int]]]:
    """Changeovers (from, to, start µs, end µs) of Truth.changeovers() inside the window, per station.

    MQTT stations: the start and end units are put on the device's millisecond grid.
    """
    a, b = us(run.w0), us(run.w1)
    index = {p: i for i, p in enumerate(run.truth.stations)}
    sim_t = {(i, to_us(run.truth.t0_us, t)): t for i, t, *_ in run.truth.units}
    out: dict[str, list[tuple[str, str, int, int]]] = defaultdict(list)
    for c in run.truth.changeovers():
        i = index[c.station]
        start = emitted_us(run, i, sim_t[(i, us(c.start))])
        end = emitted_us(run, i, sim_t[(i, us(c.end))])
        if a <= start and end < b:
            out[c.station].append((c.from_product, c.to_product, start, end))
    return dict(out)


@dataclass(frozen=True)
class TwinFigures:
    counts: dict[str, dict[str, tuple[int, int, int]]]
    energy: dict[str, float]
    changeovers: dict[str, list[tuple[str, str, int, int]]]


def twin_figures(run: Run, as_of: datetime) -> TwinFigures:
    """Counts per product, energy and changeovers per station of the line over the window, via twin.compute."""
    with store.connect(run.dsn, autocommit=True) as conn:
        result = compute(conn, run.plant, run.line, run.w0, run.w1, as_of=as_of)
    counts: dict[str, dict[str, tuple[int, int, int]]] = {}
    energy: dict[str, float] = {}
    cos: dict[str, list[tuple[str, str, int, int]]] = {}
    a = us(run.w0)
    for path, st in result.whole.stations.items():
        counts[path] = {sku: (c.gq, c.sq, c.rq) for sku, c in st.iso.counts.by_sku.items() if c.pq}
        if st.energy_kwh is not None:
            energy[path] = st.energy_kwh
        rows = [(c.from_product, c.to_product, us(c.start), us(c.end)) for c in st.changeovers if us(c.start) >= a]
        if rows:
            cos[path] = rows
    return TwinFigures(counts, energy, cos)


def energy_close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
