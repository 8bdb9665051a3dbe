"""The plant model: the full file format parses into the documented objects."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from twinline.uns.errors import ContractError, PlantModelError
from twinline.uns.plant import (
    LineType,
    Plant,
    PlantSettings,
    Protocol,
    load_plant,
    parse_plant,
    sample_plant_path,
)
from twinline.uns.topics import AssetPath

pytestmark = pytest.mark.unit

FULL = Path(__file__).parent / "plants" / "full.yaml"


@pytest.fixture(scope="module")
def plant() -> Plant:
    return load_plant(FULL)


def test_site(plant: Plant) -> None:
    assert plant.site_id == "cq"
    assert plant.site_name == "Chongqing Liangjiang plant"
    assert plant.timezone == ZoneInfo("Asia/Shanghai")
    assert plant.epoch == datetime(2019, 12, 31, 16, tzinfo=UTC)
    assert plant.epoch.tzinfo is not None
    assert plant.source == str(FULL)


def test_settings_defaults_and_overrides(plant: Plant) -> None:
    s = plant.settings
    assert s.changeover_counts_as_planned is True
    assert s.runup_window_units == 20
    assert s.stale_after_s == 120.0
    assert s.runup_rate_fraction == 0.95
    assert s.grid_factor_kgco2_per_kwh == 0.5366
    assert s.grid_factor_region == "China national average"
    assert s.grid_factor_year == 2022
    assert s.kgce_per_kwh == 0.1229
    assert s.as_dict()["runup_window_units"] == 20
    assert set(PlantSettings().as_dict()) == set(s.as_dict())


def test_products(plant: Plant) -> None:
    assert list(plant.products) == ["NB-14", "NB-16", "AM-PHONE", "AM-LAPTOP"]
    phone = plant.products["AM-PHONE"]
    assert (phone.sku, phone.name, phone.family) == ("AM-PHONE", "6.7-inch AMOLED", "panel")
    assert phone.attrs["panels_per_glass"] == 120
    assert plant.products["NB-16"].attrs == {}


def test_lines_and_stations(plant: Plant) -> None:
    assert list(plant.lines) == ["cq/display/amoled1", "cq/assembly/laptop1"]
    line = plant.line("cq/display/amoled1")
    assert line.type is LineType.PANEL
    assert line.type.value == "panel"
    assert line.path == AssetPath("cq", "display", "amoled1")
    assert line.name == "AMOLED line 1"
    assert line.sim == {"seed": 7}
    assert [s.id for s in line.stations] == ["array-photo", "evap", "cell-test"]
    photo = line.station("array-photo")
    assert photo.position == 1 and line.station("cell-test").position == 3
    assert str(photo.path) == "cq/display/amoled1/array-photo"
    assert photo.key_process and photo.digital_control and photo.networked
    assert photo.protocol is Protocol.OPCUA
    assert photo.required_data == ("state", "count", "energy", "process:exposure_dose")
    assert photo.ideal_cycle_s == {"AM-PHONE": 55.0, "AM-LAPTOP": 70.0}
    assert isinstance(photo.ideal_cycle_s["AM-LAPTOP"], float)
    assert photo.sim["mtbf_s"] == 36000
    test = line.station("cell-test")
    assert not test.key_process and not test.digital_control and not test.networked
    assert test.protocol is Protocol.MANUAL and test.required_data == ()
    laptop = plant.line("cq/assembly/laptop1")
    assert laptop.name == "laptop1" and laptop.type is LineType.LAPTOP and laptop.sim == {}


def test_routes_given_and_default(plant: Plant) -> None:
    line = plant.line("cq/display/amoled1")
    assert line.routes["AM-LAPTOP"] == ("array-photo", "evap")
    assert line.routes["AM-PHONE"] == ("array-photo", "evap", "cell-test")  # default: stations with a cycle
    assert "NB-14" not in line.routes
    assert [s.id for s in line.route("AM-PHONE")] == ["array-photo", "evap", "cell-test"]
    with pytest.raises(ContractError, match="no route"):
        line.route("NB-14")


def test_bottleneck_is_largest_cycle_on_route(plant: Plant) -> None:
    line = plant.line("cq/display/amoled1")
    assert line.bottleneck_cycle_s("AM-PHONE") == 60.0
    assert line.bottleneck_cycle_s("AM-LAPTOP") == 70.0
    assert plant.line("cq/assembly/laptop1").bottleneck_cycle_s("NB-16") == 50.0


def test_lookups(plant: Plant) -> None:
    assert set(plant.stations) == {
        "cq/display/amoled1/array-photo", "cq/display/amoled1/evap", "cq/display/amoled1/cell-test",
        "cq/assembly/laptop1/smt", "cq/assembly/laptop1/final",
    }
    assert plant.station("cq/assembly/laptop1/smt").name == "SMT"
    assert plant.station(AssetPath("cq", "assembly", "laptop1", "smt")).id == "smt"
    assert plant.line_of("cq/assembly/laptop1/final").id == "laptop1"
    assert plant.line(AssetPath("cq", "display", "amoled1", "evap")).id == "amoled1"
    with pytest.raises(ContractError, match="not a station"):
        plant.station("cq/assembly/laptop1/nope")
    with pytest.raises(ContractError, match="not a line"):
        plant.line("cq/assembly/nope")
    with pytest.raises(ContractError, match="not a station"):
        plant.line("cq/display/amoled1").station("nope")


def test_assets_parents_first(plant: Plant) -> None:
    assets = list(plant.assets())
    assert assets[:3] == [("cq", "site"), ("cq/display", "area"), ("cq/display/amoled1", "line")]
    assert assets[-1] == ("cq/assembly/laptop1/final", "station")
    assert [k for _, k in assets].count("station") == 5


def test_line_calendar_replaces_site_calendar(plant: Plant) -> None:
    assert plant.line("cq/display/amoled1").calendar is plant.calendar
    own = plant.line("cq/assembly/laptop1").calendar
    assert [s.name for s in own.shifts] == ["day"]
    assert own.workdays == frozenset(range(5))
    assert [s.name for s in plant.calendar.shifts] == ["A", "B"]


def test_objects_are_frozen(plant: Plant) -> None:
    station = plant.station("cq/display/amoled1/evap")
    with pytest.raises(AttributeError):
        station.ideal_cycle_s = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        station.ideal_cycle_s["AM-PHONE"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        plant.products["X"] = plant.products["NB-14"]  # type: ignore[index]


def test_parse_plant_from_text_and_minimal_defaults() -> None:
    text = """
version: 1
site: {id: s1, name: Site, timezone: Europe/Berlin, epoch: 2024-03-01}
products: [{sku: P1}]
calendar: {shifts: [{name: A, start: "06:00", hours: 8}]}
areas:
  - id: a
    lines:
      - id: l
        stations:
          - {id: st, protocol: mqtt, ideal_cycle_s: {P1: 2}}
"""
    plant = parse_plant(text)
    assert plant.source == "<string>"
    assert plant.epoch == datetime(2024, 2, 29, 23, tzinfo=UTC)
    assert plant.settings == PlantSettings()
    line = plant.line("s1/a/l")
    assert line.type is LineType.GENERIC and line.name == "l"
    assert plant.calendar.workdays == frozenset(range(7)) and plant.calendar.holidays == frozenset()
    st = plant.station("s1/a/l/st")
    assert st.name == "st" and not st.key_process and st.digital_control and st.networked
    assert plant.products["P1"].name == "P1" and plant.products["P1"].family == ""
    assert line.route("P1") == (st,)


def test_sample_plant_path_points_into_package() -> None:
    path = sample_plant_path()
    assert path.name == "chongqing.yaml"
    assert path.parent.name == "plants"
    assert (path.parent.parent / "plant.py").is_file()


@pytest.mark.skipif(not sample_plant_path().is_file(), reason="uns/plants/chongqing.yaml not written yet")
def test_sample_plant_loads() -> None:
    plant = load_plant(sample_plant_path())
    assert plant.site_id == "cq"
    assert {line.type for line in plant.lines.values()} >= {LineType.PANEL, LineType.WAFER, LineType.LAPTOP}
    for path in plant.stations:
        assert str(plant.line_of(path).path) == path.rsplit("/", 1)[0]
    for line in plant.lines.values():
        assert line.stations
        for sku in line.routes:
            assert line.bottleneck_cycle_s(sku) > 0


def test_load_missing_file_is_plant_error(tmp_path: Path) -> None:
    with pytest.raises(PlantModelError, match="cannot read") as info:
        load_plant(tmp_path / "nope.yaml")
    assert info.value.source.endswith("nope.yaml")
