"""Live simulators against real services: an independent asyncua client, the shared MQTT broker, faults."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from asyncua import Client, ua

from tests.helpers import async_wait_until
from twinline.simulators import faults
from twinline.simulators.live import LiveLine, serve_line
from twinline.uns.mqtturl import parse_mqtt_url
from twinline.uns.plant import load_plant, sample_plant_path

pytestmark = pytest.mark.integration

START = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # 09:00 Shanghai, Monday: the laptop line is scheduled
STATUSES = {"RUN", "IDLE", "STARVED", "BLOCKED", "FAIL", "SETUP", "PM", "OFF"}


class Collector:
    """A paho subscriber collecting (topic, payload) in its network thread."""

    def __init__(self, url: str, topic: str, client_id: str) -> None:
        parsed = parse_mqtt_url(url)
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if parsed.username is not None:
            self.client.username_pw_set(parsed.username, parsed.password)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(parsed.host, parsed.port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload))

    def snapshot(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
async def live(mqtt_url: str, uid: str) -> AsyncIterator[tuple[LiveLine, Collector]]:
    collector = Collector(mqtt_url, f"f-{uid}/#", f"sub-{uid}")
    try:
        await async_wait_until(collector.subscribed.is_set, timeout_s=30, what="test subscription")
        line = serve_line(load_plant(sample_plant_path()), "cq/terminal/nb1", speed=1200, seed=5, start=START,
                          mqtt_url=mqtt_url, mqtt_prefix=f"f-{uid}", client_id=f"sim-{uid}")
        async with line:
            yield line, collector
    finally:
        collector.close()


async def _child(node: Any, name: str) -> Any:
    for child in await node.get_children():
        if (await child.read_browse_name()).Name == name:
            return child
    raise AssertionError(f"no child {name}")


@pytest.mark.smoke
async def test_independent_client_browses_and_subscribes(live: tuple[LiveLine, Collector]) -> None:
    line, _ = live
    async with Client(line.endpoint, timeout=30) as client:
        ns = await client.get_namespace_index("urn:twinline:sim:nb1")
        line_obj = await _child(client.nodes.objects, "nb1")
        stations = {(await c.read_browse_name()).Name for c in await line_obj.get_children()}
        assert stations == {"smt-printer", "spi", "placement", "reflow", "aoi", "assembly", "pack"}  # opcua only
        reflow = await _child(line_obj, "reflow")
        names = {(await c.read_browse_name()).Name for c in await reflow.get_children()}
        assert {"State", "Reason", "ItemState", "Product", "GoodCount", "ScrapCount", "ReworkCount", "EnergyTotal",
                "Power", "Process"} <= names
        peak = await _child(await _child(reflow, "Process"), "peak_temp")
        assert peak.nodeid == ua.NodeId("nb1.reflow.Process/peak_temp", ns)
        unit = await _child(peak, "EngineeringUnits")
        assert await unit.read_value() == "degC"

        changes: list[ua.DataValue] = []

        class Handler:
            def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
                changes.append(data.monitored_item.Value)

        good = client.get_node(ua.NodeId("nb1.placement.GoodCount", ns))
        sub = await client.create_subscription(50, Handler())
        try:
            await sub.subscribe_data_change(good)
            await async_wait_until(lambda: len([c for c in changes if c.Value.Value > 0]) >= 3, timeout_s=45,
                                   what="GoodCount changes")
        finally:
            await sub.delete()
    truth_units = [u for u in line.truth.units if line.truth.stations[u[0]].endswith("/placement") and u[3]]
    for dv in changes:
        count = dv.Value.Value
        assert dv.ServerTimestamp is not None and dv.SourceTimestamp is not None
        if count > 0:  # the n-th good unit's completion time is the SourceTimestamp of count n
            assert dv.SourceTimestamp.replace(tzinfo=UTC) == line.truth.ts(truth_units[count - 1][1]).replace(
                microsecond=dv.SourceTimestamp.microsecond)


@pytest.mark.smoke
async def test_mqtt_devices_publish_the_native_format(live: tuple[LiveLine, Collector], uid: str) -> None:
    _line, collector = live

    def tester_docs() -> list[dict[str, Any]]:
        return [json.loads(p) for t, p in collector.snapshot() if t == f"f-{uid}/nb1/final-test/telemetry"]

    docs = await async_wait_until(lambda: [d for d in tester_docs() if d["pass_total"] > 2], timeout_s=45,
                                  what="final-test telemetry with passes")
    doc = docs[-1]
    assert set(doc) == {"device", "t_ms", "status", "pass_total", "fail_total", "rework_total", "sku", "kwh_total",
                        "temp_c"}
    assert doc["device"] == "final-test" and doc["status"] in STATUSES and doc["sku"] in {"NB-14", "NB-16", "NB-14P"}
    assert doc["t_ms"] >= START.timestamp() * 1000
    totals = [d["pass_total"] for d in tester_docs()]
    assert totals == sorted(totals)
    topics = {t for t, _ in collector.snapshot()}
    assert f"f-{uid}/nb1/placement/telemetry" not in topics  # OPC UA stations are not MQTT devices


async def test_fault_injection(live: tuple[LiveLine, Collector], uid: str) -> None:
    line, collector = live
    # freeze: the OPC UA value stops while the simulation goes on
    async with Client(line.endpoint, timeout=30) as client:
        ns = await client.get_namespace_index("urn:twinline:sim:nb1")
        node = client.get_node(ua.NodeId("nb1.pack.GoodCount", ns))
        await async_wait_until(lambda: line.model.stations[-1].good > 0, timeout_s=45, what="packed units")
        faults.freeze(line, "pack", "GoodCount")
        frozen = await node.read_value()
        await async_wait_until(lambda: line.model.stations[-1].good > frozen + 3, timeout_s=45, what="more units")
        assert await node.read_value() == frozen
        faults.unfreeze(line, "pack", "GoodCount")
        await async_wait_until(lambda: _read(node, frozen), timeout_s=45, what="unfrozen value moving")
    # drop the OPC UA server and bring it back on the same endpoint
    await faults.stop_opcua(line)
    with pytest.raises((OSError, TimeoutError, ua.UaError)):
        async with Client(line.endpoint, timeout=2):
            pass
    await faults.restart_opcua(line)
    async with Client(line.endpoint, timeout=30) as client:
        ns = await client.get_namespace_index("urn:twinline:sim:nb1")
        value = await client.get_node(ua.NodeId("nb1.pack.GoodCount", ns)).read_value()
        assert value >= frozen
    # malformed MQTT, skewed device clock, alarm burst
    sent = faults.publish_malformed(line, "final-test")
    faults.skew_clock(line, "final-test", 3600.0)
    faults.alarm_burst(line, "final-test", n=20)
    topic = f"f-{uid}/nb1/final-test/telemetry"
    raw = await async_wait_until(lambda: [p for t, p in collector.snapshot() if t == topic and not _is_doc(p)]
                                 if len([p for t, p in collector.snapshot() if t == topic and not _is_doc(p)]) >= sent
                                 else [], timeout_s=45, what="every malformed message")
    assert set(raw) == set(faults.MALFORMED.values())
    alarms = await async_wait_until(
        lambda: [json.loads(p) for t, p in collector.snapshot() if t == f"f-{uid}/nb1/final-test/alarm"
                 and b"BURST" in p], timeout_s=45, what="alarm burst")
    await async_wait_until(lambda: len([1 for t, p in collector.snapshot() if t == f"f-{uid}/nb1/final-test/alarm"
                                        and b"BURST" in p]) >= 40, timeout_s=45, what="40 alarm messages")
    assert alarms[0]["active"] is True
    skewed = await async_wait_until(lambda: [json.loads(p) for t, p in collector.snapshot()[-200:]
                                             if t == topic and _is_doc(p)
                                             and json.loads(p)["t_ms"] > line.sim_time().timestamp() * 1000 + 1800e3],
                                    timeout_s=45, what="skewed device time")
    assert skewed
    assert line.truth.alarms[line.truth.stations.index("cq/terminal/nb1/final-test")] >= 20


async def _read(node: Any, old: int) -> bool:
    return bool(await node.read_value() > old)


def _is_doc(payload: bytes) -> bool:
    try:
        doc = json.loads(payload)
    except ValueError:
        return False
    return isinstance(doc, dict) and isinstance(doc.get("device"), str) and "pass_total" in doc
