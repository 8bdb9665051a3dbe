"""The plant model (ISA-95 site / area / line / station) read from the plant YAML file.

One file describes the site, its products, the shift calendar and every line with its stations, their
ideal cycle time per product, which are key processes, what data they must deliver and how. The same
file configures the simulators (the free `sim:` mappings), the edge tag maps and the twin. Parsing is
strict: unknown keys, bad names, impossible times and dangling references are PlantModelError with the
YAML path of the entry (`areas[0].lines[1].stations[3].ideal_cycle_s.NB-14`) and a reason a plant
engineer can act on. The result is a tree of frozen dataclasses; nothing here does I/O except
`load_plant`, which reads the file it is given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from twinline.uns.calendar import Calendar, _Reader, parse_calendar, sub
from twinline.uns.errors import ContractError, PlantModelError
from twinline.uns.topics import AssetPath, Channel

FORMAT_VERSION = 1
_E = TypeVar("_E", bound=StrEnum)


class LineType(StrEnum):
    PANEL = "panel"
    WAFER = "wafer"
    LAPTOP = "laptop"
    GENERIC = "generic"


class Protocol(StrEnum):
    """How the line exposes a station's data: OPC UA server, MQTT publisher, or manual entry."""

    OPCUA = "opcua"
    MQTT = "mqtt"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class PlantSettings:
    """Per-site KPI choices (KPI.md); printed in every report, see `as_dict`."""

    changeover_counts_as_planned: bool = False
    runup_window_units: int = 10
    runup_rate_fraction: float = 0.95
    stale_after_s: float = 300.0
    grid_factor_kgco2_per_kwh: float = 0.5366
    grid_factor_region: str = "China national average"
    grid_factor_year: int = 2022
    kgce_per_kwh: float = 0.1229

    def as_dict(self) -> dict[str, bool | int | float | str]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    family: str
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)


@dataclass(frozen=True, slots=True)
class Station:
    """A station (equipment) of a line; `position` is 1-based in the line's station list."""

    id: str
    name: str
    path: AssetPath
    position: int
    key_process: bool
    digital_control: bool
    networked: bool
    protocol: Protocol
    required_data: tuple[str, ...]
    ideal_cycle_s: Mapping[str, float] = field(hash=False)
    sim: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True, slots=True)
class Line:
    """A production line; `routes` maps SKU -> station ids (defaults filled in), `calendar` is resolved."""

    id: str
    name: str
    type: LineType
    path: AssetPath
    stations: tuple[Station, ...]
    routes: Mapping[str, tuple[str, ...]] = field(hash=False)
    calendar: Calendar = field(hash=False)
    sim: Mapping[str, Any] = field(hash=False)

    def station(self, station_id: str) -> Station:
        for st in self.stations:
            if st.id == station_id:
                return st
        raise ContractError("station", f"{station_id!r} is not a station of line {self.path}")

    def route(self, sku: str) -> tuple[Station, ...]:
        """The stations product `sku` visits on this line, in order."""
        try:
            ids = self.routes[sku]
        except KeyError:
            raise ContractError("product", f"product {sku!r} has no route on line {self.path}") from None
        return tuple(self.station(i) for i in ids)

    def bottleneck_cycle_s(self, sku: str) -> float:
        """Line ideal cycle time of `sku`: the largest station ideal cycle time on its route (KPI.md 4)."""
        return max(st.ideal_cycle_s[sku] for st in self.route(sku))


@dataclass(frozen=True, slots=True)
class Area:
    id: str
    name: str
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class Plant:
    """A whole site. `epoch` is midnight local of the epoch date, in UTC; `source` is the file it came from."""

    site_id: str
    site_name: str
    timezone: ZoneInfo
    epoch: datetime
    settings: PlantSettings
    products: Mapping[str, Product] = field(hash=False)
    areas: tuple[Area, ...] = field(hash=False)
    calendar: Calendar = field(hash=False)
    source: str = "<string>"
    _lines: dict[str, Line] = field(init=False, repr=False, compare=False, hash=False)
    _stations: dict[str, tuple[Line, Station]] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        lines = {str(ln.path): ln for area in self.areas for ln in area.lines}
        stations = {str(st.path): (ln, st) for ln in lines.values() for st in ln.stations}
        object.__setattr__(self, "_lines", lines)
        object.__setattr__(self, "_stations", stations)

    @property
    def lines(self) -> dict[str, Line]:
        """Lines keyed by line path, e.g. `cq/display/amoled1`."""
        return dict(self._lines)

    @property
    def stations(self) -> dict[str, Station]:
        """Stations keyed by station path, e.g. `cq/display/amoled1/array-photo`."""
        return {path: st for path, (_, st) in self._stations.items()}

    def line(self, path: str | AssetPath) -> Line:
        key = path.line_path if isinstance(path, AssetPath) else str(path).strip("/")
        try:
            return self._lines[key]
        except KeyError:
            raise ContractError("asset", f"{key!r} is not a line of site {self.site_id}") from None

    def station(self, path: str | AssetPath) -> Station:
        return self._station_entry(path)[1]

    def line_of(self, station_path: str | AssetPath) -> Line:
        return self._station_entry(station_path)[0]

    def assets(self) -> Iterator[tuple[str, str]]:
        """(path, kind) for the site, each area, line and station, parents before children."""
        yield self.site_id, "site"
        for area in self.areas:
            yield f"{self.site_id}/{area.id}", "area"
            for ln in area.lines:
                yield str(ln.path), "line"
                for st in ln.stations:
                    yield str(st.path), "station"

    def _station_entry(self, path: str | AssetPath) -> tuple[Line, Station]:
        key = str(path).strip("/")
        try:
            return self._stations[key]
        except KeyError:
            raise ContractError("asset", f"{key!r} is not a station of site {self.site_id}") from None


# --------------------------------------------------------------------------- loading


def sample_plant_path() -> Path:
    """The sample plant shipped with the package (uns/plants/chongqing.yaml)."""
    return Path(__file__).resolve().parent / "plants" / "chongqing.yaml"


def load_plant(path: str | Path) -> Plant:
    """Read and parse a plant file; a missing or unreadable file is a PlantModelError too."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PlantModelError("", f"cannot read the plant file: {exc.strerror or exc}", source) from exc
    except UnicodeDecodeError as exc:
        raise PlantModelError("", f"the plant file is not UTF-8 text (byte {exc.start})", source) from exc
    return parse_plant(text, source)


def parse_plant(text: str, source: str = "<string>") -> Plant:
    """Parse plant YAML text into a validated Plant."""
    return _build_plant(_load_yaml(text, source), _Reader(source))


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys in a mapping (plain YAML keeps the last one silently)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _load_yaml(text: str, source: str) -> Any:
    if not text.strip():
        raise PlantModelError("", "the plant file is empty", source)
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise PlantModelError("", f"YAML syntax error{where}: {exc.problem or exc.context}", source) from exc
    except yaml.YAMLError as exc:
        raise PlantModelError("", f"YAML syntax error: {exc}", source) from exc
    if data is None:
        raise PlantModelError("", "the plant file is empty", source)
    if not isinstance(data, Mapping):
        raise PlantModelError("", f"the top level must be a mapping (version, site, ...), got {type(data).__name__}",
                              source)
    return data


def _zone(r: _Reader, value: Any, where: str) -> ZoneInfo:
    name = r.text(value, where)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    r.fail(where, f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)")


def _midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


# --------------------------------------------------------------------------- building the model

_TOP_KEYS = ("version", "site", "settings", "products", "calendar", "areas")
_SITE_KEYS = ("id", "name", "timezone", "epoch")
_PRODUCT_KEYS = ("sku", "name", "family", "attrs")
_AREA_KEYS = ("id", "name", "lines")
_LINE_KEYS = ("id", "name", "type", "stations", "routes", "calendar", "sim")
_STATION_KEYS = ("id", "name", "key_process", "digital_control", "networked", "protocol", "required_data",
                 "ideal_cycle_s", "sim")
_PROCESS_PREFIX = "process:"


def _build_plant(data: Mapping[str, Any], r: _Reader) -> Plant:
    top = r.mapping(data, "", _TOP_KEYS, required=("version", "site", "products", "calendar", "areas"))
    if top["version"] != FORMAT_VERSION:
        r.fail("version", f"unsupported plant file version {top['version']!r} (this build reads {FORMAT_VERSION})")
    site = r.mapping(top["site"], "site", _SITE_KEYS, required=_SITE_KEYS)
    site_id = r.name(site["id"], "site.id")
    tz = _zone(r, site["timezone"], "site.timezone")
    epoch = _midnight_utc(r.day(site["epoch"], "site.epoch"), tz)
    settings = _settings(r, top.get("settings"), "settings")
    products = _products(r, top["products"], "products")
    calendar = parse_calendar(r, top["calendar"], "calendar", tz)
    areas: list[Area] = []
    for i, node in enumerate(r.seq(top["areas"], "areas", empty_ok=False)):
        area = _area(r, node, sub("areas", i), site_id, products, calendar)
        if any(a.id == area.id for a in areas):
            r.fail(sub(sub("areas", i), "id"), f"duplicate area id {area.id!r}")
        areas.append(area)
    plant = Plant(site_id, r.text(site["name"], "site.name"), tz, epoch, settings, MappingProxyType(products),
                  tuple(areas), calendar, r.source)
    _check_downtime_stations(r, calendar, "calendar", set(plant.stations), f"site {site_id}")
    return plant


def _settings(r: _Reader, node: Any, where: str) -> PlantSettings:
    if node is None:
        return PlantSettings()
    data = r.mapping(node, where, PlantSettings.__dataclass_fields__)
    values: dict[str, Any] = {}
    for key, value in data.items():
        at = sub(where, key)
        if key == "changeover_counts_as_planned":
            values[key] = r.boolean(value, at)
        elif key == "runup_window_units":
            values[key] = r.integer(value, at, minimum=1)
        elif key == "runup_rate_fraction":
            values[key] = r.number(value, at, minimum=0.0, exclusive=True, maximum=1.0)
        elif key == "grid_factor_region":
            values[key] = r.text(value, at)
        elif key == "grid_factor_year":
            values[key] = r.integer(value, at, minimum=1990, maximum=2100)
        elif key == "stale_after_s":
            values[key] = r.number(value, at, minimum=0.0, exclusive=True)
        else:
            values[key] = r.number(value, at, minimum=0.0)
    return PlantSettings(**values)


def _products(r: _Reader, node: Any, where: str) -> dict[str, Product]:
    products: dict[str, Product] = {}
    for i, item in enumerate(r.seq(node, where, empty_ok=False)):
        at = sub(where, i)
        data = r.mapping(item, at, _PRODUCT_KEYS, required=("sku",))
        sku = r.name(data["sku"], sub(at, "sku"))
        if sku in products:
            r.fail(sub(at, "sku"), f"duplicate sku {sku!r}")
        name = r.text(data["name"], sub(at, "name")) if "name" in data else sku
        family = r.text(data["family"], sub(at, "family")) if "family" in data else ""
        attrs = MappingProxyType(r.free_mapping(data.get("attrs"), sub(at, "attrs")))
        products[sku] = Product(sku, name, family, attrs)
    return products


def _area(r: _Reader, node: Any, where: str, site_id: str, products: Mapping[str, Product],
          site_calendar: Calendar) -> Area:
    data = r.mapping(node, where, _AREA_KEYS, required=("id", "lines"))
    area_id = r.name(data["id"], sub(where, "id"))
    lines: list[Line] = []
    for i, item in enumerate(r.seq(data["lines"], sub(where, "lines"), empty_ok=False)):
        line = _line(r, item, sub(sub(where, "lines"), i), AssetPath(site_id, area_id, "-"), products, site_calendar)
        if any(ln.id == line.id for ln in lines):
            r.fail(sub(sub(sub(where, "lines"), i), "id"), f"duplicate line id {line.id!r} in area {area_id!r}")
        lines.append(line)
    name = r.text(data["name"], sub(where, "name")) if "name" in data else area_id
    return Area(area_id, name, tuple(lines))


def _line(r: _Reader, node: Any, where: str, area: AssetPath, products: Mapping[str, Product],
          site_calendar: Calendar) -> Line:
    data = r.mapping(node, where, _LINE_KEYS, required=("id", "stations"))
    line_id = r.name(data["id"], sub(where, "id"))
    path = AssetPath(area.site, area.area, line_id)
    line_type = _choice(r, LineType, data.get("type", "generic"), sub(where, "type"))
    stations: list[Station] = []
    for i, item in enumerate(r.seq(data["stations"], sub(where, "stations"), empty_ok=False)):
        st = _station(r, item, sub(sub(where, "stations"), i), path, i + 1, products)
        if any(s.id == st.id for s in stations):
            r.fail(sub(sub(sub(where, "stations"), i), "id"), f"duplicate station id {st.id!r} on line {path}")
        stations.append(st)
    routes = _routes(r, data.get("routes"), sub(where, "routes"), stations, products)
    calendar = site_calendar
    if data.get("calendar") is not None:
        calendar = parse_calendar(r, data["calendar"], sub(where, "calendar"), site_calendar.timezone)
        _check_downtime_stations(r, calendar, sub(where, "calendar"), {str(s.path) for s in stations},
                                 f"line {path}; a line calendar covers only its own stations")
    name = r.text(data["name"], sub(where, "name")) if "name" in data else line_id
    sim = MappingProxyType(r.free_mapping(data.get("sim"), sub(where, "sim")))
    return Line(line_id, name, line_type, path, tuple(stations), MappingProxyType(routes), calendar, sim)


def _station(r: _Reader, node: Any, where: str, line: AssetPath, position: int,
             products: Mapping[str, Product]) -> Station:
    data = r.mapping(node, where, _STATION_KEYS, required=("id", "protocol"))
    station_id = r.name(data["id"], sub(where, "id"))
    flags = {key: r.boolean(data[key], sub(where, key)) if key in data else default
             for key, default in (("key_process", False), ("digital_control", True), ("networked", True))}
    cycles: dict[str, float] = {}
    for sku, value in r.free_mapping(data.get("ideal_cycle_s"), sub(where, "ideal_cycle_s")).items():
        at = sub(sub(where, "ideal_cycle_s"), sku)
        if sku not in products:
            r.fail(at, f"unknown product {sku!r} (products: {', '.join(products)})")
        cycles[sku] = r.number(value, at, minimum=0.0, exclusive=True)
    return Station(
        id=station_id,
        name=r.text(data["name"], sub(where, "name")) if "name" in data else station_id,
        path=AssetPath(line.site, line.area, line.line, station_id),
        position=position,
        key_process=flags["key_process"],
        digital_control=flags["digital_control"],
        networked=flags["networked"],
        protocol=_choice(r, Protocol, data["protocol"], sub(where, "protocol")),
        required_data=_required_data(r, data.get("required_data"), sub(where, "required_data")),
        ideal_cycle_s=MappingProxyType(cycles),
        sim=MappingProxyType(r.free_mapping(data.get("sim"), sub(where, "sim"))),
    )


def _required_data(r: _Reader, node: Any, where: str) -> tuple[str, ...]:
    items: list[str] = []
    channels = [c.value for c in Channel]
    for i, item in enumerate(r.seq(node, where)):
        text = r.text(item, sub(where, i))
        if text.startswith(_PROCESS_PREFIX):
            if not text[len(_PROCESS_PREFIX):].strip():
                r.fail(sub(where, i), "process: needs a process value name, e.g. process:exposure_dose")
        elif text not in channels:
            r.fail(sub(where, i), f"{text!r} is not a data channel ({', '.join(channels)}) or process:<name>")
        if text in items:
            r.fail(sub(where, i), f"{text!r} is listed twice")
        items.append(text)
    return tuple(items)


def _routes(r: _Reader, node: Any, where: str, stations: list[Station],
            products: Mapping[str, Product]) -> dict[str, tuple[str, ...]]:
    given = r.free_mapping(node, where)
    by_id = {s.id: s for s in stations}
    routes: dict[str, tuple[str, ...]] = {}
    for sku, ids in given.items():
        at = sub(where, sku)
        if sku not in products:
            r.fail(at, f"unknown product {sku!r} (products: {', '.join(products)})")
        route = []
        for i, station_id in enumerate(r.seq(ids, at, empty_ok=False)):
            sid = r.text(station_id, sub(at, i))
            if sid not in by_id:
                r.fail(sub(at, i), f"unknown station {sid!r} (stations of this line: {', '.join(by_id)})")
            if sku not in by_id[sid].ideal_cycle_s:
                r.fail(sub(at, i), f"station {sid!r} has no ideal_cycle_s for {sku!r}, so {sku} cannot be routed "
                                   "through it")
            route.append(sid)
        routes[sku] = tuple(route)
    for sku in products:
        if sku not in routes:
            default = tuple(s.id for s in stations if sku in s.ideal_cycle_s)
            if default:
                routes[sku] = default
    return routes


def _check_downtime_stations(r: _Reader, calendar: Calendar, where: str, known: set[str], scope: str) -> None:
    for i, entry in enumerate(calendar.planned_downtime):
        for j, path in enumerate(entry.stations or ()):
            if path not in known:
                at = sub(sub(sub(sub(where, "planned_downtime"), i), "stations"), j)
                r.fail(at, f"unknown station {path!r} (not a station of {scope})")


def _choice(r: _Reader, enum: type[_E], value: Any, where: str) -> _E:
    if isinstance(value, str) and value in {e.value for e in enum}:
        return enum(value)
    r.fail(where, f"{value!r} is not one of {', '.join(e.value for e in enum)}")


__all__ = [
    "FORMAT_VERSION", "Area", "Calendar", "Line", "LineType", "Plant", "PlantSettings", "Product", "Protocol",
    "Station", "load_plant", "parse_plant", "sample_plant_path",
]
