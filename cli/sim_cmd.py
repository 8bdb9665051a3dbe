"""`twinline sim` verbs: `run` (a line live over OPC UA / MQTT) and `history` (N days as JSON lines)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from twinline.cli.errors import CliError

if TYPE_CHECKING:
    from twinline.uns.plant import Plant

app = typer.Typer(help="Line simulators: run a line live, or generate history.", no_args_is_help=True)

PlantOption = Annotated[Path | None, typer.Option("--plant", envvar="TWINLINE_PLANT",
                                                  help="Plant model YAML (default: the bundled Chongqing sample).")]
LineOption = Annotated[str, typer.Option("--line", help="panel | wafer | laptop, or a line path like cq/fab/fab12.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed (same seed, same run).")]


def _plant(path: Path | None) -> Plant:
    from twinline.uns.errors import PlantModelError
    from twinline.uns.plant import load_plant, sample_plant_path

    try:
        return load_plant(path or sample_plant_path())
    except PlantModelError as exc:
        raise CliError(" ".join(str(exc).split()), exit_code=2) from exc


def resolve_line(plant: Plant, line: str) -> str:
    """A line type (first line of that type) or a line path -> line path."""
    for path, ln in plant.lines.items():
        if line in (path, ln.type.value, ln.id):
            return str(path)
    raise CliError(f"no line {line!r} in the plant (lines: {', '.join(plant.lines)})", exit_code=2)


@app.command()
def run(
    line: LineOption = "laptop",
    speed: Annotated[float, typer.Option("--speed", min=0.01, help="Simulated seconds per wall second.")] = 60.0,
    plant_file: PlantOption = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="OPC UA port (0 = a free port).")] = 0,
    mqtt: Annotated[str | None, typer.Option("--mqtt", envvar="TWINLINE_MQTT_URL",
                                             help="Broker URL for the MQTT devices (none: no MQTT).")] = None,
    seed: SeedOption = 0,
    duration: Annotated[float | None, typer.Option("--duration", min=0.0, help="Stop after S wall seconds.")] = None,
) -> None:
    """Run one line live: prints the OPC UA endpoint, runs until Ctrl-C or --duration."""
    from twinline.simulators.errors import SimError
    from twinline.simulators.live import serve_line, system_clock

    logging.getLogger("asyncua").setLevel(logging.ERROR)  # its security-policy warnings are noise here
    plant = _plant(plant_file)
    path = resolve_line(plant, line)

    async def main() -> None:
        live = serve_line(plant, path, speed=speed, seed=seed, port=port, mqtt_url=mqtt, start=system_clock(),
                          warmup_s=4 * 3600.0)
        async with live:
            typer.echo(f"line {path}: OPC UA {live.endpoint} (namespace urn:twinline:sim:{live.line.id}), "
                       f"speed x{speed:g}" + (f", MQTT devices on {live.mqtt.url}" if live.mqtt else ""))
            if duration is None:
                await live.run_forever()
            else:
                await asyncio.sleep(duration)
            totals = live.truth.totals()[str(live.line.stations[-1].path)]
            typer.echo(f"stopped at simulated {live.sim_time().isoformat()}: line output {totals['good']} good")

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        typer.echo("stopped")
    except SimError as exc:
        raise CliError(str(exc), exit_code=1) from exc


@app.command()
def history(
    days: Annotated[float, typer.Option("--days", min=0.001, help="Days to simulate, ending now.")] = 30.0,
    line: Annotated[list[str] | None, typer.Option("--line", help="Lines (repeatable; default: every line).")] = None,
    plant_file: PlantOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="JSON lines file (default: stdout).")] = None,
    seed: SeedOption = 0,
    truth: Annotated[Path | None, typer.Option("--truth", help="Also write the ground truth JSON here.")] = None,
) -> None:
    """Generate history as fast as possible: JSON lines {topic, payload} with the contract envelopes."""
    from rich.progress import Progress

    from twinline.simulators.history import run_history
    from twinline.uns.envelope import encode

    plant = _plant(plant_file)
    paths = [resolve_line(plant, ln) for ln in line] if line else list(plant.lines)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=days)
    sink = out.open("w", encoding="utf-8") if out else sys.stdout
    truths = {}
    try:
        with Progress(transient=out is None, disable=out is None) as bar:
            for path in paths:
                task = bar.add_task(path, total=1000)
                result = run_history(plant, path, start, end, seed)
                for topic, envelope in result:
                    sink.write(json.dumps({"topic": topic, "payload": json.loads(encode(envelope))}) + "\n")
                    bar.update(task, completed=int(result.progress * 1000))
                bar.update(task, completed=1000)
                truths[path] = result.truth.to_json()
    finally:
        if out:
            sink.close()
    if truth:
        truth.write_text(json.dumps(truths), encoding="utf-8")
    if out:
        typer.echo(f"wrote {out} ({', '.join(paths)}: {start.isoformat()} .. {end.isoformat()})")
