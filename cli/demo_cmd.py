"""`twinline demo`: everything that exists, on embedded services unless configured."""

from __future__ import annotations

from twinline.cli.errors import CliError


def demo() -> None:
    """Run the demo (being built)."""
    raise CliError("'twinline demo' is being built", exit_code=2)
