"""Plan KPIs (twin.planread) hand-computed, and the `twinline kpi` command on a seeded store."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests import twin_fixture as tf
from twinline.twin.planread import plan_kpis

pytestmark = pytest.mark.integration

DAY2 = timedelta(days=1)
TWINLINE = str(Path(sys.executable).with_name("twinline"))


def _seed_two_days(conn: object, site: str) -> None:
    """Every station PRD (re-announced on day 2); s1 and final-test make 10,000 A in shift D of day 1, 12,000 day 2."""
    stations = [f"{site}/ar/l1/{s}" for s in ("s1", "s2", "final-test")]
    tf.insert_states(conn, [(at, s, "PRD", "run") for s in stations  # type: ignore[arg-type]
                           for at in (tf.DAY - timedelta(hours=1), tf.D_START + DAY2 + timedelta(minutes=1))])
    rows = []
    for offset, total in ((timedelta(0), 10_000), (DAY2, 12_000)):
        for i, good in enumerate(tf.spread(total, 480)):
            for s in (stations[0], stations[2]):
                rows.append((tf.D_START + offset + timedelta(minutes=i, seconds=30), s, "A", good, 0))
    tf.insert_counts(conn, rows)  # type: ignore[arg-type]


def test_plan_kpis_hand_computed(any_db_dsn: str, uid: str) -> None:
    site = f"t{uid}"
    plant = tf.load(any_db_dsn, site)
    with tf.connect(any_db_dsn) as conn:
        _seed_two_days(conn, site)
        plan = plan_kpis(conn, plant, f"{site}/ar/l1", baseline=(tf.D_START, tf.D_END),
                         current=(tf.D_START + DAY2, tf.D_END + DAY2), as_of=tf.DAY + timedelta(days=5))
    # line PBT = 480 - 60 (lunch) = 420 min in both; line ideal cycle of A = max(1.0, 1.0, 0.8) = 1.0 s
    assert plan.capacity.uplift == pytest.approx(0.2)
    assert plan.capacity.output_baseline_per_h == pytest.approx(10_000 * 1.0 / 7)
    assert plan.oee_baseline == pytest.approx(10_000 / (420 * 60))
    assert plan.oee_current == pytest.approx(12_000 / (420 * 60))
    assert plan.oee_uplift.relative == pytest.approx(0.2)
    # key processes s1 and final-test: APT 420 min both periods; 1 - (420/12000) / (420/10000) = 1/6
    assert plan.unit_process_time.reduction == pytest.approx(1 / 6)
    assert set(plan.unit_process_time.per_process) == {f"{site}/ar/l1/s1", f"{site}/ar/l1/final-test"}
    assert plan.key_process_digitalization == 1.0
    assert plan.equipment_networking == 1.0
    assert plan.automatic_data_collection == pytest.approx(5 / 7)  # s2 sent no count and no energy
    assert plan.digitalized_equipment == 1.0
    assert plan.business.digital == ("production", "equipment")
    assert plan.changeover.reduction is None  # no changeover in either period


def _kpi(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TWINLINE, "kpi", "--dsn", dsn, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_kpi_command_json_csv_and_errors(plain_db_dsn: str, uid: str) -> None:
    site = f"t{uid}"
    tf.load(plain_db_dsn, site)
    s1 = f"{site}/ar/l1/s1"
    with tf.connect(plain_db_dsn) as conn:
        tf.classic_shift(conn, s1)
    done = _kpi(plain_db_dsn, "--asset", s1, "--from", "2026-03-02T08:00:00+08:00",
                "--to", "2026-03-02T16:00:00+08:00", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    iso = data["whole"]["stations"][s1]["iso"]
    assert round(iso["oee"], 4) == 0.7479 and iso["counts"]["pq"] == 19_271
    assert data["whole"]["stations"][s1]["elements"]["pbt_s"] == 25_200.0

    day = _kpi(plain_db_dsn, "--asset", f"{site}/ar/l1", "--from", "2026-03-02", "--to", "2026-03-02", "--csv",
               "--shift")
    assert day.returncode == 0, day.stderr
    lines = day.stdout.strip().splitlines()
    assert lines[0].startswith("period,t0,t1,station,availability")
    assert lines[1].startswith("period,2026-03-01T16:00:00+00:00,2026-03-02T16:00:00+00:00,")
    assert any(",unknown," in line for line in lines)  # stations without data: unknown, never 0 or 1

    text = _kpi(plain_db_dsn, "--asset", s1, "--from", "2026-03-02", "--to", "2026-03-02", "--lang", "zh-CN")
    assert text.returncode == 0 and "可用率" in text.stdout and "0.7479" in text.stdout

    for args, needle in ((("--asset", f"{site}/ar/nope", "--from", "2026-03-02", "--to", "2026-03-02"),
                          "unknown asset"),
                         (("--asset", s1, "--from", "yesterday", "--to", "2026-03-02"), "--from"),
                         (("--asset", s1, "--from", "2026-03-02T08:00:00", "--to", "2026-03-02"), "offset")):
        bad = _kpi(plain_db_dsn, *args)
        assert bad.returncode == 2 and needle in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
    gone = _kpi("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2", "--asset", s1, "--from", "2026-03-02",
                "--to", "2026-03-02")
    assert gone.returncode == 2 and "unreachable" in gone.stderr and len(gone.stderr.strip().splitlines()) == 1
