"""The `twinline` command: one verb per box (DESIGN.md "Running it"); the composition root.

Each verb group lives in its own module and imports what it runs only when it runs, so `twinline
--help` stays fast and a missing optional dependency only affects the verb that needs it.
"""

from __future__ import annotations

import logging
import sys

import typer

from twinline.cli import api_cmd, db_cmd, demo_cmd, edge_cmd, ingest_cmd, kpi_cmd, plant_cmd, sim_cmd, twin_cmd
from twinline.cli.errors import CliError

app = typer.Typer(
    name="twinline",
    help="twinline: digital twin and MES data platform for electronics manufacturing lines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db_cmd.app, name="db")
app.add_typer(plant_cmd.app, name="plant")
app.add_typer(sim_cmd.app, name="sim")
app.add_typer(edge_cmd.app, name="edge")
app.add_typer(ingest_cmd.app, name="ingest")
app.add_typer(twin_cmd.app, name="twin")
app.command("kpi")(kpi_cmd.kpi)
app.command("demo")(demo_cmd.demo)
app.add_typer(api_cmd.api_app, name="api")
app.add_typer(api_cmd.report_app, name="report")
app.add_typer(api_cmd.keys_app, name="keys")


def main() -> None:
    """Entry point: user errors become one clear line on stderr and exit code 2, never a traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app()
    except CliError as exc:
        typer.echo(f"twinline: {exc}", err=True)
        sys.exit(exc.exit_code)
