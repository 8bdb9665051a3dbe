"""Nothing is lost when the ingest worker is SIGKILLed mid-stream or the database goes away mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, sql

from tests.helpers import wait_until
from tests.integration.ingest_helpers import Publisher, add_stations, counts, scalar, stream

pytestmark = pytest.mark.integration

TWINLINE = Path(sys.executable).parent / "twinline"


@contextmanager
def worker(dsn: str, url: str, uid: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`twinline ingest run` as a subprocess with a stable client id (so its session survives a kill)."""
    env = {**os.environ, "TWINLINE_DSN": dsn, "TWINLINE_MQTT_URL": url, "TWINLINE_LOG_LEVEL": "INFO"}
    args = [str(TWINLINE), "ingest", "run", "--group", f"g{uid}", "--name", f"ingest-{uid}", "--site", f"site{uid}",
            "--batch-rows", "500", "--flush-s", "0.05", "--session-expiry-s", "120", "--heartbeat-s", "0.5"]
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def _subscribed(dsn: str, uid: str) -> bool:
    return bool(scalar(dsn, "SELECT count(*) FROM ingest_worker WHERE worker = %s", (f"ingest-{uid}-0",)) == 1)


def test_worker_killed_mid_stream_loses_nothing(db_dsn: str, mqtt_shared_url: str, uid: str, tmp_path: Path) -> None:
    stations = add_stations(db_dsn, f"site{uid}", 2)
    messages = stream(stations, 600, samples=4)
    pub = Publisher(mqtt_shared_url, f"pub-{uid}")
    log = tmp_path / "worker.log"
    try:
        with worker(db_dsn, mqtt_shared_url, uid, log) as first:
            wait_until(lambda: _subscribed(db_dsn, uid), 60, what="first worker heartbeat")
            pub.publish_all(messages[:300])
            wait_until(lambda: counts(db_dsn)[0] >= 50, 60, what="some envelopes stored")
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        pub.publish_all(messages[300:])  # published while no worker runs: the session keeps them
        with worker(db_dsn, mqtt_shared_url, uid, log) as second:
            wait_until(lambda: counts(db_dsn)[0] == 600, 60, what=f"all 600 envelopes (log: {log})")
            second.send_signal(signal.SIGTERM)
            assert second.wait(60) == 0, log.read_text()
        assert counts(db_dsn) == (600, 2400, 2400)
        assert scalar(db_dsn, "SELECT count(*) FROM dead_letter") == 0
    finally:
        pub.close()


@contextmanager
def _outage(server_dsn: str, dbname: str) -> Iterator[None]:
    """This test's own database refuses connections and its sessions are terminated; restored on exit."""
    ident = sql.Identifier(dbname)
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(ident))
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                      "AND pid <> pg_backend_pid()", (dbname,))
    try:
        yield
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(ident))


def test_database_outage_mid_stream_loses_nothing(db_dsn: str, pg_server_dsn: str, mqtt_shared_url: str, uid: str,
                                                  tmp_path: Path) -> None:
    stations = add_stations(db_dsn, f"site{uid}", 2)
    messages = stream(stations, 500, samples=4)
    dbname = str(conninfo.conninfo_to_dict(db_dsn)["dbname"])
    pub = Publisher(mqtt_shared_url, f"pub-{uid}")
    log = tmp_path / "worker.log"
    try:
        with worker(db_dsn, mqtt_shared_url, uid, log) as proc:
            wait_until(lambda: _subscribed(db_dsn, uid), 60, what="worker heartbeat")
            pub.publish_all(messages[:200])
            wait_until(lambda: counts(db_dsn)[0] == 200, 60, what="first 200 envelopes")
            with _outage(pg_server_dsn, dbname):
                pub.publish_all(messages[200:400])
                wait_until(lambda: b"retrying" in log.read_bytes(), 60, what="the worker noticing the outage")
                assert proc.poll() is None
            pub.publish_all(messages[400:])
            wait_until(lambda: counts(db_dsn)[0] == 500, 60, what=f"all 500 envelopes (log: {log})")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, log.read_text()
        assert counts(db_dsn) == (500, 2000, 2000)
        assert scalar(db_dsn, "SELECT (metrics->>'db_errors')::int > 0 FROM ingest_worker")
    finally:
        pub.close()
