"""`store_status`: flavor, schema version, row counts, dead letters, background jobs, edge agents."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

import twinline.ingest.status as status_mod
from twinline.ingest.migrate import discover
from twinline.ingest.status import store_status

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 10, 6, 0, tzinfo=UTC)


def _fill(dsn: str) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO count_event (ts, asset, good, source, seq) VALUES (%s, 'a/b/c/d', 1, 's', %s)",
                        [(T0, i) for i in range(5)])
        cur.executemany("INSERT INTO dead_letter (topic, payload, reason) VALUES ('t', %s, 'bad json')",
                        [(b"{",)] * 3)
        cur.execute("INSERT INTO edge_agent (agent, line, online, changed_at) VALUES "
                    "('e1', 'a/b/c', true, %s), ('e2', 'a/b/x', false, %s)", (T0, T0))


def test_status_reports_flavor_version_and_exact_counts(any_db_dsn: str) -> None:
    _fill(any_db_dsn)
    st = store_status(any_db_dsn)
    with psycopg.connect(any_db_dsn) as conn:
        flavor = conn.execute("SELECT flavor FROM store_info").fetchone()
    assert flavor is not None and st.flavor == flavor[0]
    assert st.schema_version == len(discover())
    assert (st.timescaledb_version is not None) == (st.flavor == "timescaledb")
    assert st.row_counts["count_event"] == 5
    assert st.row_counts["dead_letter"] == 3
    assert st.row_counts["asset"] == 0
    assert st.dead_letters == 3
    assert st.approximate == ()
    assert st.plant_version is None
    assert [(a.agent, a.online) for a in st.edge_agents] == [("e1", True), ("e2", False)]
    data = st.as_dict()
    assert data["edge_agents"][1]["changed_at"] == T0.isoformat()
    assert data["row_counts"]["count_event"] == 5


def test_big_tables_are_estimated_and_named(any_db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(any_db_dsn)
    with psycopg.connect(any_db_dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")
    monkeypatch.setattr(status_mod, "EXACT_COUNT_MAX_BYTES", -1)  # every table counts as "big"
    st = store_status(any_db_dsn)
    assert "count_event" in st.approximate and "dead_letter" in st.approximate
    # an estimate: its value follows the planner statistics (concurrent autovacuum may change them), so only
    # its kind is checked here; exact counts are checked where the table is small
    assert isinstance(st.row_counts["count_event"], int) and st.row_counts["count_event"] >= 0
    assert st.dead_letters == 3  # always an exact count


@pytest.mark.timescale
def test_timescaledb_jobs_are_listed_with_their_last_status(timescale_db_dsn: str) -> None:
    st = store_status(timescale_db_dsn)
    procs = [j.proc for j in st.jobs]
    assert procs.count("policy_compression") == 6
    assert procs.count("policy_retention") == 1
    assert procs.count("policy_refresh_continuous_aggregate") == 2
    for job in st.jobs:
        assert job.failed == (job.last_run_status == "Failed")
    assert st.failed_jobs == [j for j in st.jobs if j.last_run_status == "Failed"]
    assert {j["job_id"] for j in st.as_dict()["jobs"]} == {j.job_id for j in st.jobs}


def test_plain_store_has_no_jobs(plain_db_dsn: str) -> None:
    st = store_status(plain_db_dsn)
    assert (st.flavor, st.jobs) == ("postgresql", [])
