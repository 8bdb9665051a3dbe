"""MQTT device source: a device broker's topics with device-native JSON -> normaliser -> queue.

The mapping is configuration (tag map `mqtt.<source>`): which topic level or JSON field names the
station, where the device timestamp is, and per JSON path (dotted, `a.b.0.c`) the sample kind and field
(status codes through a map, cumulative counters, units by scale / offset). A persistent session
(fixed client id, clean session off) with MANUAL acknowledgement: a message is acknowledged to the
device broker only after its samples are committed to the queue, so a killed agent gets it again.
Messages go from paho's thread to the event loop through a bounded queue (`_MAX_WAITING`, the overflow
policy is `reconnect`: the broker re-delivers what was never acknowledged); the broker's in-flight
window keeps it from filling in practice. Messages waiting together are committed together.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from twinline.edge.config import EdgeConfig, MqttSourceConfig, read_secret
from twinline.edge.errors import MappingError, SourceError
from twinline.edge.normalise import Normaliser, Reading
from twinline.edge.stats import SourceStats
from twinline.edge.tagmap import MqttDevice, Tag
from twinline.uns.mqtturl import parse_mqtt_url, tls_context
from twinline.uns.topics import AssetPath

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
Sink = Callable[[str, Normaliser, list[Reading], datetime], Awaitable[None]]
_MAX_WAITING = 20_000
_MAX_BATCH = 2_000


def json_path(doc: Any, path: str) -> Any:
    """`a.b.0.c` into nested dicts / lists; None when any step is missing."""
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
        if cur is None:
            return None
    return cur


class DeviceMapper:
    """Turns one device message (topic + JSON) into readings, per the tag map."""

    def __init__(self, device: MqttDevice) -> None:
        self.device = device
        self._tags: dict[tuple[AssetPath, str], Tag] = {}

    def station(self, topic: str, doc: Any) -> AssetPath:
        dev = self.device
        if dev.station_level is not None:
            parts = topic.split("/")
            key = parts[dev.station_level] if dev.station_level < len(parts) else None
        else:
            value = json_path(doc, dev.station_path_field or "")
            key = str(value) if value is not None else None
        station = dev.station_for(key) if key is not None else None
        if station is None:
            raise MappingError(f"no station for key {key!r} (topic {topic})")
        return station

    def timestamp(self, doc: Any) -> datetime | None:
        raw = json_path(doc, self.device.ts_path)
        if raw is None:
            return None
        try:
            if self.device.ts_unit == "iso":
                ts = datetime.fromisoformat(str(raw))
                if ts.tzinfo is None:
                    raise MappingError(f"timestamp {raw!r} has no time zone")
                return ts.astimezone(UTC)
            scale = 1000.0 if self.device.ts_unit == "ms" else 1.0
            return datetime.fromtimestamp(float(raw) / scale, UTC)
        except (TypeError, ValueError, OverflowError):
            raise MappingError(f"timestamp {raw!r} is not {self.device.ts_unit}") from None

    def readings(self, topic: str, payload: bytes) -> list[Reading]:
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MappingError(f"payload on {topic} is not JSON: {exc}") from None
        station = self.station(topic, doc)
        ts = self.timestamp(doc)
        out = []
        for path, template in self.device.fields:
            value = json_path(doc, path)
            if value is None:
                continue
            tag = self._tags.get((station, path))
            if tag is None:
                tag = replace(template, station=station, key=f"{station}|{path}")
                self._tags[(station, path)] = tag
            paths = self.device.alarm_paths.get(path)
            if paths is not None:
                code, severity, text = (json_path(doc, p) if p else None for p in paths)
                value = {"active": value, "code": code, "severity": severity, "text": text}
            out.append(Reading(tag, value, ts))
        return out


class MqttSource:
    def __init__(self, cfg: EdgeConfig, src: MqttSourceConfig, device: MqttDevice, sink: Sink,
                 normaliser: Normaliser, stats: SourceStats, *, clock: Clock) -> None:
        self.cfg = cfg
        self.src = src
        self.mapper = DeviceMapper(device)
        self.sink = sink
        self.normaliser = normaliser
        self.stats = stats
        self.clock = clock
        self.name = cfg.source_id(src.name)
        self.url = parse_mqtt_url(src.broker, "broker")
        self._waiting: asyncio.Queue[tuple[int, mqtt.MQTTMessage]] = asyncio.Queue(_MAX_WAITING)
        self._generation = 0
        self._client_ref: mqtt.Client | None = None

    def _client(self, loop: asyncio.AbstractEventLoop) -> mqtt.Client:
        src = self.src
        v5 = src.protocol == "5"
        client_id = src.client_id or self.url.client_id or f"twinline-edge-{self.cfg.agent}-{src.name}"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                             clean_session=None if v5 else False, manual_ack=True)
        client.reconnect_delay_set(max(1, int(src.reconnect_min_s)), max(1, int(src.reconnect_max_s)))
        if self.url.username:
            password = read_secret(self.cfg, src.password_file) if src.password_file else self.url.password
            client.username_pw_set(self.url.username, password)
        if self.url.tls:
            client.tls_set_context(tls_context(self.url.ca_file))

        def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
            if getattr(rc, "is_failure", False):
                loop.call_soon_threadsafe(self.stats.error, f"device broker refused: {rc}")
                return
            c.subscribe(src.topic, qos=src.qos)

            def up() -> None:
                self._generation += 1
                self.stats.connected = True
                log.info("source %s: subscribed %s on %s", self.name, src.topic, self.url)
            loop.call_soon_threadsafe(up)

        def on_disconnect(c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
            def down() -> None:
                self.stats.connected = False
                self.stats.reconnects_total += 1
                self.stats.error(f"device broker connection lost ({rc})")
            loop.call_soon_threadsafe(down)

        def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
            loop.call_soon_threadsafe(self._enqueue, msg)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        return client

    def _enqueue(self, msg: mqtt.MQTTMessage) -> None:
        try:
            self._waiting.put_nowait((self._generation, msg))
        except asyncio.QueueFull:  # overflow policy `reconnect`: un-acked messages are re-delivered
            self.stats.error("receive queue full: reconnecting to get un-acked messages again")
            if self._client_ref is not None:
                self._client_ref.reconnect()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._client(loop)
        self._client_ref = client
        try:
            client.connect_async(self.url.host, self.url.port, 30)
        except (OSError, ValueError) as exc:
            raise SourceError(f"bad device broker {self.url}: {exc}") from exc
        client.loop_start()  # paho reconnects by itself (reconnect_delay_set); on_connect re-subscribes
        try:
            while True:
                batch = [await self._waiting.get()]
                while len(batch) < _MAX_BATCH and not self._waiting.empty():
                    batch.append(self._waiting.get_nowait())
                await self._handle(client, batch)
        finally:
            client.disconnect()
            client.loop_stop()
            self._client_ref = None

    async def _handle(self, client: mqtt.Client, batch: list[tuple[int, mqtt.MQTTMessage]]) -> None:
        recv = self.clock()
        readings: list[Reading] = []
        for _, msg in batch:
            try:
                readings.extend(self.mapper.readings(msg.topic, bytes(msg.payload)))
            except MappingError as exc:
                self.stats.rejected_total += 1
                log.warning("source %s: %s", self.name, exc)
        for r in readings:
            if r.ts is not None and (self.stats.last_value_ts is None or r.ts > self.stats.last_value_ts):
                self.stats.last_value_ts = r.ts
        self.stats.readings_total += len(readings)
        self.stats.last_receive_ts = recv
        await self.sink(self.name, self.normaliser, readings, recv)
        for generation, msg in batch:
            # a message of an earlier connection is not acked on this one (its mid may now mean another
            # message); the broker re-delivers it and the normaliser absorbs the repeat
            if generation == self._generation and msg.qos > 0:
                client.ack(msg.mid, msg.qos)


__all__ = ["DeviceMapper", "MqttSource", "json_path"]
