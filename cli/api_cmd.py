"""`twinline api`, `report` and `keys`: their issue has not landed yet; each says so and exits 2."""

from __future__ import annotations

import typer

from twinline.cli.errors import CliError

api_app = typer.Typer(help="HTTP API and dashboard (not available yet).", no_args_is_help=True)
report_app = typer.Typer(help="Signed digitalization-level reports (not available yet).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (not available yet).", no_args_is_help=True)


def _not_yet(what: str) -> None:
    raise CliError(f"'{what}' is not available yet: the API issue has not landed in this build", exit_code=2)


@api_app.command("run")
def api_run() -> None:
    """Run the HTTP API and dashboard (not available yet)."""
    _not_yet("twinline api run")


@report_app.command("create")
def report_create() -> None:
    """Create a signed report (not available yet)."""
    _not_yet("twinline report create")


@report_app.command("verify")
def report_verify() -> None:
    """Verify a signed report (not available yet)."""
    _not_yet("twinline report verify")


@keys_app.command("create")
def keys_create() -> None:
    """Create an API key (not available yet)."""
    _not_yet("twinline keys create")


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (not available yet)."""
    _not_yet("twinline keys list")


@keys_app.command("revoke")
def keys_revoke() -> None:
    """Revoke an API key (not available yet)."""
    _not_yet("twinline keys revoke")
