"""`twinline ingest` verbs."""

from __future__ import annotations

import typer

app = typer.Typer(help="ingest (being built).", no_args_is_help=True)
