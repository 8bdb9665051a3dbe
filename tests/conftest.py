"""Test harness: real services, chosen as DESIGN.md says.

PostgreSQL: TWINLINE_TEST_DSN (a server where tests create and drop their own databases), else
testcontainers when a Docker engine answers, else an embedded PostgreSQL. MQTT: TWINLINE_TEST_MQTT,
else the mosquitto binary on a free port, else amqtt in-process. Tests that need what the chosen
services lack (the timescaledb extension, MQTT 5 shared subscriptions) skip and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import psycopg
import pytest
from psycopg import conninfo, sql

from twinline.cli.embedded import EmbeddedPostgres, LocalBroker


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:  # any failure means "no engine": the harness falls back to the embedded server
        return False


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """DSN of a PostgreSQL server where tests may create databases."""
    env = os.environ.get("TWINLINE_TEST_DSN")
    if env:
        yield env
        return
    with ExitStack() as stack:
        if _docker_answers():
            from testcontainers.postgres import PostgresContainer

            pg = stack.enter_context(PostgresContainer("timescale/timescaledb:latest-pg16", driver=None))
            yield pg.get_connection_url()
            return
        server = stack.enter_context(EmbeddedPostgres())
        yield server.dsn


def _with_db(dsn: str, name: str) -> str:
    return conninfo.make_conninfo(dsn, dbname=name)


@pytest.fixture
def new_database(pg_server_dsn: str) -> Iterator[Callable[[], str]]:
    """Factory of fresh, uniquely named, empty databases, dropped after the test."""
    made: list[str] = []

    def make() -> str:
        name = f"tl_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return _with_db(pg_server_dsn, name)

    yield make
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def timescale_missing(server_dsn: str) -> str | None:
    """Why the timescaledb extension cannot be used on this server, or None when it can."""
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
        if row is None:
            return "the timescaledb extension is not installed on the test PostgreSQL server"
        libs = conn.execute("SHOW shared_preload_libraries").fetchone()
        if libs is None or "timescaledb" not in str(libs[0]):
            return "timescaledb is installed but not in shared_preload_libraries of the test server"
    return None


def _migrate(dsn: str, *, timescale: bool) -> None:
    """Migrate with the flavor asked for: plain_db_dsn stays plain even on a TimescaleDB server."""
    from twinline.ingest.migrate import migrate

    migrate(dsn, flavor="timescaledb" if timescale else "postgresql")


@pytest.fixture
def plain_db_dsn(new_database: Callable[[], str]) -> str:
    """A fresh database with twinline's schema on plain PostgreSQL."""
    dsn = new_database()
    _migrate(dsn, timescale=False)
    return dsn


@pytest.fixture
def timescale_db_dsn(new_database: Callable[[], str], pg_server_dsn: str) -> str:
    """A fresh database with the timescaledb extension and twinline's schema; skips where it is absent."""
    why = timescale_missing(pg_server_dsn)
    if why:
        pytest.skip(why)
    dsn = new_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    _migrate(dsn, timescale=True)
    return dsn


@pytest.fixture
def db_dsn(plain_db_dsn: str) -> str:
    """The default database for integration tests: plain PostgreSQL with the schema."""
    return plain_db_dsn


@pytest.fixture(params=["plain", "timescaledb"])
def any_db_dsn(request: pytest.FixtureRequest) -> str:
    """Runs a test on both flavors of the store (the timescaledb one skips where absent)."""
    name = "plain_db_dsn" if request.param == "plain" else "timescale_db_dsn"
    return str(request.getfixturevalue(name))


@pytest.fixture(scope="session")
def _shared_broker() -> Iterator[tuple[str, bool]]:
    env = os.environ.get("TWINLINE_TEST_MQTT")
    if env:
        yield env, True  # the CI broker is Mosquitto 2.x, which has MQTT 5 shared subscriptions
        return
    with LocalBroker() as broker:
        yield broker.url, broker.supports_shared_subscriptions


@pytest.fixture
def mqtt_url(_shared_broker: tuple[str, bool]) -> str:
    """URL of the shared test broker; tests keep apart by unique topic prefixes and client ids."""
    return _shared_broker[0]


@pytest.fixture
def mqtt_shared_url(_shared_broker: tuple[str, bool]) -> str:
    """The shared broker when it supports MQTT 5 shared subscriptions; skips otherwise."""
    url, shared = _shared_broker
    if not shared:
        pytest.skip("the fallback broker (amqtt) has no MQTT 5 shared subscriptions")
    return url


@pytest.fixture
def broker_control() -> Iterator[LocalBroker]:
    """A private mosquitto broker this test may stop and restart; the shared broker is never stopped."""
    broker = LocalBroker(prefer="mosquitto")
    try:
        broker.start()
    except Exception as exc:  # turned into a skip with the reason
        pytest.skip(f"no private broker for stop/restart tests: {exc}")
    if broker.kind != "mosquitto":
        broker.stop()
        pytest.skip("stop/restart tests need the mosquitto binary")
    yield broker
    broker.stop()


@pytest.fixture
def uid() -> str:
    """A short unique id for topic prefixes, client ids and source ids of one test."""
    return uuid.uuid4().hex[:10]
