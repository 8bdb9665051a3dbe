"""`twinline sim run` and `twinline sim history` as a user runs them, and history loaded by `ingest backfill`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from asyncua import Client

from twinline.ingest.plant_store import load_plant_into
from twinline.uns.envelope import decode
from twinline.uns.plant import load_plant, sample_plant_path
from twinline.uns.topics import parse_topic

pytestmark = pytest.mark.integration

TWINLINE = str(Path(sys.executable).with_name("twinline"))


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TWINLINE_")}, **extra}


@pytest.mark.smoke
def test_history_to_jsonl_and_backfill_into_the_store(db_dsn: str, tmp_path: Path) -> None:
    out, truth = tmp_path / "h.jsonl", tmp_path / "truth.json"
    done = subprocess.run([TWINLINE, "sim", "history", "--days", "0.05", "--line", "laptop", "--seed", "3",
                           "--out", str(out), "--truth", str(truth)], env=_env(), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    samples = 0
    lines = out.read_text().splitlines()
    assert lines
    for line in lines:
        doc = json.loads(line)
        parsed = parse_topic(doc["topic"])
        assert parsed.asset.line == "nb1"
        samples += len(decode(json.dumps(doc["payload"]).encode(), parsed.channel).samples)
    assert "cq/terminal/nb1" in json.loads(truth.read_text())

    plant_path = sample_plant_path()
    load_plant_into(db_dsn, load_plant(plant_path), plant_path.read_text())
    loaded = subprocess.run([TWINLINE, "ingest", "backfill", str(out)], env=_env(TWINLINE_DSN=db_dsn),
                            capture_output=True, text=True, timeout=120, check=False)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    with psycopg.connect(db_dsn) as conn:
        stored = sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                     for t in ("state_event", "count_event", "process_sample", "product_event", "alarm_event",
                               "energy_sample"))
        envelopes = conn.execute("SELECT count(*) FROM envelope_ledger").fetchone()
    assert stored == samples
    assert envelopes is not None and envelopes[0] == len(lines)
    again = subprocess.run([TWINLINE, "ingest", "backfill", str(out)], env=_env(TWINLINE_DSN=db_dsn),
                           capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    with psycopg.connect(db_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM envelope_ledger").fetchone()
    assert row is not None and row[0] == len(lines)  # a re-run adds nothing


async def test_sim_run_serves_a_browsable_line() -> None:
    with subprocess.Popen([TWINLINE, "sim", "run", "--line", "wafer", "--speed", "60", "--duration", "30"],
                          env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert "OPC UA opc.tcp://" in first, first
            endpoint = first.split("OPC UA ")[1].split()[0].rstrip(",")
            async with Client(endpoint, timeout=10) as client:
                idx = await client.get_namespace_index("urn:twinline:sim:fab12")
                node = client.get_node(f"ns={idx};s=fab12.litho.State")
                assert await node.read_value() in {"PRD", "SBY", "ENG", "SDT", "UDT", "NST"}
        finally:
            proc.terminate()
            proc.wait(20)


def test_sim_with_an_unknown_line_is_one_clear_error() -> None:
    done = subprocess.run([TWINLINE, "sim", "run", "--line", "cq/x/y", "--duration", "1"], env=_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "no line 'cq/x/y'" in done.stderr and "Traceback" not in done.stderr
