"""Helpers of the ingest integration tests: stations inserted by SQL, envelopes, a paho publisher, counts."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from twinline.uns.envelope import Envelope, ProcessSample, encode
from twinline.uns.mqtturl import parse_mqtt_url
from twinline.uns.topics import AssetPath, Channel, data_topic

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def add_stations(dsn: str, site: str, n: int = 2, *, epoch: datetime | None = None) -> list[AssetPath]:
    """Insert a site, one area, one line and `n` stations into `asset` directly (no plant loader)."""
    paths = [AssetPath(site, "fab", "L1", f"st{i}") for i in range(n)]
    attrs = json.dumps({"epoch": epoch.isoformat()} if epoch else {})
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO asset (path, kind, site, name, attrs) VALUES (%s, 'site', %s, %s, %s::jsonb)",
                     (site, site, site, attrs))
        conn.execute("INSERT INTO asset (path, kind, site, area, name) VALUES (%s, 'area', %s, 'fab', 'fab')",
                     (f"{site}/fab", site))
        conn.execute("INSERT INTO asset (path, kind, site, area, line, name) VALUES (%s, 'line', %s, 'fab', 'L1', "
                     "'L1')", (f"{site}/fab/L1", site))
        for p in paths:
            conn.execute("INSERT INTO asset (path, kind, site, area, line, station, name) "
                         "VALUES (%s, 'station', %s, 'fab', 'L1', %s, %s)", (str(p), site, p.station, p.station))
    return paths


def process_envelope(source: str, seq: int, samples: int = 5, t0: datetime = T0) -> Envelope:
    base = t0 + timedelta(seconds=seq)
    return Envelope(1, source, seq, base, [ProcessSample(base + timedelta(milliseconds=i), "temp", 20.0 + i, "degC")
                                           for i in range(samples)])


def stream(stations: list[AssetPath], envelopes: int, samples: int = 5, source: str = "edge-a"
           ) -> list[tuple[str, bytes]]:
    """(topic, payload) of `envelopes` process envelopes spread over the stations."""
    return [(data_topic(stations[i % len(stations)], Channel.PROCESS), encode(process_envelope(source, i, samples)))
            for i in range(envelopes)]


class Publisher:
    """A plain paho MQTT 5 client publishing with QoS 1; `publish_all` waits for every PUBACK."""

    def __init__(self, url: str, client_id: str) -> None:
        u = parse_mqtt_url(url)
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda *a: self._connected.set()
        self.client.max_queued_messages_set(0)
        self.client.connect(u.host, u.port)
        self.client.loop_start()
        if not self._connected.wait(30):
            raise AssertionError("publisher did not connect")

    def publish_all(self, messages: list[tuple[str, bytes]], *, qos: int = 1, retain: bool = False) -> None:
        infos = [self.client.publish(t, p, qos=qos, retain=retain) for t, p in messages]
        for info in infos:
            info.wait_for_publish(60)
            if not info.is_published():
                raise AssertionError(f"message {info.mid} not acknowledged by the broker")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def scalar(dsn: str, query: str, params: Any = None) -> Any:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


def counts(dsn: str) -> tuple[int, int, int]:
    """(envelopes in the ledger, process rows, distinct (source, seq, ts) process rows)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM envelope_ledger), count(*), "
                           "count(DISTINCT (source, seq, ts)) FROM process_sample").fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])
