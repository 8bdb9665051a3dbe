"""`twinline demo` end to end: configured services, and the embedded fallbacks of a fresh machine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TWINLINE = str(Path(sys.executable).with_name("twinline"))


def _run(args: list[str], env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TWINLINE, "demo", *args], env=env, capture_output=True, text=True, timeout=timeout_s,
                          check=False)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TWINLINE_")}


def test_demo_on_configured_services(new_database: Callable[[], str], mqtt_url: str, tmp_path: Path) -> None:
    dsn = new_database()
    env = {**_clean_env(), "TWINLINE_DSN": dsn, "TWINLINE_MQTT_URL": mqtt_url}
    done = _run(["--duration", "45", "--history-hours", "2", "--every", "15", "--data-dir", str(tmp_path)], env,
                timeout_s=280)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in out + done.stderr
    assert "configured database" in out and "configured broker" in out
    assert "KPIs over the history" in out
    for line in ("cq/display/amoled1", "cq/fab/fab12", "cq/terminal/nb1"):
        assert line in out
    assert out.count("live twin") >= 2, out  # the live table was printed more than once
    with psycopg.connect(dsn) as conn:
        live_rows = conn.execute(
            "SELECT count(DISTINCT source) FROM envelope_ledger WHERE source LIKE 'edge-%'").fetchone()
        assert live_rows is not None and live_rows[0] >= 3, "no live data arrived through edge agents"
        # the shared test broker may hold other tests' retained births: count the demo's own agents
        agents = conn.execute("SELECT count(*) FROM edge_agent WHERE agent IN ('edge-amoled1', 'edge-fab12', "
                              "'edge-nb1')").fetchone()
        assert agents is not None and agents[0] == 3
    stored = re.search(r"stored: .*state_event (\d+)", out)
    assert stored and int(stored.group(1)) > 0


@pytest.mark.smoke
def test_demo_on_embedded_services(tmp_path: Path) -> None:
    """Nothing configured: an embedded PostgreSQL and a local broker start, and the demo runs through."""
    done = _run(["--duration", "20", "--history-hours", "1", "--every", "10", "--data-dir", str(tmp_path)],
                _clean_env(), timeout_s=280)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "embedded PostgreSQL" in out
    assert "KPIs over the history" in out and "stored:" in out
    assert "Traceback" not in out + done.stderr
