"""What `twinline db status` shows: flavor, schema version, row counts, dead letters, jobs, edge agents.

Row counts are exact for small tables and estimates for big ones (planner statistics for plain tables,
TimescaleDB's approximate_row_count for hypertables); `approximate` names the estimated ones. Background
jobs are TimescaleDB's own job table with the last run status and the last error, reported as they are: a
job whose last run ended "Failed" is flagged, never hidden.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from twinline.ingest.db import connect, describe_dsn
from twinline.ingest.migrate import Flavor, schema_version, stored_flavor

EXACT_COUNT_MAX_BYTES = 64 * 1024 * 1024  # below this size a count(*) is cheap enough for a status command


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One TimescaleDB background job (policy) and how its last run went."""

    job_id: int
    name: str
    proc: str
    relation: str
    last_run_status: str | None
    last_run_started_at: datetime | None
    total_runs: int
    total_failures: int
    last_error: str | None

    @property
    def failed(self) -> bool:
        return self.last_run_status == "Failed"


@dataclass(frozen=True, slots=True)
class EdgeAgentStatus:
    agent: str
    line: str
    online: bool
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class StoreStatus:
    database: str
    flavor: Flavor | None
    schema_version: int
    timescaledb_version: str | None
    row_counts: dict[str, int]
    approximate: tuple[str, ...]
    dead_letters: int
    plant_version: int | None
    jobs: list[JobStatus] = field(default_factory=list)
    edge_agents: list[EdgeAgentStatus] = field(default_factory=list)

    @property
    def failed_jobs(self) -> list[JobStatus]:
        return [j for j in self.jobs if j.failed]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (datetimes as ISO 8601 strings)."""
        data = asdict(self)
        for job, raw in zip(self.jobs, data["jobs"], strict=True):
            raw["failed"] = job.failed
            raw["last_run_started_at"] = _iso(job.last_run_started_at)
        for agent, raw in zip(self.edge_agents, data["edge_agents"], strict=True):
            raw["changed_at"] = _iso(agent.changed_at)
        data["approximate"] = list(self.approximate)
        return data


def store_status(dsn: str) -> StoreStatus:
    """Read the status of the store at `dsn` (read-only)."""
    with connect(dsn, autocommit=True) as conn:
        flavor = stored_flavor(conn)
        ts_version = _timescale_version(conn)
        counts, approximate = _row_counts(conn, ts_version is not None)
        return StoreStatus(
            database=describe_dsn(dsn),
            flavor=flavor,
            schema_version=schema_version(conn),
            timescaledb_version=ts_version,
            row_counts=counts,
            approximate=tuple(approximate),
            dead_letters=_scalar(conn, "SELECT count(*) FROM dead_letter") if "dead_letter" in counts else 0,
            plant_version=_scalar(conn, "SELECT max(version) FROM plant_model") if "plant_model" in counts else None,
            jobs=_jobs(conn) if ts_version else [],
            edge_agents=_edge_agents(conn) if "edge_agent" in counts else [],
        )


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat()


def _scalar(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    return None if row is None else row[0]


def _timescale_version(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return None if row is None else str(row[0])


def _row_counts(conn: psycopg.Connection[Any], timescale: bool) -> tuple[dict[str, int], list[str]]:
    hypertables: set[str] = set()
    if timescale:
        hypertables = {r[0] for r in conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE hypertable_schema = 'public'")}
    tables = conn.execute(
        "SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname").fetchall()
    counts: dict[str, int] = {}
    approximate: list[str] = []
    for name, reltuples, size in tables:
        estimate: int | None = int(reltuples) if reltuples >= 0 else None
        if name in hypertables:
            size = _scalar(conn, f"SELECT hypertable_size('public.{name}')") or 0
            estimate = int(_scalar(conn, f"SELECT approximate_row_count('public.{name}')") or 0)
        if size < EXACT_COUNT_MAX_BYTES or estimate is None:
            counts[name] = int(_scalar(conn, f'SELECT count(*) FROM public."{name}"'))
        else:
            counts[name] = estimate
            approximate.append(name)
    return counts, approximate


def _jobs(conn: psycopg.Connection[Any]) -> list[JobStatus]:
    rows = conn.execute(
        "SELECT j.job_id, j.application_name, j.proc_name, coalesce(j.hypertable_name, ''), s.last_run_status, "
        "       s.last_run_started_at, coalesce(s.total_runs, 0), coalesce(s.total_failures, 0), "
        "       (SELECT h.err_message FROM timescaledb_information.job_history h "
        "        WHERE h.job_id = j.job_id AND NOT h.succeeded ORDER BY h.start_time DESC LIMIT 1) "
        "FROM timescaledb_information.jobs j "
        "LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id ORDER BY j.job_id").fetchall()
    return [JobStatus(int(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], r[5], int(r[6]), int(r[7]), r[8])
            for r in rows]


def _edge_agents(conn: psycopg.Connection[Any]) -> list[EdgeAgentStatus]:
    rows = conn.execute("SELECT agent, line, online, changed_at FROM edge_agent ORDER BY line, agent").fetchall()
    return [EdgeAgentStatus(str(a), str(ln), bool(o), c) for a, ln, o, c in rows]


__all__ = ["EdgeAgentStatus", "JobStatus", "StoreStatus", "store_status"]
