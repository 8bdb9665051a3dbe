"""Backfill through the same validation and writer: API with envelopes, CLI with a JSONL file; `ingest status`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.integration.ingest_helpers import add_stations, counts, process_envelope, scalar, stream
from twinline.ingest.backfill import backfill
from twinline.uns.topics import Channel, data_topic

pytestmark = pytest.mark.integration

TWINLINE = Path(sys.executable).parent / "twinline"
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def test_backfill_of_envelopes_is_idempotent_and_dead_letters_unknown_stations(db_dsn: str, uid: str) -> None:
    stations = add_stations(db_dsn, f"site{uid}", 2)
    items = [(data_topic(stations[i % 2], Channel.PROCESS), process_envelope("sim", i, 10)) for i in range(50)]
    items.append(("twinline/v1/nosuch/fab/L1/st0/process", process_envelope("sim", 999, 10)))
    with psycopg.connect(db_dsn) as conn:
        first = backfill(conn, items, lambda: NOW, batch_samples=120)
        again = backfill(conn, items, lambda: NOW, batch_samples=120)
    assert (first.envelopes, first.rows, first.duplicates, dict(first.dead_letters)) == (50, 500, 0,
                                                                                         {"unknown_asset": 1})
    assert first.batches > 1
    assert (again.envelopes, again.rows, again.duplicates) == (0, 0, 50)
    assert counts(db_dsn) == (50, 500, 500)


def test_backfill_cli_reads_jsonl_and_status_prints_it(db_dsn: str, uid: str, tmp_path: Path) -> None:
    stations = add_stations(db_dsn, f"site{uid}", 1)
    lines = [json.dumps({"topic": t, "payload": json.loads(p)}) for t, p in stream(stations, 30, samples=2)]
    lines.append(json.dumps({"topic": data_topic(stations[0], Channel.PROCESS), "payload": "{broken"}))
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "TWINLINE_DSN": db_dsn}
    out = subprocess.run([str(TWINLINE), "ingest", "backfill", str(path)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "31 messages, 30 envelopes stored, 0 already stored, 60 rows; dead letters: malformed 1" in out.stdout
    assert counts(db_dsn) == (30, 60, 60)
    assert scalar(db_dsn, "SELECT count(*) FROM dead_letter WHERE reason LIKE 'malformed:%%'") == 1
    status = subprocess.run([str(TWINLINE), "ingest", "status"], env=env, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert "no ingest worker has reported yet" in status.stdout
    assert "malformed: 1 / 1" in status.stdout


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINLINE_")}
    out = subprocess.run([str(TWINLINE), "ingest", "run"], env=env, capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == "twinline: no database configured: set TWINLINE_DSN or dsn in twinline.toml"
