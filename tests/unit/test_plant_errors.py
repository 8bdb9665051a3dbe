"""Malformed plant files: each error names the exact YAML path and says why in a plant engineer's words."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from twinline.uns.errors import PlantModelError
from twinline.uns.plant import parse_plant

pytestmark = pytest.mark.unit

FULL = Path(__file__).parent / "plants" / "full.yaml"
BASE: dict[str, Any] = yaml.safe_load(FULL.read_text(encoding="utf-8"))

Doc = dict[str, Any]


def _amoled(d: Doc) -> Doc:
    line: Doc = d["areas"][0]["lines"][0]
    return line


def _photo(d: Doc) -> Doc:
    station: Doc = _amoled(d)["stations"][0]
    return station


def _set(getter: Callable[[Doc], Any], key: str | int, value: Any) -> Callable[[Doc], None]:
    def mutate(d: Doc) -> None:
        getter(d)[key] = value
    return mutate


def _delete(getter: Callable[[Doc], Any], key: str) -> Callable[[Doc], None]:
    def mutate(d: Doc) -> None:
        del getter(d)[key]
    return mutate


def _parse_mutated(mutate: Callable[[Doc], None]) -> PlantModelError:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    with pytest.raises(PlantModelError) as info:
        parse_plant(yaml.safe_dump(doc, sort_keys=False), "bad.yaml")
    return info.value


def _site(d: Doc) -> Doc:
    site: Doc = d["site"]
    return site


def _cal(d: Doc) -> Doc:
    cal: Doc = d["calendar"]
    return cal


AM = "areas[0].lines[0]"
PHOTO = f"{AM}.stations[0]"

CASES: list[tuple[str, Callable[[Doc], None], str, str]] = [
    ("unknown top key", _set(lambda d: d, "line", []), "line", "unknown key"),
    ("unknown station key", _set(_photo, "ideal_cycle", 3), f"{PHOTO}.ideal_cycle", "allowed"),
    ("unknown settings key", _set(lambda d: d["settings"], "oee_target", 0.8), "settings.oee_target", "unknown"),
    ("wrong version", _set(lambda d: d, "version", 2), "version", "unsupported"),
    ("missing site", _delete(lambda d: d, "site"), "site", "missing"),
    ("missing timezone", _delete(_site, "timezone"), "site.timezone", "missing"),
    ("unknown timezone", _set(_site, "timezone", "Asia/Chongqingg"), "site.timezone", "unknown time zone"),
    ("bad site id", _set(_site, "id", "c q"), "site.id", "not a valid name"),
    ("bad epoch", _set(_site, "epoch", "2020-13-01"), "site.epoch", "not a date"),
    ("duplicate sku", lambda d: d["products"].append({"sku": "NB-14"}), "products[4].sku", "duplicate"),
    ("sku with slash", _set(lambda d: d["products"][1], "sku", "NB/16"), "products[1].sku", "not a valid name"),
    ("attrs not mapping", _set(lambda d: d["products"][0], "attrs", [1, 2]), "products[0].attrs", "mapping"),
    ("duplicate area", lambda d: d["areas"].append(copy.deepcopy(d["areas"][0])), "areas[2].id", "duplicate"),
    ("duplicate station", lambda d: _amoled(d)["stations"].append(copy.deepcopy(_photo(d))),
     f"{AM}.stations[3].id", "duplicate station id"),
    ("station id with wildcard", _set(_photo, "id", "photo#1"), f"{PHOTO}.id", "not a valid name"),
    ("cycle unknown product", _set(lambda d: _photo(d)["ideal_cycle_s"], "NB-99", 3.0),
     f"{PHOTO}.ideal_cycle_s.NB-99", "unknown product"),
    ("cycle zero", _set(lambda d: _photo(d)["ideal_cycle_s"], "AM-PHONE", 0), f"{PHOTO}.ideal_cycle_s.AM-PHONE",
     "greater than 0"),
    ("cycle negative", _set(lambda d: _photo(d)["ideal_cycle_s"], "AM-PHONE", -5.0),
     f"{PHOTO}.ideal_cycle_s.AM-PHONE", "greater than"),
    ("cycle text", _set(lambda d: _photo(d)["ideal_cycle_s"], "AM-PHONE", "55 s"), f"{PHOTO}.ideal_cycle_s.AM-PHONE",
     "number"),
    ("cycle nan", _set(lambda d: _photo(d)["ideal_cycle_s"], "AM-PHONE", float("nan")),
     f"{PHOTO}.ideal_cycle_s.AM-PHONE", "finite"),
    ("cycle bool", _set(lambda d: _photo(d)["ideal_cycle_s"], "AM-PHONE", True), f"{PHOTO}.ideal_cycle_s.AM-PHONE",
     "number"),
    ("route unknown station", _set(lambda d: _amoled(d)["routes"], "AM-LAPTOP", ["array-photo", "bake"]),
     f"{AM}.routes.AM-LAPTOP[1]", "unknown station"),
    ("route station without cycle", _set(lambda d: _amoled(d)["routes"], "AM-LAPTOP", ["evap", "cell-test"]),
     f"{AM}.routes.AM-LAPTOP[1]", "no ideal_cycle_s"),
    ("route unknown product", _set(lambda d: _amoled(d)["routes"], "XX-1", ["evap"]), f"{AM}.routes.XX-1",
     "unknown product"),
    ("empty route", _set(lambda d: _amoled(d)["routes"], "AM-PHONE", []), f"{AM}.routes.AM-PHONE", "empty"),
    ("unknown line type", _set(_amoled, "type", "pcb"), f"{AM}.type", "not one of"),
    ("unknown protocol", _set(_photo, "protocol", "modbus"), f"{PHOTO}.protocol", "opcua"),
    ("missing protocol", _delete(_photo, "protocol"), f"{PHOTO}.protocol", "missing"),
    ("bad required channel", _set(_photo, "required_data", ["state", "temperature"]), f"{PHOTO}.required_data[1]",
     "not a data channel"),
    ("empty process name", _set(_photo, "required_data", ["process:"]), f"{PHOTO}.required_data[0]",
     "process value name"),
    ("repeated required item", _set(_photo, "required_data", ["count", "count"]), f"{PHOTO}.required_data[1]",
     "twice"),
    ("flag not bool", _set(_photo, "key_process", "yes please"), f"{PHOTO}.key_process", "true or false"),
    ("no stations", _set(_amoled, "stations", []), f"{AM}.stations", "empty"),
    ("bad shift time", _set(lambda d: _cal(d)["shifts"][0], "start", "25:00"), "calendar.shifts[0].start",
     "time of day"),
    ("shift time garbage", _set(lambda d: _cal(d)["shifts"][0], "start", "8am"), "calendar.shifts[0].start",
     "HH:MM"),
    ("shift too long", _set(lambda d: _cal(d)["shifts"][1], "hours", 25), "calendar.shifts[1].hours", "at most 24"),
    ("overlapping shifts", _set(lambda d: _cal(d)["shifts"][1], "start", "19:00"), "calendar.shifts[1]", "overlaps"),
    ("night shift overlaps next morning", _set(lambda d: _cal(d)["shifts"][1], "hours", 13), "calendar.shifts[1]",
     "overlaps"),
    ("duplicate shift name", _set(lambda d: _cal(d)["shifts"][1], "name", "A"), "calendar.shifts[1].name",
     "duplicate"),
    ("bad weekday", _set(_cal, "workdays", ["mon", "funday"]), "calendar.workdays[1]", "not a weekday"),
    ("bad holiday", _set(_cal, "holidays", ["2026-02-30"]), "calendar.holidays[0]", "not a date"),
    ("downtime end before start", _set(lambda d: _cal(d)["planned_downtime"][1], "end", "2026-12-10T01:00:00+08:00"),
     "calendar.planned_downtime[1].end", "not after start"),
    ("downtime end equals start", _set(lambda d: _cal(d)["planned_downtime"][1], "end", "2026-12-10T02:00:00+08:00"),
     "calendar.planned_downtime[1].end", "not after"),
    ("downtime naive", _set(lambda d: _cal(d)["planned_downtime"][1], "start", "2026-12-10T01:00:00"),
     "calendar.planned_downtime[1].start", "naive"),
    ("downtime unknown station", _set(lambda d: _cal(d)["planned_downtime"][1], "stations",
                                      ["cq/display/amoled1/array-photo", "cq/display/amoled1/litho"]),
     "calendar.planned_downtime[1].stations[1]", "unknown station"),
    ("downtime names a line", _set(lambda d: _cal(d)["planned_downtime"][1], "stations", ["cq/display/amoled1"]),
     "calendar.planned_downtime[1].stations[0]", "is a line"),
    ("downtime daily without minutes", _delete(lambda d: _cal(d)["planned_downtime"][0], "minutes"),
     "calendar.planned_downtime[0].minutes", "missing"),
    ("downtime daily and dated", _set(lambda d: _cal(d)["planned_downtime"][0], "end", "2026-12-10T02:00:00+08:00"),
     "calendar.planned_downtime[0]", "either"),
    ("line calendar names other line's station",
     _set(lambda d: d["areas"][1]["lines"][0]["calendar"]["planned_downtime"][0], "stations",
          ["cq/display/amoled1/evap"]),
     "areas[1].lines[0].calendar.planned_downtime[0].stations[0]", "own stations"),
    ("line calendar bad shift", _set(lambda d: d["areas"][1]["lines"][0]["calendar"]["shifts"][0], "start", "24:00"),
     "areas[1].lines[0].calendar.shifts[0].start", "time of day"),
    ("settings fraction above one", _set(lambda d: d["settings"], "runup_rate_fraction", 1.5),
     "settings.runup_rate_fraction", "at most 1"),
    ("settings units not whole", _set(lambda d: d["settings"], "runup_window_units", 2.5),
     "settings.runup_window_units", "whole number"),
    ("settings bool wrong", _set(lambda d: d["settings"], "changeover_counts_as_planned", "no"),
     "settings.changeover_counts_as_planned", "true or false"),
    ("areas not a list", _set(lambda d: d, "areas", {"id": "x"}), "areas", "list"),
    ("station not a mapping", _set(lambda d: _amoled(d)["stations"], 1, "evap"), f"{AM}.stations[1]", "mapping"),
]


@pytest.mark.parametrize(("mutate", "field", "word"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_plant(mutate: Callable[[Doc], None], field: str, word: str) -> None:
    error = _parse_mutated(mutate)
    assert error.field == field, error
    assert word in error.reason, error
    assert error.source == "bad.yaml"
    assert str(error).startswith(f"bad.yaml: {field}: ")


def test_base_document_is_valid() -> None:
    parse_plant(yaml.safe_dump(BASE, sort_keys=False))


def _text_error(text: str) -> PlantModelError:
    with pytest.raises(PlantModelError) as info:
        parse_plant(text, "t.yaml")
    return info.value


def test_yaml_syntax_error_has_line_number() -> None:
    text = FULL.read_text(encoding="utf-8").replace("type: panel", "type: [panel")
    error = _text_error(text)
    assert error.field == ""
    assert "YAML syntax error at line" in error.reason


def test_yaml_syntax_error_line_is_right() -> None:
    error = _text_error("version: 1\nsite: {id: cq\nproducts: []\n")
    assert error.field == "" and "line 3" in error.reason


def test_duplicate_yaml_key() -> None:
    error = _text_error("version: 1\nversion: 1\n")
    assert "duplicate key 'version'" in error.reason and "line 2" in error.reason


@pytest.mark.parametrize("text", ["", "   \n# only a comment\n"])
def test_empty_file(text: str) -> None:
    error = _text_error(text)
    assert error.field == "" and "empty" in error.reason


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_top_level_not_mapping(text: str) -> None:
    error = _text_error(text)
    assert error.field == "" and "top level must be a mapping" in error.reason


def test_unquoted_time_is_explained() -> None:
    text = FULL.read_text(encoding="utf-8").replace('start: "20:00"', "start: 20:00")
    error = _text_error(text)
    assert error.field == "calendar.shifts[1].start"
    assert "quotes" in error.reason and "1200" in error.reason


def test_unquoted_aware_datetime_and_date_are_accepted() -> None:
    text = (FULL.read_text(encoding="utf-8")
            .replace('"2026-12-10T02:00:00+08:00"', "2026-12-10T02:00:00+08:00")
            .replace('epoch: "2020-01-01"', "epoch: 2020-01-01"))
    plant = parse_plant(text)
    assert plant.calendar.planned_downtime[1].start is not None
    assert plant.calendar.planned_downtime[1].start.utcoffset() is not None


def test_unknown_key_message_lists_allowed() -> None:
    error = _parse_mutated(_set(_photo, "cycle_s", 1))
    assert "ideal_cycle_s" in error.reason and "'cycle_s'" in error.reason


def test_python_tags_are_rejected() -> None:
    error = _text_error("version: !!python/object/apply:os.system ['true']\n")
    assert error.field == "" and "YAML" in error.reason
