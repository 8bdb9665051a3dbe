"""The `twinline db` and `twinline plant` verbs, through typer's runner and the installed command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twinline.cli.main import app
from twinline.ingest.migrate import discover

pytestmark = pytest.mark.integration

TWINLINE = Path(sys.executable).parent / "twinline"
LABELS = [m.label for m in discover()]
PLANT = """\
version: 1
site: {id: tst, name: Test site, timezone: Asia/Shanghai, epoch: 2026-01-05}
products:
  - {sku: A1}
calendar:
  shifts:
    - {name: day, start: "08:00", hours: 12}
areas:
  - id: assy
    lines:
      - id: l1
        stations:
          - {id: s1, protocol: opcua, ideal_cycle_s: {A1: 30}}
"""


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TWINLINE), *args], capture_output=True, text=True, timeout=120, check=False,
                          env=env)


@pytest.mark.smoke
def test_db_migrate_then_status(new_database: Callable[[], str]) -> None:
    dsn = new_database()
    runner = CliRunner()
    first = runner.invoke(app, ["db", "migrate", "--dsn", dsn, "--flavor", "postgresql"])
    assert first.exit_code == 0, first.output
    assert f"applied:        {', '.join(LABELS)}" in first.output
    second = runner.invoke(app, ["db", "migrate"], env={"TWINLINE_DSN": dsn, "TWINLINE_CONFIG": ""})
    assert second.exit_code == 0, second.output
    assert "applied:        nothing (already up to date)" in second.output
    assert f"schema version: {len(LABELS)}" in second.output
    text = runner.invoke(app, ["db", "status", "--dsn", dsn])
    assert text.exit_code == 0, text.output
    assert "flavor:         postgresql" in text.output
    assert "dead letters:   0" in text.output
    as_json = runner.invoke(app, ["db", "status", "--dsn", dsn, "--json"])
    data = json.loads(as_json.output)
    assert (data["flavor"], data["schema_version"], data["row_counts"]["schema_migration"]) == (
        "postgresql", len(LABELS), len(LABELS))


def test_plant_load_and_show(db_dsn: str, tmp_path: Path) -> None:
    plant = tmp_path / "plant.yaml"
    plant.write_text(PLANT, encoding="utf-8")
    runner = CliRunner()
    loaded = runner.invoke(app, ["plant", "load", str(plant), "--dsn", db_dsn])
    assert loaded.exit_code == 0, loaded.output
    assert "new version 1" in loaded.output and "assets:   4 added" in loaded.output
    again = runner.invoke(app, ["plant", "load", str(plant), "--dsn", db_dsn])
    assert "unchanged file, still version 1" in again.output
    shown = runner.invoke(app, ["plant", "show", "--dsn", db_dsn, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert (data["version"], [ln["stations"] for ln in data["lines"]]) == (1, [["tst/assy/l1/s1"]])


def test_bad_plant_file_is_one_line_and_exit_2(db_dsn: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(PLANT.replace("{A1: 30}", "{A1: -3}"), encoding="utf-8")
    proc = _run("plant", "load", str(bad), "--dsn", db_dsn)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"twinline: {bad}: areas[0].lines[0].stations[0].ideal_cycle_s.A1: ")
    assert "greater than 0" in lines[0]
    missing = _run("plant", "load", str(tmp_path / "nope.yaml"), "--dsn", db_dsn)
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr and "Traceback" not in missing.stderr


def test_unreachable_database_is_one_line_without_password() -> None:
    proc = _run("db", "status", "--dsn", "postgresql://bob:s3cret-pw@127.0.0.1:1/x?connect_timeout=2")
    assert proc.returncode == 2
    assert proc.stderr.startswith("twinline: cannot connect to PostgreSQL at bob@127.0.0.1:1/x")
    assert "s3cret-pw" not in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
