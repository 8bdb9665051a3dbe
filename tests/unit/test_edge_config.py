"""Config and tag map validation: errors name the field; the deploy examples parse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from twinline.edge.config import parse_config
from twinline.edge.errors import ConfigError
from twinline.edge.mqtt_source import DeviceMapper, json_path
from twinline.edge.tagmap import load_tagmap, parse_tagmap

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
TAGS = {"opcua": {"opc": [{"node": "ns=2;s=x", "station": "s/a/l/st", "kind": "count", "field": "good"}]}}


def base(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"agent": "a1", "line": "s/a/l", "uplink": {"url": "mqtt://h:1883"},
                           "sources": [{"type": "opcua", "name": "opc", "endpoint": "opc.tcp://h:4840"}], "tags": TAGS}
    cfg.update(over)
    return cfg


@pytest.mark.parametrize(("over", "field"), [
    ({"agent": "bad name"}, "agent"),
    ({"sources": [{"type": "opcua", "name": "opc", "endpoint": 5}]}, "sources[0].endpoint"),
    ({"queue": {"overflow": "explode"}}, "queue.overflow"),
    ({"uplink": {"url": "http://h"}}, "uplink.url"),
    ({"sources": [{"type": "opcua", "name": "opc", "endpoint": "opc.tcp://h",
                   "security": {"policy": "Basic256Sha256"}}]}, "sources[0].security.certificate"),
    ({"tags": {"opcua": {"opc": [{"node": "n", "station": "s/a/l/st", "kind": "count", "field": "units"}]}}},
     "tags.opcua.opc[0].field"),
    ({"tags": {"opcua": {"opc": [{"node": "n", "station": "x/y/other/st", "kind": "product"}]}}}, "tags"),
])
def test_errors_name_the_field(over: dict[str, Any], field: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(base(**over), base_dir=tmp_path)
    assert exc.value.field == field, str(exc.value)


def test_broker_falls_back_to_settings(tmp_path: Path) -> None:
    cfg, tags = parse_config(base(uplink={}), base_dir=tmp_path, mqtt_url="mqtt://u:p@broker:1883")
    assert cfg.uplink.url == "mqtt://u:p@broker:1883" and "p@" not in str(cfg.redacted())
    assert [t.tag.field for t in tags.opcua["opc"]] == ["good"]


def test_deploy_examples_parse(tmp_path: Path) -> None:
    tagmap = load_tagmap(ROOT / "deploy" / "tagmap.yaml")
    assert tagmap.opcua["smt"] and tagmap.mqtt["testers"]
    data = yaml.safe_load((ROOT / "deploy" / "edge.yaml").read_text())
    for f in ("plant-ca.pem", "mqtt.pass", "edge-cert.der", "edge-key.pem", "opcua.pass"):
        (tmp_path / f).write_text("x")
    text = yaml.safe_dump(data).replace("/etc/twinline/", f"{tmp_path}/")
    data = yaml.safe_load(text)
    data["tagmap"] = str(ROOT / "deploy" / "tagmap.yaml")
    cfg, _ = parse_config(data, base_dir=tmp_path)
    assert cfg.queue.overflow == "drop_oldest" and len(cfg.sources) == 2


def test_device_json_mapping() -> None:
    tagmap = parse_tagmap(yaml.safe_load((ROOT / "deploy" / "tagmap.yaml").read_text()))
    mapper = DeviceMapper(tagmap.mqtt["testers"])
    readings = mapper.readings("factory/nb1/final-test/telemetry",
                               b'{"device":"final-test","t_ms":1700000000000,"status":"RUN","pass_total":3,'
                               b'"fail_total":0,"sku":null,"temp_c":41.5}')
    assert {r.tag.station.station for r in readings} == {"final-test"}
    assert {r.tag.field or r.tag.kind for r in readings} == {"status", "good", "scrap", "process"}
    assert readings[0].ts is not None and readings[0].ts.year == 2023
    assert json_path({"a": [{"b": 1}]}, "a.0.b") == 1 and json_path({"a": 1}, "a.b") is None
