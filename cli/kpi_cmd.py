"""`twinline kpi`: KPIs of an asset and period for engineers."""

from __future__ import annotations

from twinline.cli.errors import CliError


def kpi() -> None:
    """Print the KPIs of an asset for a period (being built)."""
    raise CliError("'twinline kpi' is not available yet", exit_code=2)
