"""Schema migrations on a real server: idempotent, checksummed, lock-protected, flavor recorded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

import psycopg
import pytest

from tests.conftest import timescale_missing
from twinline.ingest.errors import MigrationError, StoreUnavailable
from twinline.ingest.migrate import MIGRATIONS_DIR, FlavorChoice, MigrateResult, discover, migrate

pytestmark = pytest.mark.integration

EVENT_TABLES = ("state_event", "count_event", "process_sample", "product_event", "alarm_event", "energy_sample")
LABELS = [m.label for m in discover()]


def _flavor(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT flavor FROM store_info").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.smoke
def test_second_migrate_applies_nothing(any_db_dsn: str) -> None:
    flavor = _flavor(any_db_dsn)
    again = migrate(any_db_dsn)
    assert (again.flavor, again.applied, again.version) == (flavor, [], len(LABELS))
    with psycopg.connect(any_db_dsn) as conn:
        rows = conn.execute("SELECT version, name, flavor, length(checksum) FROM schema_migration "
                            "ORDER BY version").fetchall()
    assert [(f"{v:04d}_{n}", f, n_hex) for v, n, f, n_hex in rows] == [(lbl, flavor, 64) for lbl in LABELS]


def test_changed_applied_file_is_refused(plain_db_dsn: str, tmp_path: Path) -> None:
    for src in MIGRATIONS_DIR.glob("*.sql"):
        (tmp_path / src.name).write_bytes(src.read_bytes())
    core = tmp_path / "0001_core.sql"
    core.write_text(core.read_text(encoding="utf-8") + "\n-- an innocent-looking edit\n", encoding="utf-8")
    with pytest.raises(MigrationError, match=r"0001_core\.sql changed after it was applied"):
        migrate(plain_db_dsn, directory=tmp_path)
    assert migrate(plain_db_dsn).applied == []  # the untouched files still pass


def test_database_newer_than_build_is_refused(plain_db_dsn: str) -> None:
    with psycopg.connect(plain_db_dsn) as conn:
        conn.execute("INSERT INTO schema_migration (version, name, checksum, flavor) "
                     "VALUES (9999, 'from_the_future', 'x', 'postgresql')")
    with pytest.raises(MigrationError, match="9999_from_the_future, which this build does not know"):
        migrate(plain_db_dsn)


def test_new_file_numbered_below_applied_is_refused(plain_db_dsn: str, tmp_path: Path) -> None:
    for src in MIGRATIONS_DIR.glob("*.sql"):
        (tmp_path / src.name).write_bytes(src.read_bytes())
    with psycopg.connect(plain_db_dsn) as conn:
        conn.execute("DELETE FROM schema_migration WHERE version = 2")
    with pytest.raises(MigrationError, match="0002_storage is new but"):
        migrate(plain_db_dsn, directory=tmp_path)


def test_failing_migration_rolls_back_and_is_not_recorded(plain_db_dsn: str, tmp_path: Path) -> None:
    for src in MIGRATIONS_DIR.glob("*.sql"):
        (tmp_path / src.name).write_bytes(src.read_bytes())
    (tmp_path / "9000_broken.sql").write_text("CREATE TABLE half_done (x int);\nSELECT no_such_function();\n",
                                              encoding="utf-8")
    with pytest.raises(MigrationError, match=r"9000_broken\.sql failed: function no_such_function\(\) does not exist"):
        migrate(plain_db_dsn, directory=tmp_path)
    with psycopg.connect(plain_db_dsn) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
        assert conn.execute("SELECT max(version) FROM schema_migration").fetchone() == (len(LABELS),)


@pytest.mark.parametrize("flavor", ["postgresql", "auto"])
def test_concurrent_migrates_apply_each_file_once(new_database: Callable[[], str], flavor: str) -> None:
    dsn = new_database()
    barrier = threading.Barrier(2)
    results: list[MigrateResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(migrate(dsn, cast("FlavorChoice", flavor)))
        except BaseException as exc:  # handed to the main thread and asserted there
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(len(r.applied) for r in results) == [0, len(LABELS)]
    assert {r.version for r in results} == {len(LABELS)}
    assert len({r.flavor for r in results}) == 1


def test_flavor_is_recorded_and_kept(plain_db_dsn: str, pg_server_dsn: str) -> None:
    assert _flavor(plain_db_dsn) == "postgresql"
    assert migrate(plain_db_dsn, "auto").flavor == "postgresql"  # even on a TimescaleDB server
    assert migrate(plain_db_dsn, "postgresql").applied == []
    with pytest.raises(MigrationError, match="set up as postgresql; it cannot be migrated as timescaledb"):
        migrate(plain_db_dsn, "timescaledb")
    with psycopg.connect(plain_db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone() == (0,)


@pytest.mark.timescale
def test_auto_creates_the_extension_where_usable(new_database: Callable[[], str], pg_server_dsn: str) -> None:
    why = timescale_missing(pg_server_dsn)
    if why:
        pytest.skip(why)
    dsn = new_database()
    result = migrate(dsn)
    assert (result.flavor, result.applied) == ("timescaledb", LABELS)
    with pytest.raises(MigrationError, match="set up as timescaledb; it cannot be migrated as postgresql"):
        migrate(dsn, "postgresql")


def test_timescaledb_asked_where_absent_is_refused(plain_db_dsn: str, pg_server_dsn: str) -> None:
    if timescale_missing(pg_server_dsn) is None:
        pytest.skip("the test server has TimescaleDB; the refusal is for servers without it")
    with pytest.raises(MigrationError, match="flavor timescaledb asked"):
        migrate(plain_db_dsn, "timescaledb")


def test_unreachable_server_is_store_unavailable_without_password() -> None:
    with pytest.raises(StoreUnavailable) as info:
        migrate("postgresql://bob:s3cret-pw@127.0.0.1:1/nodb?connect_timeout=2")
    assert "127.0.0.1:1/nodb" in str(info.value)
    assert "s3cret-pw" not in str(info.value)


@pytest.mark.timescale
def test_timescaledb_layout(timescale_db_dsn: str) -> None:
    with psycopg.connect(timescale_db_dsn) as conn:
        hyper = {r[0] for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")}
        assert set(EVENT_TABLES) <= hyper
        assert not {"dead_letter", "envelope_ledger"} & hyper
        chunk = conn.execute("SELECT DISTINCT time_interval FROM timescaledb_information.dimensions "
                             "WHERE hypertable_name = ANY(%s)", (list(EVENT_TABLES),)).fetchall()
        assert [str(c[0]) for c in chunk] == ["1 day, 0:00:00"]
        jobs = conn.execute("SELECT proc_name, coalesce(hypertable_name, ''), config FROM "
                            "timescaledb_information.jobs WHERE job_id >= 1000").fetchall()
        compress = {h: c for p, h, c in jobs if p == "policy_compression"}
        assert set(compress) == set(EVENT_TABLES)
        assert {c["compress_after"] for c in compress.values()} == {"7 days"}
        retention = [(h, c["drop_after"]) for p, h, c in jobs if p == "policy_retention"]
        assert retention == [("process_sample", "400 days")]
        assert {h for p, h, _ in jobs if p == "policy_refresh_continuous_aggregate"} == {"count_hourly",
                                                                                        "energy_hourly"}
        settings = conn.execute("SELECT DISTINCT segmentby, orderby FROM "
                                "timescaledb_information.hypertable_columnstore_settings "
                                "WHERE hypertable::text = ANY(%s)", (list(EVENT_TABLES),)).fetchall()
        assert settings == [("asset", "ts")]
        caggs = conn.execute("SELECT view_name, materialized_only FROM "
                             "timescaledb_information.continuous_aggregates ORDER BY view_name").fetchall()
        assert caggs == [("count_hourly", False), ("energy_hourly", False)]
        _assert_asset_ts_indexes(conn)


@pytest.mark.smoke
def test_plain_layout(plain_db_dsn: str) -> None:
    with psycopg.connect(plain_db_dsn) as conn:
        brin = {r[0] for r in conn.execute(
            "SELECT t.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_am a ON a.oid = i.relam WHERE a.amname = 'brin'")}
        assert brin == set(EVENT_TABLES)
        views = {r[0] for r in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'public'")}
        assert views == {"count_hourly", "energy_hourly"}
        _assert_asset_ts_indexes(conn)


def _assert_asset_ts_indexes(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    rows = conn.execute("SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                        "AND indexname LIKE '%%_asset_ts'").fetchall()
    assert {t for t, d in rows if "btree (asset, ts)" in str(d)} == set(EVENT_TABLES)


def test_every_table_view_and_added_column_is_commented(any_db_dsn: str) -> None:
    with psycopg.connect(any_db_dsn) as conn:
        bare = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') "
            "AND obj_description(c.oid, 'pg_class') IS NULL").fetchall()
        assert bare == []
        bare_cols = conn.execute(
            "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE c.relname IN ('count_hourly', 'energy_hourly', 'store_info') AND a.attnum > 0 "
            "AND NOT a.attisdropped AND col_description(c.oid, a.attnum) IS NULL AND a.attname <> 'singleton'"
        ).fetchall()
        assert bare_cols == []
