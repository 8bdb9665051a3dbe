"""`twinline db` verbs: `migrate` (idempotent schema migrations) and `status` (what the store holds).

The DSN is `--dsn` when given, else the program settings (`dsn` in twinline.toml, `TWINLINE_DSN`,
`TWINLINE_DSN_FILE`); it is never printed with its password.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from twinline.cli.errors import CliError

if TYPE_CHECKING:
    from twinline.ingest.migrate import FlavorChoice
    from twinline.ingest.status import StoreStatus

app = typer.Typer(help="The store: schema migrations and status.", no_args_is_help=True)

DsnOption = Annotated[str | None, typer.Option("--dsn", help="PostgreSQL DSN (default: settings / TWINLINE_DSN).",
                                               show_default=False)]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="twinline.toml (default: TWINLINE_CONFIG or "
                                                   "./twinline.toml).", show_default=False)]


def resolve_dsn(dsn: str | None, config: Path | None) -> str:
    """`--dsn` when given, else the settings' DSN; none at all is a usage error (exit 2)."""
    if dsn:
        return dsn
    from twinline.uns.errors import SettingsError
    from twinline.uns.settings import load_settings

    try:
        settings = load_settings(config, os.environ)
    except SettingsError as exc:
        raise CliError(str(exc), exit_code=2) from exc
    if not settings.dsn:
        raise CliError("no database configured: pass --dsn, set TWINLINE_DSN or put dsn in twinline.toml", 2)
    return str(settings.dsn)


def store_errors_to_cli(exc: Exception) -> CliError:
    """Map the ingest exception tree to a one-line CLI error (2 = not available, 1 = failed)."""
    from twinline.ingest.errors import StoreUnavailable

    return CliError(" ".join(str(exc).split()), exit_code=2 if isinstance(exc, StoreUnavailable) else 1)


@app.command()
def migrate(
    dsn: DsnOption = None,
    config: ConfigOption = None,
    flavor: Annotated[str, typer.Option(help="auto | postgresql | timescaledb (auto: timescaledb when the "
                                        "extension is usable).")] = "auto",
) -> None:
    """Apply pending schema migrations (idempotent: a second run applies nothing)."""
    from twinline.ingest.db import describe_dsn
    from twinline.ingest.errors import IngestError
    from twinline.ingest.migrate import migrate as run_migrate

    choices: dict[str, FlavorChoice] = {"auto": "auto", "postgresql": "postgresql", "timescaledb": "timescaledb"}
    if flavor not in choices:
        raise CliError(f"--flavor must be auto, postgresql or timescaledb, not {flavor!r}", exit_code=2)
    target = resolve_dsn(dsn, config)
    try:
        result = run_migrate(target, choices[flavor])
    except IngestError as exc:
        raise store_errors_to_cli(exc) from exc
    typer.echo(f"database:       {describe_dsn(target)}")
    typer.echo(f"flavor:         {result.flavor}")
    typer.echo(f"applied:        {', '.join(result.applied) if result.applied else 'nothing (already up to date)'}")
    typer.echo(f"schema version: {result.version}")


@app.command()
def status(
    dsn: DsnOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Print the store flavor, schema version, row counts, dead letters, background jobs and edge agents."""
    from twinline.ingest.errors import IngestError
    from twinline.ingest.status import store_status

    try:
        st = store_status(resolve_dsn(dsn, config))
    except IngestError as exc:
        raise store_errors_to_cli(exc) from exc
    if as_json:
        typer.echo(json.dumps(st.as_dict(), indent=2))
        return
    for line in _status_lines(st):
        typer.echo(line)


def _status_lines(st: StoreStatus) -> list[str]:
    ts = f" (TimescaleDB {st.timescaledb_version})" if st.timescaledb_version else ""
    lines = [
        f"database:       {st.database}",
        f"flavor:         {st.flavor or 'not migrated'}{ts}",
        f"schema version: {st.schema_version}",
        f"plant model:    {'version ' + str(st.plant_version) if st.plant_version else 'none loaded'}",
        f"dead letters:   {st.dead_letters}",
        "row counts" + (" (~ = estimate):" if st.approximate else ":"),
    ]
    width = max((len(t) for t in st.row_counts), default=0)
    lines += [f"  {t:<{width}}  {'~' if t in st.approximate else ''}{n}" for t, n in st.row_counts.items()]
    online = sum(1 for a in st.edge_agents if a.online)
    lines.append(f"edge agents:    {online} online, {len(st.edge_agents) - online} offline")
    lines += [f"  offline: {a.agent} ({a.line}) since {a.changed_at.isoformat()}" for a in st.edge_agents
              if not a.online]
    if st.timescaledb_version:
        lines.append(f"background jobs: {len(st.jobs)}, {len(st.failed_jobs)} FAILED on their last run")
        lines += [_job_line(j) for j in st.failed_jobs]
    return lines


def _job_line(job: Any) -> str:
    on = f" on {job.relation}" if job.relation else ""
    error = f": {job.last_error}" if job.last_error else ""
    return f"  FAILED job {job.job_id} {job.name}{on} ({job.total_failures}/{job.total_runs} runs failed){error}"
