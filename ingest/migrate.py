"""Schema migrations of the store: ordered SQL files, applied once, recorded, checksummed.

Files in `ingest/migrations` are named `NNNN_name.sql` (one file for both flavors) or come as a variant
pair `NNNN_name.postgresql.sql` + `NNNN_name.timescaledb.sql`. `migrate()` takes a session advisory
lock (two concurrent migrates are safe: the second waits, then finds nothing to do), applies each pending
file in its own transaction together with its `schema_migration` row, and refuses to run when a file that
was already applied has changed (its sha256 differs) or when the database is ahead of this build.

The flavor is chosen once per database and recorded in `store_info`: "timescaledb" when the extension is
already created, or is available and preloaded on the server (then it is created), else "postgresql".
`refresh_rollups()` refreshes the hourly continuous aggregates on TimescaleDB and does nothing on plain
PostgreSQL, whose rollups are ordinary views.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import psycopg
from psycopg import errors as pg_errors

from twinline.ingest.db import connect
from twinline.ingest.errors import IngestError, MigrationError

log = logging.getLogger(__name__)

Flavor = Literal["postgresql", "timescaledb"]
FlavorChoice = Literal["auto", "postgresql", "timescaledb"]
FLAVORS: tuple[Flavor, ...] = get_args(Flavor)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ROLLUPS = ("count_hourly", "energy_hourly")

_LOCK_KEY = 0x7477_6C6E_6D69_6772  # "twlnmigr": one advisory lock id per database for migrations
_LOCK_WAIT_S = 300
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(postgresql|timescaledb))?\.sql$")

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migration (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    flavor      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE schema_migration IS 'Migrations applied by twinline db migrate, one row per NNNN_name file.';
COMMENT ON COLUMN schema_migration.version IS
    'The NNNN number of the migration file; the schema version is the highest.';
COMMENT ON COLUMN schema_migration.checksum IS 'sha256 (hex) of the file applied; a later change to it is refused.';
COMMENT ON COLUMN schema_migration.flavor IS 'Store flavor the file was applied for (postgresql or timescaledb).';
CREATE TABLE IF NOT EXISTS store_info (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    flavor      text NOT NULL CHECK (flavor IN ('postgresql', 'timescaledb')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE store_info IS
    'One row: how this store was set up; readers use flavor to know whether TimescaleDB features exist.';
COMMENT ON COLUMN store_info.flavor IS
    'postgresql (plain tables, BRIN, views) or timescaledb (hypertables, compression, continuous aggregates); '
    'chosen at the first migrate and kept.';
COMMENT ON COLUMN store_info.created_at IS 'When the first migrate recorded the flavor.';
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration: a shared file or one file per flavor."""

    version: int
    name: str
    files: dict[str, Path] = field(hash=False)  # "*" or a flavor -> file

    def file_for(self, flavor: Flavor) -> Path:
        return self.files.get("*") or self.files[flavor]

    def checksum(self, flavor: Flavor) -> str:
        return hashlib.sha256(self.file_for(flavor).read_bytes()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class MigrateResult:
    flavor: Flavor
    applied: list[str]
    version: int


def discover(directory: Path | None = None) -> list[Migration]:
    """The migrations in `directory` (default: the package's), ordered; a malformed set is a MigrationError."""
    found: dict[int, Migration] = {}
    for path in sorted((directory or MIGRATIONS_DIR).glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql or NNNN_name.<flavor>.sql")
        version, name, variant = int(match[1]), match[2], match[3] or "*"
        known = found.setdefault(version, Migration(version, name, {}))
        if known.files and (known.name != name or variant in known.files or "*" in known.files or variant == "*"):
            raise MigrationError(f"{path.name}: clashes with another file numbered {version:04d}")
        known.files[variant] = path
    for mig in found.values():
        if "*" not in mig.files and set(mig.files) != set(FLAVORS):
            raise MigrationError(f"{mig.label}: a flavor variant needs both .postgresql.sql and .timescaledb.sql")
    return [found[v] for v in sorted(found)]


def migrate(dsn: str, flavor: FlavorChoice = "auto", *, directory: Path | None = None) -> MigrateResult:
    """Bring the database at `dsn` to the newest schema; returns the flavor, what was applied and the version."""
    if flavor not in ("auto", *FLAVORS):
        raise MigrationError(f"unknown flavor {flavor!r} (auto, postgresql or timescaledb)")
    migrations = discover(directory)
    with connect(dsn, autocommit=True) as conn:
        _lock(conn)
        try:
            with conn.transaction():
                if _regclass(conn, "schema_migration") is None:
                    conn.execute(_BOOTSTRAP)
            chosen = _resolve_flavor(conn, flavor)
            applied = _check_applied(conn, migrations)
            done = [_apply(conn, mig, chosen) for mig in _pending(migrations, applied)]
            version = max([*applied, *(m.version for m in migrations if m.label in done)], default=0)
        finally:
            if not conn.closed and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return MigrateResult(chosen, done, version)


def stored_flavor(conn: psycopg.Connection[Any]) -> Flavor | None:
    """The flavor recorded in store_info, or None for a database never migrated."""
    if _regclass(conn, "store_info") is None:
        return None
    row = conn.execute("SELECT flavor FROM store_info").fetchone()
    return None if row is None else _as_flavor(row[0])


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """Highest applied migration number (0 for a database never migrated)."""
    if _regclass(conn, "schema_migration") is None:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migration").fetchone()
    return int(row[0]) if row else 0


def refresh_rollups(conn_or_dsn: psycopg.Connection[Any] | str, start: datetime | None, end: datetime | None,
                    *, attempts: int = 5) -> bool:
    """Refresh count_hourly / energy_hourly over [start, end) widened to whole UTC hours; None = unbounded.

    TimescaleDB only (returns True when it refreshed); on plain PostgreSQL the rollups are views and this
    returns False. Runs in autocommit, outside any transaction, as refresh_continuous_aggregate requires;
    retries with a short backoff when a policy job holds the aggregate (LockNotAvailable / ObjectInUse).
    """
    if isinstance(conn_or_dsn, str):
        with connect(conn_or_dsn, autocommit=True) as conn:
            return _refresh(conn, start, end, attempts)
    conn = conn_or_dsn
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise IngestError("refresh_rollups needs a connection outside a transaction (commit or roll back first)")
    previous = conn.autocommit
    conn.autocommit = True
    try:
        return _refresh(conn, start, end, attempts)
    finally:
        conn.autocommit = previous


def _refresh(conn: psycopg.Connection[Any], start: datetime | None, end: datetime | None, attempts: int) -> bool:
    if stored_flavor(conn) != "timescaledb":
        return False
    window = (_floor_hour(start) if start else None, _ceil_hour(end) if end else None)
    for view in ROLLUPS:
        for attempt in range(1, attempts + 1):
            try:
                conn.execute("CALL refresh_continuous_aggregate(%s, %s::timestamptz, %s::timestamptz)", (view, *window))
                break
            except (pg_errors.LockNotAvailable, pg_errors.ObjectInUse) as exc:
                if attempt == attempts:
                    raise IngestError(f"refreshing {view} failed {attempts} times, busy: {exc.diag.message_primary}") \
                        from exc
                log.info("refresh of %s busy (%s), retry %d", view, exc.diag.message_primary, attempt)
                time.sleep(0.2 * 2 ** (attempt - 1))
    return True


def _floor_hour(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise IngestError(f"refresh window bound {ts.isoformat()} has no time zone (UTC expected)")
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(ts: datetime) -> datetime:
    floor = _floor_hour(ts)
    return floor if floor == ts else floor + timedelta(hours=1)


# --------------------------------------------------------------------------- migrate internals


def _lock(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"SET lock_timeout = '{_LOCK_WAIT_S}s'")
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    except pg_errors.LockNotAvailable as exc:
        raise MigrationError(f"another migration has held the migration lock for over {_LOCK_WAIT_S} s") from exc
    finally:
        conn.execute("RESET lock_timeout")


def _regclass(conn: psycopg.Connection[Any], name: str) -> str | None:
    row = conn.execute("SELECT to_regclass(%s)::text", (name,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _as_flavor(value: object) -> Flavor:
    for known in FLAVORS:
        if value == known:
            return known
    raise MigrationError(f"store_info records an unknown flavor {value!r}")


def _resolve_flavor(conn: psycopg.Connection[Any], asked: FlavorChoice) -> Flavor:
    with conn.transaction():
        recorded = stored_flavor(conn)
        installed, available, preloaded = _timescale_capability(conn)
        if recorded is not None:
            if asked != "auto" and asked != recorded:
                raise MigrationError(f"this database was set up as {recorded}; it cannot be migrated as {asked}")
            if recorded == "timescaledb" and not installed:
                raise MigrationError("this database was set up as timescaledb but the extension is gone")
            return recorded
        usable = installed or (available and preloaded)
        if asked == "timescaledb" and not usable:
            why = "is not installed on the server" if not available else "is not in shared_preload_libraries"
            raise MigrationError(f"flavor timescaledb asked, but the timescaledb extension {why}")
        chosen: Flavor = "postgresql" if asked == "postgresql" or not usable else "timescaledb"
        if chosen == "timescaledb" and not installed:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            except psycopg.errors.InsufficientPrivilege as exc:
                raise MigrationError("cannot create the timescaledb extension (needs a superuser or the database "
                                     "owner with it trusted); create it, or migrate with flavor postgresql") from exc
        conn.execute("INSERT INTO store_info (flavor) VALUES (%s)", (chosen,))
        log.info("store flavor recorded: %s", chosen)
        return chosen


def _timescale_capability(conn: psycopg.Connection[Any]) -> tuple[bool, bool, bool]:
    """(created in this database, available on the server, in shared_preload_libraries)."""
    installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None
    available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    libs = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    preloaded = libs is not None and "timescaledb" in str(libs[0])
    return installed, available is not None, preloaded


def _check_applied(conn: psycopg.Connection[Any], migrations: list[Migration]) -> dict[int, str]:
    """Applied versions -> name, after checking each applied file is unchanged."""
    by_version = {m.version: m for m in migrations}
    applied: dict[int, str] = {}
    for version, name, checksum, flavor in conn.execute(
            "SELECT version, name, checksum, flavor FROM schema_migration ORDER BY version").fetchall():
        mig = by_version.get(version)
        if mig is None:
            raise MigrationError(f"the database has migration {version:04d}_{name}, which this build does not know "
                                 "(the database is newer than this twinline)")
        if mig.checksum(_as_flavor(flavor)) != checksum:
            raise MigrationError(f"{mig.file_for(_as_flavor(flavor)).name} changed after it was applied (sha256 "
                                 f"differs from the recorded one); add a new migration instead of editing it")
        applied[version] = name
    return applied


def _pending(migrations: list[Migration], applied: dict[int, str]) -> list[Migration]:
    top = max(applied, default=0)
    pending = [m for m in migrations if m.version not in applied]
    for mig in pending:
        if mig.version < top:
            raise MigrationError(f"{mig.label} is new but {top:04d} is already applied; renumber it after {top:04d}")
    return pending


def _apply(conn: psycopg.Connection[Any], mig: Migration, flavor: Flavor) -> str:
    path = mig.file_for(flavor)
    try:
        with conn.transaction():
            conn.execute(path.read_text(encoding="utf-8"))
            conn.execute("INSERT INTO schema_migration (version, name, checksum, flavor) VALUES (%s, %s, %s, %s)",
                         (mig.version, mig.name, mig.checksum(flavor), flavor))
    except psycopg.Error as exc:
        detail = exc.diag.message_primary if isinstance(exc, psycopg.DatabaseError) else str(exc)
        raise MigrationError(f"{path.name} failed: {detail or type(exc).__name__}") from exc
    log.info("applied migration %s (%s)", path.name, flavor)
    return mig.label


__all__ = ["FLAVORS", "Flavor", "FlavorChoice", "MigrateResult", "Migration", "discover", "migrate",
           "refresh_rollups", "schema_version", "stored_flavor"]
