"""`twinline demo`: everything that exists, end to end, on embedded services unless configured.

Steps: services (TWINLINE_DSN / TWINLINE_MQTT_URL when set, else an embedded PostgreSQL and a local
broker on free ports) -> `db migrate` -> `plant load` (the bundled Chongqing plant unless TWINLINE_PLANT)
-> history: the simulators' history mode for the last `--history-hours`, through ingest's validation
and writer -> KPIs per line over that history -> live: per line a simulator (OPC UA server + MQTT
devices) and an edge agent as their own processes, one ingest worker, and the live twin table every
`--every` seconds -> stop (edge agents first, so their queues drain, then ingest) -> what was stored.
The HTTP API and reports are not part of this build, so the demo does not offer them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from twinline.cli.errors import CliError

if TYPE_CHECKING:
    from twinline.uns.plant import Plant

_LIVE_SEED = 20261208


def _say(text: str) -> None:
    typer.echo(text)
    sys.stdout.flush()


def _services(stack: ExitStack, data_dir: Path) -> tuple[str, str, str]:
    """DSN, broker URL and a description of where they came from."""
    from twinline.uns.settings import load_settings

    settings = load_settings(None, os.environ)
    where = []
    dsn = settings.dsn
    if dsn is None:
        from twinline.cli.embedded import EmbeddedPostgres

        _say("starting an embedded PostgreSQL ...")
        dsn = stack.enter_context(EmbeddedPostgres(data_dir / "postgres")).dsn
        where.append("embedded PostgreSQL")
    else:
        where.append("configured database")
    mqtt = settings.mqtt_url
    if mqtt is None:
        from twinline.cli.embedded import LocalBroker

        broker = stack.enter_context(LocalBroker())
        mqtt = broker.url
        where.append(f"local {broker.kind} broker at {mqtt}")
    else:
        where.append("configured broker")
    return dsn, mqtt, ", ".join(where)


def _store(dsn: str, plant_path: Path | None) -> tuple[Plant, str]:
    from twinline.ingest.migrate import migrate
    from twinline.ingest.plant_store import load_plant_into
    from twinline.uns.plant import load_plant, sample_plant_path

    result = migrate(dsn)
    _say(f"store: {result.flavor}, schema version {result.version}"
         + (f", applied {len(result.applied)} migrations" if result.applied else ""))
    path = plant_path or sample_plant_path()
    plant = load_plant(path)
    loaded = load_plant_into(dsn, plant, path.read_text(encoding="utf-8"))
    _say(f"plant: {plant.site_name} ({len(plant.lines)} lines, {len(plant.stations)} stations), "
         f"model version {loaded.version}")
    return plant, str(path)


def _history(dsn: str, plant: Plant, start: datetime, end: datetime) -> None:
    from twinline.ingest.backfill import backfill
    from twinline.ingest.db import connect
    from twinline.simulators.history import run_history

    _say(f"history: simulating {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC for every line ...")
    for i, path in enumerate(plant.lines):
        t = time.perf_counter()
        result = run_history(plant, path, start, end, seed=1000 + i)
        with connect(dsn) as conn:
            counts = backfill(conn, result, clock=lambda: datetime.now(UTC))
        dead = sum(counts.dead_letters.values())
        _say(f"  {path}: {counts.envelopes} envelopes, {counts.rows} rows stored"
             + (f", {dead} dead letters" if dead else "") + f" in {time.perf_counter() - t:.1f} s")


def _kpis(dsn: str, plant: Plant, start: datetime, end: datetime, lang: str) -> None:
    from twinline.cli.kpi_cmd import print_line_summary

    _say(f"KPIs over the history ({start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC):")
    for path in plant.lines:
        print_line_summary(dsn, plant, path, start, end, as_of=end, lang=lang)


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _live(stack: ExitStack, dsn: str, mqtt: str, plant: Plant, plant_file: str, work: Path, duration_s: float | None,
          every_s: float, lang: str) -> None:
    from twinline.cli.embedded import free_port
    from twinline.cli.simline import write_edge_config
    from twinline.twin.live import LiveTwin, render

    exe = str(Path(sys.executable).with_name("twinline"))
    env = {**os.environ, "TWINLINE_DSN": dsn, "TWINLINE_MQTT_URL": mqtt, "TWINLINE_PLANT": plant_file}
    ingest_proc = stack.enter_context(_process([exe, "ingest", "run"], env, work / "ingest.log"))
    agents: list[subprocess.Popen[bytes]] = []
    for i, (path, line) in enumerate(plant.lines.items()):
        port = free_port()
        stack.enter_context(_process([exe, "sim", "run", "--line", path, "--speed", "1", "--port", str(port),
                                      "--mqtt", mqtt, "--seed", str(_LIVE_SEED + i)], env,
                                     work / f"sim-{line.id}.log"))
        config = write_edge_config(plant, path, f"opc.tcp://127.0.0.1:{port}", mqtt, work / f"edge-{line.id}")
        agents.append(stack.enter_context(_process([exe, "edge", "run", "--config", str(config)], env,
                                                   work / f"edge-{line.id}.log")))
        _say(f"live: {path}: simulator on opc.tcp://127.0.0.1:{port}, edge agent edge-{line.id}")
    _say(f"live: ingest worker pid {ingest_proc.pid}; logs in {work}")
    twin = stack.enter_context(LiveTwin(dsn, mqtt, plant, clock=lambda: datetime.now(UTC)))
    started = time.monotonic()
    try:
        while duration_s is None or time.monotonic() - started < duration_s:
            left = None if duration_s is None else duration_s - (time.monotonic() - started)
            time.sleep(every_s if left is None else max(0.0, min(every_s, left)))
            _say(f"live twin at {datetime.now(UTC):%H:%M:%S} UTC:\n{render(twin.snapshot(), lang=lang)}")
            for proc, name in [(ingest_proc, "ingest"), *((a, "edge agent") for a in agents)]:
                if proc.poll() is not None:
                    raise CliError(f"the {name} process stopped (exit {proc.returncode}); see its log in {work}")
    except KeyboardInterrupt:
        _say("stopping ...")
    for proc in agents:  # agents first: they flush their queues to the broker before ingest stops
        _stop(proc)
    time.sleep(2.0)  # let ingest commit the agents' last envelopes before it is stopped
    _stop(ingest_proc)


def _stored(dsn: str) -> None:
    from twinline.ingest.status import store_status

    st = store_status(dsn)
    rows = ", ".join(f"{k} {v}" for k, v in sorted(st.row_counts.items()) if k.endswith(("event", "sample")))
    _say(f"stored: {rows}; dead letters {st.dead_letters}")
    online = [a for a in st.edge_agents if a.online]
    _say(f"edge agents seen: {len(st.edge_agents)} ({len(online)} still online)")


def demo(
    duration: Annotated[float | None, typer.Option("--duration", min=0.0,
                                                   help="Seconds of live operation (default: until Ctrl-C).")] = None,
    history_hours: Annotated[float, typer.Option("--history-hours", min=0.0,
                                                 help="Hours of simulated history loaded first (0: none).")] = 24.0,
    every: Annotated[float, typer.Option("--every", min=1.0, help="Seconds between live twin tables.")] = 10.0,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Keep the database and logs here.")] = None,
    lang: Annotated[str, typer.Option("--lang", help="en or zh-CN.")] = "en",
    live: Annotated[bool, typer.Option("--live/--no-live", help="Run the lines live after the history.")] = True,
) -> None:
    """Run the three simulated lines through edge, broker, ingest, database and twin, and show the KPIs."""
    from twinline.uns.errors import UnsError

    if lang not in ("en", "zh-CN"):
        raise CliError(f"--lang must be en or zh-CN, not {lang!r}", exit_code=2)
    work = data_dir or Path(tempfile.mkdtemp(prefix="twinline-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        with ExitStack() as stack:
            dsn, mqtt, where = _services(stack, work)
            _say(f"services: {where}")
            plant_path = os.environ.get("TWINLINE_PLANT")
            plant, plant_file = _store(dsn, Path(plant_path) if plant_path else None)
            end = datetime.now(UTC).replace(microsecond=0)
            if history_hours > 0:
                start = end - timedelta(hours=history_hours)
                _history(dsn, plant, start, end)
                _kpis(dsn, plant, start, end, lang)
            if live:
                _live(stack, dsn, mqtt, plant, plant_file, work, duration, every, lang)
            _stored(dsn)
    except UnsError as exc:
        raise CliError(str(exc), exit_code=2) from exc
    _say("demo finished")
