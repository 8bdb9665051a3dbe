"""MQTT devices: stations with `protocol: mqtt` (the laptop testers) publish in their own, DEVICE-NATIVE format.

The edge agent maps this format to the contract; it is deliberately not the UNS envelope:
- topic `<prefix>/<line id>/<station id>/telemetry` (prefix default `factory`), QoS 1, not retained,
  published on every change of the device (state, counters, product, energy, temperature);
- payload JSON: {"device": "<station id>", "t_ms": <device clock, epoch ms>, "status": "RUN" | "IDLE" |
  "STARVED" | "BLOCKED" | "FAIL" | "SETUP" | "PM" | "OFF", "pass_total": n, "fail_total": n (scrap),
  "rework_total": n, "sku": "<sku>" | null, "kwh_total": x, "temp_c": x | null} (totals cumulative since the
  simulation started, warm-up included);
- alarms on `<prefix>/<line id>/<station id>/alarm`: {"device", "t_ms", "code", "active", "severity", "text"}.
Status from E10: PRD -> RUN, SBY starved / blocked -> STARVED / BLOCKED, other SBY and ENG -> IDLE,
UDT -> FAIL, SDT setup -> SETUP, other SDT -> PM, NST -> OFF.

The paho 2.x client runs its own network loop thread; publishing never blocks the simulation. Its queue is
bounded (`max_queued`); when it is full the newest message is dropped, counted in `dropped` and logged.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from twinline.simulators.errors import LiveError
from twinline.uns.mqtturl import MqttUrl, tls_context
from twinline.uns.states import E10, Reason

log = logging.getLogger(__name__)


def device_status(state: E10, reason: Reason) -> str:
    if state is E10.PRD:
        return "RUN"
    if state is E10.SBY:
        return {Reason.STARVED: "STARVED", Reason.BLOCKED: "BLOCKED"}.get(reason, "IDLE")
    if state is E10.UDT:
        return "FAIL"
    if state is E10.SDT:
        return "SETUP" if reason is Reason.SETUP else "PM"
    if state is E10.NST:
        return "OFF"
    return "IDLE"


class MqttDevices:
    """One paho client publishing the devices of one line."""

    def __init__(self, url: MqttUrl, line_id: str, client_id: str, prefix: str = "factory",
                 max_queued: int = 10_000) -> None:
        self.url = url
        self.line_id = line_id
        self.prefix = prefix
        self.dropped = 0
        self.published = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311)
        if url.username is not None:
            self.client.username_pw_set(url.username, url.password)
        if url.tls:
            self.client.tls_set_context(tls_context(url.ca_file))
        self.client.max_queued_messages_set(max_queued)
        self.client.reconnect_delay_set(1, 5)

    def telemetry_topic(self, station: str) -> str:
        return f"{self.prefix}/{self.line_id}/{station}/telemetry"

    def alarm_topic(self, station: str) -> str:
        return f"{self.prefix}/{self.line_id}/{station}/alarm"

    def start(self) -> None:
        try:
            self.client.connect_async(self.url.host, self.url.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise LiveError(f"MQTT devices of {self.line_id}: cannot connect to {self.url}: {exc}") from exc
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish_raw(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.dropped += 1
            log.warning("MQTT device queue of %s full: dropped a message on %s (%d dropped)", self.line_id, topic,
                        self.dropped)
        else:
            self.published += 1

    def publish(self, topic: str, doc: dict[str, Any]) -> None:
        self.publish_raw(topic, json.dumps(doc, separators=(",", ":")).encode())
