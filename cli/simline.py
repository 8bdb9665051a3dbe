"""Edge configuration for a simulated line: the tag map a plant engineer would write for the simulators.

Composes the two contracts the boxes publish (the simulator's OPC UA address space and its MQTT device
format, edge's config and tag-map schema), which is why it lives in the composition root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from twinline.simulators.params import line_params
from twinline.uns.plant import Plant, Protocol

# Simulated device status -> E10 state/reason (simulators/mqtt_devices.py documents the codes).
DEVICE_STATUS = {
    "RUN": "PRD/run", "IDLE": "SBY/idle", "STARVED": "SBY/starved", "BLOCKED": "SBY/blocked",
    "FAIL": "UDT/failure", "SETUP": "SDT/setup", "PM": "SDT/preventive_maintenance", "OFF": "NST/non_scheduled",
}
_VARS = [("State", "state", "state"), ("Reason", "state", "reason"), ("Product", "product", None),
         ("GoodCount", "count", "good"), ("ScrapCount", "count", "scrap"), ("ReworkCount", "count", "rework"),
         ("EnergyTotal", "energy", "total_kwh")]


def edge_config(plant: Plant, line_path: str, endpoint: str, mqtt_url: str, state_dir: Path,
                mqtt_prefix: str = "factory") -> dict[str, Any]:
    """The edge.yaml document (inline tag map) for the simulated line `line_path`."""
    line = plant.line(line_path)
    params = line_params(line)
    nsu = f"urn:twinline:sim:{line.id}"
    opcua_tags: list[dict[str, Any]] = []
    mqtt_stations: dict[str, str] = {}
    for station, sp in zip(line.stations, params.stations, strict=True):
        if station.protocol is Protocol.MQTT:
            mqtt_stations[station.id] = str(station.path)
            continue
        if station.protocol is not Protocol.OPCUA:
            continue
        base = f"nsu={nsu};s={line.id}.{station.id}"
        for var, kind, fld in _VARS:
            entry: dict[str, Any] = {"node": f"{base}.{var}", "station": str(station.path), "kind": kind}
            if fld:
                entry["field"] = fld
            opcua_tags.append(entry)
        for proc in sp.process:
            opcua_tags.append({"node": f"{base}.Process/{proc.name}", "station": str(station.path),
                               "kind": "process", "name": proc.name, "unit": proc.unit})
    sources: list[dict[str, Any]] = []
    tags: dict[str, Any] = {}
    if opcua_tags:
        sources.append({"type": "opcua", "name": "opcua", "endpoint": endpoint})
        tags["opcua"] = {"opcua": opcua_tags}
    if mqtt_stations:
        sources.append({"type": "mqtt", "name": "devices", "broker": mqtt_url,
                        "topic": f"{mqtt_prefix}/{line.id}/+/telemetry"})
        tags["mqtt"] = {"devices": {
            "station_key": {"topic_level": 2},
            "stations": mqtt_stations,
            "timestamp": {"path": "t_ms", "unit": "ms"},
            "fields": [
                {"path": "status", "kind": "state", "field": "status", "map": DEVICE_STATUS},
                {"path": "sku", "kind": "product"},
                {"path": "pass_total", "kind": "count", "field": "good"},
                {"path": "fail_total", "kind": "count", "field": "scrap"},
                {"path": "rework_total", "kind": "count", "field": "rework"},
                {"path": "kwh_total", "kind": "energy", "field": "total_kwh"},
                {"path": "temp_c", "kind": "process", "name": "temperature", "unit": "degC"},
            ],
        }}
    return {"agent": f"edge-{line.id}", "line": line_path, "state_dir": str(state_dir),
            "uplink": {"url": mqtt_url}, "sources": sources, "tags": tags}


def write_edge_config(plant: Plant, line_path: str, endpoint: str, mqtt_url: str, state_dir: Path) -> Path:
    """Write edge.yaml for the simulated line into `state_dir` and return its path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "edge.yaml"
    doc = edge_config(plant, line_path, endpoint, mqtt_url, state_dir)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
