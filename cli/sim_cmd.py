"""`twinline sim` verbs."""

from __future__ import annotations

import typer

app = typer.Typer(help="sim (being built).", no_args_is_help=True)
