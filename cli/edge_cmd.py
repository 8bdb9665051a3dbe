"""`twinline edge` verbs: run the agent, show its status, propose a tag map by browsing a server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from twinline.cli.errors import CliError

app = typer.Typer(help="Edge agent: OPC UA / MQTT devices -> durable queue -> MQTT Unified Namespace.",
                  no_args_is_help=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="edge.yaml of this agent")]


def _load(config: Path):  # type: ignore[no-untyped-def]
    from twinline.edge.config import load_config
    from twinline.edge.errors import ConfigError
    from twinline.uns.errors import SettingsError
    from twinline.uns.settings import load_settings

    try:
        settings = load_settings(None, os.environ)
    except SettingsError as exc:
        raise CliError(str(exc), 2) from None
    if not config.is_file():
        raise CliError(f"config file {config} does not exist", 2)
    try:
        return load_config(config, mqtt_url=settings.mqtt_url)
    except ConfigError as exc:
        raise CliError(f"invalid edge config: {exc}", 2) from None


@app.command("run")
def run(config: ConfigOpt) -> None:
    """Run the edge agent until SIGTERM / Ctrl-C."""
    import asyncio
    import logging
    import signal
    import threading

    from twinline.edge.agent import run_agent
    from twinline.edge.errors import EdgeError

    cfg, tagmap = _load(config)
    logging.getLogger().setLevel(cfg.log_level)
    logging.getLogger("twinline").setLevel(cfg.log_level)
    for noisy in ("asyncua",):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))

    def hard_exit() -> None:  # the queue is committed: exiting hard loses nothing, it only skips the goodbyes
        logging.getLogger("twinline.edge").error("agent %s: did not stop within 20 s; exiting", cfg.agent)
        os._exit(1)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            stop.set()
            timer = threading.Timer(20.0, hard_exit)
            timer.daemon = True
            timer.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        await run_agent(cfg, tagmap, stop=stop)

    try:
        asyncio.run(main())
    except EdgeError as exc:
        raise CliError(f"edge agent {cfg.agent} failed: {exc}", 1) from None


@app.command("status")
def status(config: ConfigOpt,
           as_json: Annotated[bool, typer.Option("--json", help="print the raw status JSON")] = False) -> None:
    """Queue depth, rates, last value per source and errors of the agent of this config."""
    import json
    import urllib.error
    import urllib.request
    from datetime import UTC, datetime

    from twinline.edge.health import format_status, read_status

    cfg, _ = _load(config)
    snap = None
    if cfg.health.metrics_port:
        try:
            url = f"http://{cfg.health.metrics_host}:{cfg.health.metrics_port}/status"
            with urllib.request.urlopen(url, timeout=3) as resp:
                snap = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            snap = None  # agent not answering: fall back to its status file
    if snap is None:
        path = cfg.state_path(cfg.health.status_file)
        try:
            snap = read_status(path)
        except (OSError, ValueError) as exc:
            raise CliError(f"no status of agent {cfg.agent}: cannot read {path} ({exc}); is it running?", 1) from None
    typer.echo(json.dumps(snap, indent=1) if as_json else format_status(snap, datetime.now(UTC)))


@app.command("browse")
def browse(endpoint: Annotated[str, typer.Option("--endpoint", help="opc.tcp://host:port/path")],
           line: Annotated[str, typer.Option("--line", help="site/area/line of the stations")] = "site/area/line",
           source: Annotated[str, typer.Option("--source", help="source name in edge.yaml")] = "opcua",
           username: Annotated[str | None, typer.Option("--username")] = None,
           password_file: Annotated[Path | None, typer.Option("--password-file")] = None,
           depth: Annotated[int, typer.Option("--depth", help="levels below Objects")] = 5) -> None:
    """Propose a tag map (YAML on stdout) from an OPC UA server's address space."""
    import asyncio

    from twinline.edge.browse import propose_tagmap
    from twinline.edge.errors import SourceError
    from twinline.edge.tagmap import dump_tagmap
    from twinline.uns.errors import ContractError
    from twinline.uns.topics import AssetPath

    try:
        line_path = AssetPath.parse(line, "--line")
    except ContractError as exc:
        raise CliError(str(exc), 2) from None
    password = password_file.read_text().strip() if password_file else None
    try:
        proposal = asyncio.run(propose_tagmap(endpoint, line_path, source, username=username, password=password,
                                              max_depth=depth))
    except SourceError as exc:
        raise CliError(str(exc), 1) from None
    typer.echo(dump_tagmap(proposal["opcua"]), nl=False)
