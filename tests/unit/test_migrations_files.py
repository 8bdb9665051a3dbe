"""The migration file set: naming, ordering, variant pairs (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinline.ingest.errors import MigrationError
from twinline.ingest.migrate import MIGRATIONS_DIR, discover

pytestmark = pytest.mark.unit


def test_shipped_migrations_are_ordered_and_complete() -> None:
    migrations = discover()
    assert [m.label for m in migrations[:3]] == ["0001_core", "0002_storage", "0003_rollups"]
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    for mig in migrations:
        assert set(mig.files) in ({"*"}, {"postgresql", "timescaledb"}), mig.label
        assert mig.file_for("postgresql").parent == MIGRATIONS_DIR
        assert len(mig.checksum("timescaledb")) == 64


def test_variant_files_are_chosen_by_flavor() -> None:
    storage = discover()[1]
    assert storage.file_for("postgresql").name == "0002_storage.postgresql.sql"
    assert storage.file_for("timescaledb").name == "0002_storage.timescaledb.sql"
    assert storage.checksum("postgresql") != storage.checksum("timescaledb")
    core = discover()[0]
    assert core.file_for("postgresql") == core.file_for("timescaledb")


def _write(tmp_path: Path, *names: str) -> Path:
    for name in names:
        (tmp_path / name).write_text("SELECT 1;\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("names", "message"), [
    (("0001_a.sql", "1_b.sql"), "1_b.sql: migration files are named"),
    (("0001_a.sql", "0001_b.sql"), "0001_b.sql: clashes with another file numbered 0001"),
    (("0001_a.sql", "0001_a.postgresql.sql"), "clashes with another file numbered 0001"),
    (("0002_x.postgresql.sql",), "0002_x: a flavor variant needs both"),
    (("0001_A.sql",), "0001_A.sql: migration files are named"),
])
def test_malformed_sets_are_refused(tmp_path: Path, names: tuple[str, ...], message: str) -> None:
    with pytest.raises(MigrationError, match=message):
        discover(_write(tmp_path, *names))


def test_variant_pair_is_one_migration(tmp_path: Path) -> None:
    found = discover(_write(tmp_path, "0002_b.timescaledb.sql", "0001_a.sql", "0002_b.postgresql.sql"))
    assert [(m.version, m.name, sorted(m.files)) for m in found] == [
        (1, "a", ["*"]), (2, "b", ["postgresql", "timescaledb"])]
