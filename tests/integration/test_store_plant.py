"""Plant model loading: transactional, deactivates what left the file, idempotent for the same file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import psycopg
import pytest

from twinline.ingest.errors import PlantLoadError
from twinline.ingest.plant_store import load_plant_into, plant_summary
from twinline.uns.plant import Plant, load_plant, parse_plant, sample_plant_path

pytestmark = pytest.mark.integration

V1 = """\
version: 1
site: {id: tst, name: Test site, timezone: Asia/Shanghai, epoch: 2026-01-05}
products:
  - {sku: A1, name: Alpha, family: fam}
  - {sku: B2}
calendar:
  shifts:
    - {name: day, start: "08:00", hours: 12}
areas:
  - id: assy
    lines:
      - id: l1
        type: laptop
        stations:
          - {id: s1, protocol: opcua, key_process: true, ideal_cycle_s: {A1: 30, B2: 40}}
          - {id: s2, protocol: mqtt, ideal_cycle_s: {A1: 20}}
          - {id: s3, protocol: manual, required_data: [state, count], ideal_cycle_s: {A1: 10, B2: 12}}
"""
# s2 and product B2 leave, s4 and C3 arrive, s3 moves to position 2 and changes its cycle time
V2 = """\
version: 1
site: {id: tst, name: Test site, timezone: Asia/Shanghai, epoch: 2026-01-05}
products:
  - {sku: A1, name: Alpha, family: fam}
  - {sku: C3, name: Gamma}
calendar:
  shifts:
    - {name: day, start: "08:00", hours: 12}
areas:
  - id: assy
    lines:
      - id: l1
        type: laptop
        stations:
          - {id: s1, protocol: opcua, key_process: true, ideal_cycle_s: {A1: 30, C3: 50}}
          - {id: s3, protocol: manual, required_data: [state, count], ideal_cycle_s: {A1: 11}}
          - {id: s4, protocol: mqtt, ideal_cycle_s: {A1: 9, C3: 8}}
"""


def _load(dsn: str, body: str, source: str = "plant.yaml") -> Any:
    return load_plant_into(dsn, parse_plant(body, source), body)


def _snapshot(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                for t in ("plant_model", "asset", "product", "ideal_cycle", "route_step")}


def _counts(result: Any) -> tuple[int, ...]:
    return (result.assets_added, result.assets_updated, result.assets_deactivated,
            result.products_added, result.products_updated, result.products_deactivated)


@pytest.mark.smoke
def test_first_load_and_identical_reload(db_dsn: str) -> None:
    first = _load(db_dsn, V1)
    assert (first.version, first.new_version) == (1, True)
    assert _counts(first) == (6, 0, 0, 2, 0, 0)  # site, area, line, 3 stations
    before = _snapshot(db_dsn)
    again = _load(db_dsn, V1, source="elsewhere/plant.yaml")
    assert (again.version, again.new_version, again.changed) == (1, False, False)
    assert _counts(again) == (0, 0, 0, 0, 0, 0)
    assert _snapshot(db_dsn) == before
    with psycopg.connect(db_dsn) as conn:
        station = conn.execute("SELECT kind, site, area, line, station, line_type, position, key_process, attrs "
                               "FROM asset WHERE path = 'tst/assy/l1/s3'").fetchone()
        routes = conn.execute("SELECT product, step, station FROM route_step ORDER BY 1, 2").fetchall()
    assert station == ("station", "tst", "assy", "l1", "s3", "laptop", 3, False,
                       {"protocol": "manual", "required_data": ["state", "count"]})
    assert routes == [("A1", 1, "tst/assy/l1/s1"), ("A1", 2, "tst/assy/l1/s2"), ("A1", 3, "tst/assy/l1/s3"),
                      ("B2", 1, "tst/assy/l1/s1"), ("B2", 2, "tst/assy/l1/s3")]


def test_removed_assets_and_products_are_deactivated_not_deleted(db_dsn: str) -> None:
    _load(db_dsn, V1)
    second = _load(db_dsn, V2)
    assert (second.version, second.new_version) == (2, True)
    assert _counts(second) == (1, 1, 1, 1, 0, 1)  # s4 added, s3 moved, s2 gone; C3 added, B2 gone
    with psycopg.connect(db_dsn) as conn:
        assets: dict[str, bool] = dict(conn.execute("SELECT path, active FROM asset WHERE kind = 'station'").fetchall())
        products: dict[str, bool] = dict(conn.execute("SELECT sku, active FROM product").fetchall())
        cycles = conn.execute("SELECT asset, product, ideal_cycle_s FROM ideal_cycle ORDER BY 1, 2").fetchall()
        routes = conn.execute("SELECT product, step, station FROM route_step ORDER BY 1, 2").fetchall()
    assert assets == {"tst/assy/l1/s1": True, "tst/assy/l1/s2": False, "tst/assy/l1/s3": True,
                      "tst/assy/l1/s4": True}
    assert products == {"A1": True, "B2": False, "C3": True}
    assert cycles == [("tst/assy/l1/s1", "A1", 30.0), ("tst/assy/l1/s1", "C3", 50.0),
                      ("tst/assy/l1/s2", "A1", 20.0),  # kept with the inactive station, for history
                      ("tst/assy/l1/s3", "A1", 11.0), ("tst/assy/l1/s4", "A1", 9.0), ("tst/assy/l1/s4", "C3", 8.0)]
    assert routes == [("A1", 1, "tst/assy/l1/s1"), ("A1", 2, "tst/assy/l1/s3"), ("A1", 3, "tst/assy/l1/s4"),
                      ("C3", 1, "tst/assy/l1/s1"), ("C3", 2, "tst/assy/l1/s4")]
    back = _load(db_dsn, V1)  # going back is a new version and reactivates
    assert (back.version, _counts(back)) == (3, (0, 2, 1, 0, 1, 1))  # s2, s3 and B2 back; s4, C3 gone


def _with_zero_cycle(plant: Plant) -> Plant:
    """The plant with one ideal cycle time of 0, which the store's CHECK refuses late in the load."""
    area = plant.areas[0]
    line = area.lines[0]
    last = line.stations[-1]
    bad = replace(last, ideal_cycle_s=MappingProxyType({**last.ideal_cycle_s, "A1": 0.0}))
    return replace(plant, areas=(replace(area, lines=(replace(line, stations=(*line.stations[:-1], bad)),)),))


def test_failing_load_leaves_the_previous_model_intact(db_dsn: str) -> None:
    _load(db_dsn, V1)
    before = _snapshot(db_dsn)
    with pytest.raises(PlantLoadError, match=r"loading plant model v2\.yaml failed: .*ideal_cycle"):
        load_plant_into(db_dsn, _with_zero_cycle(parse_plant(V2, "v2.yaml")), V2)
    assert _snapshot(db_dsn) == before
    assert _load(db_dsn, V2).version == 2  # and the store still takes good loads


def test_load_into_an_unmigrated_database_says_migrate(new_database: Callable[[], str]) -> None:
    with pytest.raises(PlantLoadError, match="run `twinline db migrate` first"):
        _load(new_database(), V1)


def test_plant_summary(db_dsn: str) -> None:
    assert plant_summary(db_dsn) is None
    _load(db_dsn, V1)
    _load(db_dsn, V2)
    summary = plant_summary(db_dsn)
    assert summary is not None
    assert (summary.version, summary.site, summary.inactive_assets) == (2, "tst", 1)
    assert [(ln.path, ln.line_type, ln.stations, ln.key_processes) for ln in summary.lines] == [
        ("tst/assy/l1", "laptop", ["tst/assy/l1/s1", "tst/assy/l1/s3", "tst/assy/l1/s4"], ["tst/assy/l1/s1"])]
    assert summary.products == [("A1", "Alpha", "fam"), ("C3", "Gamma", None)]


def test_sample_plant_loads(db_dsn: str) -> None:
    path = sample_plant_path()
    if not path.exists():
        pytest.skip(f"the sample plant {path} is not written yet")
    plant = load_plant(path)
    result = load_plant_into(db_dsn, plant, path.read_text(encoding="utf-8"))
    assert result.assets_added == 1 + len(plant.areas) + len(plant.lines) + len(plant.stations)
    summary = plant_summary(db_dsn)
    assert summary is not None
    assert {ln.path for ln in summary.lines} == set(plant.lines)
    assert sum(len(ln.stations) for ln in summary.lines) == len(plant.stations)
