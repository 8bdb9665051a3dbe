"""`twinline twin` verbs: `run` starts the live twin and prints a line summary every few seconds."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from twinline.cli.errors import CliError

app = typer.Typer(help="The live twin: current state, OEE so far, plan vs actual per line.", no_args_is_help=True)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


@app.command()
def run(
    every_s: Annotated[float, typer.Option("--every", help="Seconds between printed tables.")] = 5.0,
    lang: Annotated[str, typer.Option("--lang", help="Labels: en or zh-CN.")] = "en",
    count: Annotated[int, typer.Option("--count", help="Stop after this many tables (0 = run until Ctrl-C).")] = 0,
    dsn: Annotated[str | None, typer.Option("--dsn", help="PostgreSQL DSN (seed; default: settings).",
                                            show_default=False)] = None,
    mqtt_url: Annotated[str | None, typer.Option("--mqtt-url", help="Broker URL (default: settings / "
                                                 "TWINLINE_MQTT_URL).", show_default=False)] = None,
    config: Annotated[Path | None, typer.Option("--config", help="twinline.toml.", show_default=False)] = None,
) -> None:
    """Run the live twin: subscribe to the UNS, seed the running shift from the database, print tables."""
    from twinline.twin import store
    from twinline.twin.errors import StoreError, TwinError
    from twinline.twin.live import LiveTwin, render
    from twinline.uns.errors import PlantModelError, SettingsError
    from twinline.uns.plant import parse_plant
    from twinline.uns.settings import load_settings

    if lang not in ("en", "zh-CN"):
        raise CliError(f"--lang must be en or zh-CN, not {lang!r}", 2)
    if every_s <= 0:
        raise CliError("--every must be positive", 2)
    try:
        settings = load_settings(config, os.environ)
    except SettingsError as exc:
        raise CliError(str(exc), 2) from exc
    target_dsn = dsn or settings.dsn
    broker = mqtt_url or settings.mqtt_url
    if not target_dsn or not broker:
        raise CliError("the live twin needs a database (--dsn / TWINLINE_DSN) and a broker (--mqtt-url / "
                       "TWINLINE_MQTT_URL)", 2)
    try:
        with store.connect(target_dsn) as conn:
            head = store.plant_body(conn)
        if head is None:
            raise CliError("no plant model in the store: run `twinline plant load FILE` first", 1)
        plant = parse_plant(head[1], f"plant model version {head[0]}")
        twin = LiveTwin(target_dsn, broker, plant, clock=_wall_clock,
                        client_id=f"twinline-twin-{uuid.uuid4().hex[:8]}")
        twin.start()
    except (StoreError, TwinError, PlantModelError) as exc:
        raise CliError(" ".join(str(exc).split()), 2) from exc
    printed = 0
    try:
        while count == 0 or printed < count:
            typer.echo(render(twin.snapshot(), lang))
            typer.echo("")
            printed += 1
            if count == 0 or printed < count:
                time.sleep(every_s)
    except KeyboardInterrupt:
        pass
    finally:
        twin.stop()
