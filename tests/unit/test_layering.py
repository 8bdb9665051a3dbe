"""The import direction of STYLE.md, checked by reading every module's imports (no import-linter needed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
BOXES = ("uns", "simulators", "edge", "ingest", "twin", "api", "cli")
# box -> boxes it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "uns": set(),
    "simulators": {"uns"},
    "edge": {"uns"},
    "ingest": {"uns"},
    "twin": {"uns", "simulators"},
    "api": {"uns", "twin"},
    "cli": set(BOXES) - {"cli"},
}
HEAVY_FOR_UNS = {"psycopg", "asyncua", "paho", "polars", "numpy", "simpy", "fastapi"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _violations() -> list[str]:
    found = []
    for box in BOXES:
        for path in sorted((ROOT / box).rglob("*.py")):
            for name in _imports(path):
                parts = name.split(".")
                if parts[0] in BOXES:
                    found.append(f"{path.relative_to(ROOT)} imports top-level {name!r} (use twinline.{name})")
                if parts[0] == "twinline" and len(parts) > 1 and parts[1] in BOXES:
                    target = parts[1]
                    if target != box and target not in ALLOWED[box]:
                        found.append(f"{path.relative_to(ROOT)}: {box} must not import twinline.{target}")
                if box == "uns" and parts[0] in HEAVY_FOR_UNS:
                    found.append(f"{path.relative_to(ROOT)}: the contract must stay free of {parts[0]}")
    return found


def test_import_direction_is_respected() -> None:
    assert _violations() == []


def test_the_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("import twinline.ingest.writer\nfrom edge import x\n")
    assert _imports(bad) == ["twinline.ingest.writer", "edge"]
