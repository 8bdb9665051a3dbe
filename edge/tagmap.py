"""The tag map: which OPC UA node / device JSON field feeds which station, sample kind and field.

File layout (deploy/tagmap.yaml, or inline under `tags:` in edge.yaml):

    opcua:
      <source name>:
        - node: "nsu=urn:twinline:sim:L1;s=L1.S1.GoodCount"   # or ns=2;s=...; nsu= survives index changes
          station: site/area/line/S1
          kind: count            # state | count | product | process | energy | alarm
          field: good            # see FIELDS
    mqtt:
      <source name>:
        station_key: {topic_level: 2}          # or {path: device}: which part names the station
        stations: {ST01: site/area/line/ST01}   # key -> station path; or station_template: "s/a/l/{key}"
        timestamp: {path: t_ms, unit: ms}       # ms | s | iso
        fields:
          - {path: status, kind: state, field: status, map: {RUN: PRD/run, FAIL: UDT/failure}}
          - {path: pass_total, kind: count, field: good}
          - {path: temp_f, kind: process, name: temperature, unit: degC, scale: 0.5555556, offset: -17.7777778}

Kinds and fields: state -> state (E10 code) | reason | item_state (OPC UA Machinery) | packml | status
(device code through `map: {CODE: E10/reason}`); count -> good | scrap | rework (`cumulative: true`
by default: totals are turned into increments); product (the SKU); process -> needs `name` and `unit`,
value * scale + offset; energy -> total_kwh (cumulative, * scale) | power_kw; alarm -> needs `code`
(value truthy = active).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from twinline.edge.errors import ConfigError
from twinline.uns.errors import ContractError
from twinline.uns.states import E10, Reason, parse_state
from twinline.uns.topics import AssetPath

Kind = Literal["state", "count", "product", "process", "energy", "alarm"]
FIELDS: dict[str, frozenset[str | None]] = {
    "state": frozenset({"state", "reason", "item_state", "packml", "status"}),
    "count": frozenset({"good", "scrap", "rework"}),
    "product": frozenset({None, "product"}),
    "process": frozenset({None, "value"}),
    "energy": frozenset({"total_kwh", "power_kw"}),
    "alarm": frozenset({None, "active"}),
}


class _T(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class _TagFields(_T, kw_only=True, frozen=True):
    kind: Kind
    field: str | None = None
    name: str | None = None
    unit: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    map: dict[str, str] | None = None
    cumulative: bool = True
    code: str | None = None
    severity: int = 500
    text: str = ""


class OpcUaTagEntry(_TagFields, kw_only=True, frozen=True):
    node: str
    station: str


class MqttFieldEntry(_TagFields, kw_only=True, frozen=True):
    path: str
    code_path: str | None = None  # alarm: code / severity / text taken from the payload
    severity_path: str | None = None
    text_path: str | None = None


class StationKey(_T, kw_only=True, frozen=True):
    topic_level: int | None = None
    path: str | None = None


class TimestampSpec(_T, kw_only=True, frozen=True):
    path: str
    unit: Literal["ms", "s", "iso"] = "ms"


class MqttDeviceEntry(_T, kw_only=True, frozen=True):
    station_key: StationKey
    timestamp: TimestampSpec
    fields: list[MqttFieldEntry]
    stations: dict[str, str] | None = None
    station_template: str | None = None


class _TagFile(_T, kw_only=True, frozen=True):
    version: int = 1
    opcua: dict[str, list[OpcUaTagEntry]] = {}
    mqtt: dict[str, MqttDeviceEntry] = {}


@dataclass(frozen=True, slots=True)
class Tag:
    """One resolved mapping: where a value goes and how it is converted. `key` identifies it in the queue DB."""

    key: str
    station: AssetPath
    kind: Kind
    field: str | None = None
    name: str | None = None
    unit: str = ""
    scale: float = 1.0
    offset: float = 0.0
    status_map: dict[str, tuple[E10, Reason]] | None = None
    cumulative: bool = True
    code: str | None = None
    severity: int = 500
    text: str = ""


@dataclass(frozen=True, slots=True)
class OpcUaTag:
    node: str
    tag: Tag


@dataclass(frozen=True, slots=True)
class MqttDevice:
    """How one MQTT source's JSON maps onto stations: `fields` are (JSON path, tag template)."""

    station_level: int | None
    station_path_field: str | None
    stations: dict[str, AssetPath] | None
    station_template: str | None
    ts_path: str
    ts_unit: str
    fields: tuple[tuple[str, Tag], ...]
    alarm_paths: dict[str, tuple[str | None, str | None, str | None]] = field(default_factory=dict)

    def station_for(self, key: str) -> AssetPath | None:
        if self.stations is not None:
            return self.stations.get(key)
        if self.station_template is not None:
            try:
                return AssetPath.parse(self.station_template.format(key=key))
            except ContractError:
                return None
        return None


@dataclass(frozen=True, slots=True)
class TagMap:
    opcua: dict[str, tuple[OpcUaTag, ...]] = field(default_factory=dict)
    mqtt: dict[str, MqttDevice] = field(default_factory=dict)

    def stations(self) -> Iterator[AssetPath]:
        seen: set[AssetPath] = set()
        for tags in self.opcua.values():
            for t in tags:
                if t.tag.station not in seen:
                    seen.add(t.tag.station)
                    yield t.tag.station
        for dev in self.mqtt.values():
            for st in (dev.stations or {}).values():
                if st not in seen:
                    seen.add(st)
                    yield st


def load_tagmap(path: Path) -> TagMap:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("", f"cannot read tag map {path} ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError("", f"tag map {path} is not valid YAML ({exc})") from exc
    return parse_tagmap(data, source=str(path))


def parse_tagmap(data: Any, *, source: str = "<tagmap>", field_prefix: str = "") -> TagMap:
    from twinline.edge.config import translate

    try:
        raw = msgspec.convert(data if data is not None else {}, _TagFile)
    except msgspec.ValidationError as exc:
        err = translate(exc, source)
        hint = " (quote YAML keys like OFF / ON / YES / NO: unquoted they are booleans)" if "got `bool`" in \
            err.reason else ""
        raise ConfigError(field_prefix + err.field, err.reason + hint, source) from None
    if raw.version != 1:
        raise ConfigError(field_prefix + "version", f"unsupported tag map version {raw.version}", source)
    opcua: dict[str, tuple[OpcUaTag, ...]] = {}
    for name, entries in raw.opcua.items():
        tags = []
        for i, e in enumerate(entries):
            where = f"{field_prefix}opcua.{name}[{i}]"
            station = _station(e.station, f"{where}.station", source)
            tags.append(OpcUaTag(e.node, _tag(e, e.node, station, where, source)))
        opcua[name] = tuple(tags)
    mqtt = {name: _device(dev, f"{field_prefix}mqtt.{name}", source) for name, dev in raw.mqtt.items()}
    return TagMap(opcua, mqtt)


def _station(text: str, where: str, source: str) -> AssetPath:
    try:
        path = AssetPath.parse(text, where)
    except ContractError as exc:
        raise ConfigError(where, exc.reason, source) from None
    if not path.station:
        raise ConfigError(where, f"{text!r} is a line; a tag feeds a station (site/area/line/station)", source)
    return path


def _tag(e: _TagFields, key: str, station: AssetPath, where: str, source: str) -> Tag:
    def need(ok: bool, sub: str, reason: str) -> None:
        if not ok:
            raise ConfigError(f"{where}.{sub}", reason, source)

    allowed = FIELDS[e.kind]
    need(e.field in allowed, "field", f"{e.field!r} is not a field of kind {e.kind} "
                                      f"(one of {', '.join(sorted(str(a) for a in allowed if a))})")
    status_map: dict[str, tuple[E10, Reason]] | None = None
    if e.kind == "state" and e.field == "status":
        need(bool(e.map), "map", "a status field needs `map: {DEVICE_CODE: E10/reason}`")
        status_map = {}
        for code, target in (e.map or {}).items():
            state, _, reason = target.partition("/")
            try:
                status_map[str(code)] = parse_state(state, reason, f"{where}.map.{code}")
            except ContractError as exc:
                raise ConfigError(exc.field, exc.reason, source) from None
    if e.kind == "process":
        need(bool(e.name), "name", "a process value needs a name")
        need(e.unit is not None, "unit", "a process value needs its unit (after conversion), e.g. degC")
    if e.kind == "alarm":
        need(bool(e.code) or bool(getattr(e, "code_path", None)), "code", "an alarm needs a code (or code_path)")
        need(1 <= e.severity <= 1000, "severity", "must be 1-1000")
    need(e.scale == e.scale and e.offset == e.offset, "scale", "not a number")
    return Tag(key=f"{station}|{key}", station=station, kind=e.kind, field=e.field, name=e.name,
               unit=e.unit or "", scale=e.scale, offset=e.offset, status_map=status_map,
               cumulative=e.cumulative, code=e.code, severity=e.severity, text=e.text)


def _device(dev: MqttDeviceEntry, where: str, source: str) -> MqttDevice:
    key = dev.station_key
    if (key.topic_level is None) == (key.path is None):
        raise ConfigError(f"{where}.station_key", "give exactly one of topic_level or path", source)
    if (dev.stations is None) == (dev.station_template is None):
        raise ConfigError(f"{where}.stations", "give exactly one of stations or station_template", source)
    stations = None
    if dev.stations is not None:
        stations = {k: _station(v, f"{where}.stations.{k}", source) for k, v in dev.stations.items()}
    if not dev.fields:
        raise ConfigError(f"{where}.fields", "no fields mapped", source)
    placeholder = AssetPath("_", "_", "_", "_")
    fields = tuple((f.path, _tag(f, f.path, placeholder, f"{where}.fields[{i}]", source))
                   for i, f in enumerate(dev.fields))
    alarm_paths = {f.path: (f.code_path, f.severity_path, f.text_path) for f in dev.fields
                   if f.kind == "alarm" and (f.code_path or f.severity_path or f.text_path)}
    return MqttDevice(key.topic_level, key.path, stations, dev.station_template, dev.timestamp.path,
                      dev.timestamp.unit, fields, alarm_paths)


def dump_tagmap(opcua: dict[str, list[dict[str, Any]]]) -> str:
    """YAML text of a tag map (what `twinline edge browse` prints)."""
    return yaml.safe_dump({"version": 1, "opcua": opcua}, sort_keys=False, allow_unicode=True)


__all__ = ["FIELDS", "Kind", "MqttDevice", "OpcUaTag", "Tag", "TagMap", "dump_tagmap", "load_tagmap",
           "parse_tagmap"]
