"""`twinline ingest` verbs: run (the UNS subscriber workers), status (from the store), backfill (JSONL)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from twinline.cli.errors import CliError

app = typer.Typer(help="Ingest: the Unified Namespace into the store (subscribe, validate, COPY).",
                  no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="twinline.toml (default: TWINLINE_CONFIG)")]


def _settings(config: Path | None, *, need_mqtt: bool) -> Any:
    from twinline.uns.errors import SettingsError
    from twinline.uns.settings import load_settings

    try:
        settings = load_settings(config, os.environ)
    except SettingsError as exc:
        raise CliError(str(exc), 2) from None
    if not settings.dsn:
        raise CliError("no database configured: set TWINLINE_DSN or dsn in twinline.toml", 2)
    if need_mqtt and not settings.mqtt_url:
        raise CliError("no broker configured: set TWINLINE_MQTT_URL or mqtt_url in twinline.toml", 2)
    return settings


@app.command("run")
def run(
    workers: Annotated[int, typer.Option(min=1, max=64, help="MQTT clients / writer threads in this process")] = 1,
    group: Annotated[str | None, typer.Option(help="shared subscription group (default: ingest.group)")] = None,
    name: Annotated[str | None, typer.Option(help="client id prefix; keep it stable across restarts")] = None,
    site: Annotated[str | None, typer.Option(help="only this site's topics")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="serve Prometheus /metrics on this port")] = None,
    batch_rows: Annotated[int | None, typer.Option(help="samples per batch (default: ingest.batch_rows)")] = None,
    flush_s: Annotated[float | None, typer.Option(help="max batch age in s (default: ingest.flush_s)")] = None,
    receive_maximum: Annotated[int, typer.Option(min=1, max=65535, help="unacked messages in flight")] = 1000,
    session_expiry_s: Annotated[int, typer.Option(min=0, help="broker keeps a dead worker's session this long")
                                ] = 3600,
    heartbeat_s: Annotated[float, typer.Option(min=0.1, help="heartbeat row interval")] = 5.0,
    config: ConfigOpt = None,
) -> None:
    """Subscribe to $share/<group>/twinline/v1/# and store everything; SIGTERM / SIGINT flush and stop."""
    from twinline.ingest.batch import BatchPolicy
    from twinline.ingest.service import IngestConfig, IngestService
    from twinline.uns.errors import ContractError

    settings = _settings(config, need_mqtt=True)
    logging.getLogger("twinline").setLevel(settings.log_level)
    try:
        cfg = IngestConfig(dsn=settings.dsn, mqtt=settings.mqtt, group=group or settings.ingest_group,
                           workers=workers, name=name or "", site=site,
                           batch=BatchPolicy(batch_rows or settings.ingest_batch_rows,
                                             flush_s or settings.ingest_flush_s),
                           receive_maximum=receive_maximum, session_expiry_s=session_expiry_s,
                           heartbeat_s=heartbeat_s, metrics_port=metrics_port)
        _ = cfg.topic_filter
    except ContractError as exc:
        raise CliError(f"--{exc.field}: {exc.reason}", 2) from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        service = IngestService(cfg)
        service.start()
    except OSError as exc:  # e.g. the broker URL's ca_file cannot be read: a setting, not a crash
        raise CliError(f"ingest cannot start: {exc}", 2) from None
    typer.echo(f"ingest: {workers} worker(s) on {cfg.topic_filter} at {settings.mqtt}"
               + (f"; metrics on :{service.metrics_port}/metrics" if service.metrics_port else ""))
    try:
        while not stop.wait(1.0):
            pass
    finally:
        service.stop()
    done = [w.metrics for w in service.workers]
    typer.echo(f"ingest: stopped; {sum(m.messages for m in done)} messages, {sum(m.rows for m in done)} rows, "
               f"{sum(sum(m.dead_letters.values()) for m in done)} dead letters")


@app.command("status")
def status(config: ConfigOpt = None) -> None:
    """Workers (from their heartbeats): rates, lag, counts; dead letters by reason."""
    from twinline.ingest.db import connect
    from twinline.ingest.errors import StoreUnavailable
    from twinline.ingest.metrics import read_status
    from twinline.ingest.service import utc_now

    settings = _settings(config, need_mqtt=False)
    now = utc_now()
    try:
        with connect(settings.dsn) as conn:
            st = read_status(conn, now)
    except StoreUnavailable as exc:
        raise CliError(str(exc), 1) from None
    if not st.workers:
        typer.echo("no ingest worker has reported yet")
    for w in st.workers:
        m = w.metrics
        rate = f"{w.samples_per_s:.0f}" if w.samples_per_s is not None else "-"
        age_s = (now - w.seen_at).total_seconds()
        typer.echo(f"{w.worker}: seen {age_s:.0f} s ago; {rate} samples/s; messages {m.get('messages', 0)}, "
                   f"envelopes {m.get('envelopes', 0)}, duplicates {m.get('duplicates', 0)}, "
                   f"batches {m.get('batches', 0)}, lag {m.get('lag_s', 0.0):.3f} s, "
                   f"dead letters {sum(m.get('dead_letters', {}).values())}, db errors {m.get('db_errors', 0)}")
    if st.dead_letters:
        typer.echo("dead letters by reason (all time / last hour):")
        for code, (total, hour) in st.dead_letters.items():
            typer.echo(f"  {code}: {total} / {hour}")
    else:
        typer.echo("dead letters: none")


@app.command("backfill")
def backfill_cmd(
    file: Annotated[Path, typer.Argument(help='JSON lines {"topic": ..., "payload": envelope object or text}')],
    batch_rows: Annotated[int, typer.Option(min=1, help="samples per transaction")] = 20_000,
    config: ConfigOpt = None,
) -> None:
    """Load recorded messages through the same validation and writer as the live stream (re-runs add nothing)."""
    from twinline.ingest.backfill import backfill
    from twinline.ingest.db import connect
    from twinline.ingest.errors import StoreUnavailable
    from twinline.ingest.service import utc_now

    settings = _settings(config, need_mqtt=False)
    if not file.is_file():
        raise CliError(f"{file}: no such file", 2)
    try:
        with connect(settings.dsn) as conn, file.open("rb") as fh:
            counts = backfill(conn, _jsonl(fh, file), utc_now, batch_samples=batch_rows)
    except StoreUnavailable as exc:
        raise CliError(str(exc), 1) from None
    dead = ", ".join(f"{k} {v}" for k, v in sorted(counts.dead_letters.items())) or "none"
    typer.echo(f"backfill: {counts.messages} messages, {counts.envelopes} envelopes stored, {counts.duplicates} "
               f"already stored, {counts.rows} rows; dead letters: {dead}")


def _jsonl(fh: Any, path: Path) -> Any:
    import msgspec

    for n, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        try:
            obj = msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            raise CliError(f"{path}:{n}: not a JSON line ({exc})", 2) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("topic"), str) or "payload" not in obj:
            raise CliError(f'{path}:{n}: expected {{"topic": "...", "payload": ...}}', 2)
        payload = obj["payload"]
        yield obj["topic"], payload.encode() if isinstance(payload, str) else msgspec.json.encode(payload)
