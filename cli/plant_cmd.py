"""`twinline plant` verbs."""

from __future__ import annotations

import typer

app = typer.Typer(help="plant (being built).", no_args_is_help=True)
