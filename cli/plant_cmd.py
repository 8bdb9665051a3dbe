"""`twinline plant` verbs: `load FILE` (validate, then store transactionally) and `show` (what is stored)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from twinline.cli.db_cmd import ConfigOption, DsnOption, resolve_dsn, store_errors_to_cli
from twinline.cli.errors import CliError

app = typer.Typer(help="The plant model: load a plant YAML into the store, show the stored one.",
                  no_args_is_help=True)


@app.command()
def load(
    file: Annotated[Path, typer.Argument(help="Plant model YAML (see uns/plants/chongqing.yaml).",
                                         show_default=False)],
    dsn: DsnOption = None,
    config: ConfigOption = None,
) -> None:
    """Validate FILE and load it (one transaction; the same file twice adds no version)."""
    from twinline.ingest.errors import IngestError
    from twinline.ingest.plant_store import load_plant_into
    from twinline.uns.errors import PlantModelError
    from twinline.uns.plant import load_plant, parse_plant

    try:
        try:
            body = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            load_plant(file)  # raises the model's own PlantModelError naming the file and the reason
            raise
        plant = parse_plant(body, str(file))
    except PlantModelError as exc:
        raise CliError(" ".join(str(exc).split()), exit_code=2) from exc
    target = resolve_dsn(dsn, config)
    try:
        result = load_plant_into(target, plant, body)
    except IngestError as exc:
        raise store_errors_to_cli(exc) from exc
    state = f"new version {result.version}" if result.new_version else f"unchanged file, still version {result.version}"
    typer.echo(f"plant model {file}: {state}")
    typer.echo(f"assets:   {result.assets_added} added, {result.assets_updated} updated, "
               f"{result.assets_deactivated} deactivated")
    typer.echo(f"products: {result.products_added} added, {result.products_updated} updated, "
               f"{result.products_deactivated} deactivated")


@app.command()
def show(
    dsn: DsnOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Print the plant model stored in the database: version, lines with their stations, products."""
    from twinline.ingest.errors import IngestError
    from twinline.ingest.plant_store import plant_summary

    try:
        summary = plant_summary(resolve_dsn(dsn, config))
    except IngestError as exc:
        raise store_errors_to_cli(exc) from exc
    if summary is None:
        raise CliError("no plant model loaded yet: run `twinline plant load FILE`", exit_code=1)
    if as_json:
        data = asdict(summary)
        data["loaded_at"] = summary.loaded_at.isoformat()
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"plant model version {summary.version} of {summary.source} (sha256 {summary.sha256[:12]}), "
               f"loaded {summary.loaded_at.isoformat()}")
    typer.echo(f"site: {summary.site}; {len(summary.lines)} lines, {len(summary.products)} products, "
               f"{summary.inactive_assets} inactive assets")
    for ln in summary.lines:
        typer.echo(f"  {ln.path} ({ln.line_type or '-'}, {ln.name}): {len(ln.stations)} stations, "
                   f"{len(ln.key_processes)} key processes")
        for st in ln.stations:
            typer.echo(f"    {st}{'  [key process]' if st in ln.key_processes else ''}")
    for sku, name, family in summary.products:
        typer.echo(f"  product {sku}: {name}{f' ({family})' if family else ''}")
