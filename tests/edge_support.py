"""Test support for the edge agent: a contract-conformant asyncua line server, a UNS collector, a
gating TCP proxy, test certificates and config writers.

`ContractServer` follows the simulator's address space contract (namespace `urn:twinline:sim:<line>`,
`ns=<idx>;s=<line>.<station>.<Var>`) and records every value it wrote, so a test can compare what
reached the broker with what the server wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

from twinline.uns.envelope import CountSample, Envelope, ProductSample, StateSample, decode
from twinline.uns.mqtturl import parse_mqtt_url

UTC = dt.UTC
VARS = {"State": ua.VariantType.String, "Reason": ua.VariantType.String, "Product": ua.VariantType.String,
        "GoodCount": ua.VariantType.UInt64, "ScrapCount": ua.VariantType.UInt64,
        "ReworkCount": ua.VariantType.UInt64, "EnergyTotal": ua.VariantType.Double,
        "Power": ua.VariantType.Double}


class _Users(UserManager):
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User)
        return None


@dataclass
class ContractServer:
    """One line with `stations`, each with the contract variables and one process value `Process/temp`."""

    line: str
    stations: list[str]
    port: int
    cert: tuple[Path, Path] | None = None  # (certificate DER, key PEM): serve Basic256Sha256 only
    users: dict[str, str] | None = None
    server: Server | None = None
    ns: int = 0
    t0: dt.datetime = field(default_factory=lambda: dt.datetime(2025, 3, 3, 6, 0, tzinfo=UTC))
    tick_us: int = 0
    current: dict[str, ua.DataValue] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    written: list[tuple[str, str, Any, dt.datetime]] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/tl/{self.line}"

    @property
    def uri(self) -> str:
        return f"urn:twinline:sim:{self.line}"

    def nid(self, station: str, var: str) -> str:
        return f"{self.line}.{station}.{var}"

    async def start(self) -> None:
        server = Server(user_manager=_Users(self.users) if self.users else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        if self.cert is not None:
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                                        ua.SecurityPolicyType.Basic256Sha256_Sign])
            await server.load_certificate(str(self.cert[0]))
            await server.load_private_key(str(self.cert[1]))
        if self.users:
            server.set_security_IDs(["Username"])
        self.ns = await server.register_namespace(self.uri)
        line_obj = await server.nodes.objects.add_object(ua.NodeId(self.line, self.ns), ua.QualifiedName(self.line,
                                                                                                           self.ns))
        for st in self.stations:
            obj = await line_obj.add_object(ua.NodeId(f"{self.line}.{st}", self.ns), ua.QualifiedName(st, self.ns))
            for var, vtype in VARS.items():
                init = 0.0 if vtype is ua.VariantType.Double else 0 if vtype is ua.VariantType.UInt64 else ""
                await obj.add_variable(ua.NodeId(self.nid(st, var), self.ns), ua.QualifiedName(var, self.ns),
                                       ua.Variant(init, vtype), varianttype=vtype)
            proc = await obj.add_object(ua.NodeId(f"{self.line}.{st}.Process", self.ns),
                                        ua.QualifiedName("Process", self.ns))
            key = self.nid(st, "Process/temp")
            node = await proc.add_variable(ua.NodeId(key, self.ns), ua.QualifiedName("temp", self.ns),
                                           ua.Variant(0.0, ua.VariantType.Double), varianttype=ua.VariantType.Double)
            await node.add_property(ua.NodeId(f"{key}.EngineeringUnits", self.ns),
                                    ua.QualifiedName("EngineeringUnits", self.ns),
                                    ua.Variant("degF", ua.VariantType.String), varianttype=ua.VariantType.String)
        await server.start()
        self.server = server
        for key, dv in self.current.items():  # like the simulator: the latest values survive a restart
            await server.write_attribute_value(ua.NodeId(key, self.ns), dv)

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.stop()

    def next_ts(self, step_ms: int = 10) -> dt.datetime:
        self.tick_us += step_ms * 1000
        return self.t0 + dt.timedelta(microseconds=self.tick_us)

    async def write(self, station: str, var: str, value: Any, ts: dt.datetime) -> None:
        vtype = VARS.get(var, ua.VariantType.Double)
        key = self.nid(station, var)
        dv = ua.DataValue(Value=ua.Variant(value, vtype), SourceTimestamp=ts, ServerTimestamp=dt.datetime.now(UTC))
        self.current[key] = dv
        self.written.append((station, var, value, ts))
        if self.server is not None:
            await self.server.write_attribute_value(ua.NodeId(key, self.ns), dv)

    async def state(self, station: str, state: str, reason: str) -> dt.datetime:
        ts = self.next_ts()
        await self.write(station, "State", state, ts)
        await self.write(station, "Reason", reason, ts)
        return ts

    async def product(self, station: str, sku: str) -> dt.datetime:
        ts = self.next_ts()
        await self.write(station, "Product", sku, ts)
        return ts

    async def unit(self, station: str, kind: str = "GoodCount") -> dt.datetime:
        ts = self.next_ts()
        self.counts[f"{station}.{kind}"] += 1
        await self.write(station, kind, self.counts[f"{station}.{kind}"], ts)
        return ts


def contract_tags(server: ContractServer, site_area: str, source: str) -> dict[str, Any]:
    """The tag map of a ContractServer: state + reason, product, 3 counters, energy, temp degF -> degC."""
    entries: list[dict[str, Any]] = []
    for st in server.stations:
        station = f"{site_area}/{server.line}/{st}"

        def node(var: str, s: str = st) -> str:
            return f"nsu={server.uri};s={server.nid(s, var)}"
        entries += [
            {"node": node("State"), "station": station, "kind": "state", "field": "state"},
            {"node": node("Reason"), "station": station, "kind": "state", "field": "reason"},
            {"node": node("Product"), "station": station, "kind": "product"},
            {"node": node("GoodCount"), "station": station, "kind": "count", "field": "good"},
            {"node": node("ScrapCount"), "station": station, "kind": "count", "field": "scrap"},
            {"node": node("ReworkCount"), "station": station, "kind": "count", "field": "rework"},
            {"node": node("EnergyTotal"), "station": station, "kind": "energy", "field": "total_kwh"},
            {"node": node("Process/temp"), "station": station, "kind": "process", "name": "temp", "unit": "degC",
             "scale": 5 / 9, "offset": -160 / 9},
        ]
    return {"opcua": {source: entries}}


def write_config(dir_: Path, *, agent: str, line: str, broker_url: str, sources: list[dict[str, Any]],
                 tags: dict[str, Any], **extra: Any) -> Path:
    cfg = {"agent": agent, "line": line, "state_dir": str(dir_ / "state"), "log_level": "INFO",
           "uplink": {"url": broker_url, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0, "protocol": "3.1.1"},
           "batching": {"max_samples": 200, "max_delay_s": 0.05}, "health": {"interval_s": 0.2},
           "sources": sources, "tagmap": "tagmap.yaml", **extra}
    (dir_ / "tagmap.yaml").write_text(yaml.safe_dump(tags, sort_keys=False))
    path = dir_ / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def opcua_source(name: str, endpoint: str, **extra: Any) -> dict[str, Any]:
    return {"type": "opcua", "name": name, "endpoint": endpoint, "publishing_interval_ms": 50,
            "keepalive_s": 0.5, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0, "first_counter": "count", **extra}


class Collector:
    """Subscribes to a UNS subtree (QoS 1), keeps every envelope in arrival order; re-subscribes on reconnect."""

    def __init__(self, url: str, topic: str, client_id: str, agent: str | None = None) -> None:
        u = parse_mqtt_url(url)
        self.topic = topic
        self.agent = agent  # keep only envelopes of this agent (shared broker, shared line paths)
        self.raw: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_disconnect = lambda *_: self.subscribed.clear()
        self.client.on_message = self._on_message
        self.client.connect(u.host, u.port, 30)
        self.client.loop_start()

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.raw.append((msg.topic, msg.payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def envelopes(self) -> list[tuple[str, Envelope]]:
        with self.lock:
            raw = list(self.raw)
        return [(t, decode(p)) for t, p in raw if "/_edge/" not in t]

    def unique(self) -> tuple[list[tuple[str, Envelope]], int]:
        """Envelopes deduplicated by (source, seq) as ingest does; asserts duplicates are identical."""
        with self.lock:
            raw = [(t, p) for t, p in self.raw if "/_edge/" not in t]
        seen: dict[tuple[str, int], bytes] = {}
        out = []
        for topic, payload in raw:
            env = decode(payload)
            if self.agent is not None and not env.source.startswith(f"{self.agent}/"):
                continue
            key = (env.source, env.seq)
            if key in seen:
                assert seen[key] == payload, f"envelope {key} re-sent with different content"
                continue
            seen[key] = payload
            out.append((topic, env))
        return out, len(raw) - len(out)

    def samples(self, station: str) -> list[Any]:
        envs, _ = self.unique()
        return [s for t, e in envs if f"/{station}/" in t for s in e.samples]

    def counts(self, station: str) -> dict[str, int]:
        total = {"good": 0, "scrap": 0, "rework": 0}
        for s in self.samples(station):
            if isinstance(s, CountSample):
                total["good"] += s.good
                total["scrap"] += s.scrap
                total["rework"] += s.rework
        return total


def expected_from_writes(server: ContractServer, station: str) -> dict[str, list[Any]]:
    """What the agent must deliver for one station of a ContractServer: states, products, count increments."""
    states, products, counts = [], [], []
    cur: dict[str, Any] = {}
    product = None
    for st, var, value, ts in server.written:
        if st != station:
            continue
        if var in ("State", "Reason"):
            cur[var] = (value, ts)
            if var == "Reason":
                states.append((ts, cur["State"][0], value))
        elif var == "Product":
            product = value
            products.append((ts, value))
        elif var.endswith("Count"):
            counts.append((ts, var, product))
    return {"states": states, "products": products, "counts": counts}


def actual_for(collector: Collector, station: str) -> dict[str, list[Any]]:
    states, products, counts = [], [], []
    for s in collector.samples(station):
        if isinstance(s, StateSample):
            states.append((s.ts, s.state.value, s.reason.value))
        elif isinstance(s, ProductSample):
            products.append((s.ts, s.product))
        elif isinstance(s, CountSample):
            kind = "GoodCount" if s.good else "ScrapCount" if s.scrap else "ReworkCount"
            for _ in range(s.good + s.scrap + s.rework):
                counts.append((s.ts, kind, s.product))
    return {"states": states, "products": products, "counts": counts}


class GateProxy:
    """A TCP proxy in front of a broker; while closed it refuses connections (accept + close at once).

    Lets a test bring its own subscriber back on a restarted broker before the agent reconnects, so the
    test cannot miss messages that the broker had no subscriber for.
    """

    def __init__(self, target_port: int, port: int) -> None:
        self.target_port = target_port
        self.port = port
        self.open = True
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._conns):
                w.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._conns.update((writer, up_w))

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self._conns.difference_update((writer, up_w))


def make_cert(dir_: Path, name: str, app_uri: str) -> tuple[Path, Path]:
    """A self-signed OPC UA application certificate (DER) and key (PEM) made with asyncua's helpers."""
    from asyncua.crypto.cert_gen import (
        dump_private_key_as_pem,
        generate_private_key,
        generate_self_signed_app_certificate,
    )
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = generate_private_key()
    cert = generate_self_signed_app_certificate(
        key, app_uri, {"commonName": name}, [x509.UniformResourceIdentifier(app_uri), x509.DNSName("127.0.0.1")],
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH], days=30)
    cert_path, key_path = dir_ / f"{name}.der", dir_ / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(dump_private_key_as_pem(key))
    return cert_path, key_path
