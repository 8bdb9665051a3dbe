"""MQTT over TLS with username/password on a real, private mosquitto: edge uplink, ingest and live twin.

The broker has ONE listener, TLS only (certificate from a throwaway CA made here with `cryptography`,
SAN IP 127.0.0.1 and DNS localhost), `allow_anonymous false` and a `password_file` made with
`mosquitto_passwd -b`. So anything that arrives went over TLS with valid credentials. Covered:
the edge agent's birth and data (MQTT 3.1.1 and 5); a wrong password or an untrusted CA is a clear
one-line error (no traceback, no password in the log) while the agent keeps retrying, and the data
queued meanwhile arrives once the file is fixed; ingest over `mqtts://...?ca_file=` storing envelopes,
and logging (not crashing, not leaking sockets) with an untrusted CA; the live twin over `mqtts://`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion

from tests.edge_support import ContractServer, contract_tags, opcua_source, write_config
from tests.helpers import async_wait_until, wait_until
from tests.integration.ingest_helpers import add_stations, counts, scalar, stream
from twinline.cli.embedded import EmbeddedUnavailable, free_port, wait_port
from twinline.edge.agent import run_agent
from twinline.edge.config import load_config
from twinline.ingest.batch import BatchPolicy
from twinline.ingest.service import IngestConfig, IngestService
from twinline.uns.envelope import CountSample, Envelope, StateSample, decode, decode_status, encode
from twinline.uns.mqtturl import parse_mqtt_url
from twinline.uns.plant import load_plant, sample_plant_path
from twinline.uns.states import E10, Reason
from twinline.uns.topics import Channel, data_topic

pytestmark = pytest.mark.integration

MOSQUITTO = "/usr/sbin/mosquitto"
SITE_AREA = "tsite/tarea"
USER, PASSWORD = "edge", "T0p-s3cret-pw"
UTC = dt.UTC


# --------------------------------------------------------------------------- PKI and broker


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA that signed the broker's certificate
    other_ca: Path  # a CA that did not
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str, now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA, a broker certificate it signed (SAN IP 127.0.0.1 + DNS localhost), and a foreign CA."""
    d = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(UTC)
    ca_key, ca_cert = _ca("twinline test CA", now)
    _, other_cert = _ca("some other CA", now)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pki = Pki(d / "ca.pem", d / "other-ca.pem", d / "broker.pem", d / "broker.key")
    pki.ca.write_bytes(_pem(ca_cert))
    pki.other_ca.write_bytes(_pem(other_cert))
    pki.cert.write_bytes(_pem(cert))
    pki.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return pki


@dataclass
class TlsBroker:
    port: int
    ca: Path
    log: Path

    def url(self, user: str = USER, password: str | None = PASSWORD, **options: str) -> str:
        auth = user + (f":{password}" if password is not None else "")
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"mqtts://{auth}@127.0.0.1:{self.port}" + (f"?{query}" if query else "")


_CONF = """\
allow_anonymous false
password_file {passwd}
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
listener {port} 127.0.0.1
certfile {cert}
keyfile {key}
"""


@pytest.fixture
def tls_broker(pki: Pki) -> Iterator[TlsBroker]:
    """A private mosquitto with a TLS-only listener and password auth on a free port; stopped afterwards."""
    if not Path(MOSQUITTO).exists():
        pytest.skip(f"TLS broker tests need the mosquitto binary at {MOSQUITTO}")
    passwd_exe = shutil.which("mosquitto_passwd")
    if passwd_exe is None:
        pytest.skip("TLS broker tests need mosquitto_passwd (to create the password file) on PATH")
    d = Path(tempfile.mkdtemp(prefix="twinline-mqtts-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        passwd = d / "passwd"
        for i, (user, pw) in enumerate([(USER, PASSWORD), ("ingest", "1ngest-pw")]):
            subprocess.run([passwd_exe, "-b", *(["-c"] if i == 0 else []), str(passwd), user, pw], check=True,
                           capture_output=True, timeout=30)
        log = d / "mosquitto.log"
        for _attempt in range(3):  # another process may take the free port before mosquitto binds it
            port = free_port()
            conf = d / "mosquitto.conf"
            conf.write_text(_CONF.format(passwd=passwd, port=port, cert=pki.cert, key=pki.key)
                            + ("user root\n" if os.geteuid() == 0 else ""))  # root: keep access to the files
            with log.open("ab") as fh:
                proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=fh, stderr=subprocess.STDOUT)
            try:
                wait_port("127.0.0.1", port, 15.0)
            except EmbeddedUnavailable:
                proc.terminate()
                proc.wait(10)
                proc = None
                continue
            if proc.poll() is None:
                break
            proc = None
        if proc is None:
            pytest.fail(f"the TLS mosquitto did not start:\n{log.read_text(errors='replace')}")
        yield TlsBroker(port, pki.ca, log)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(d, ignore_errors=True)


class TlsCollector:
    """A paho client (TLS + credentials, QoS 1) keeping every message of `topic`; re-subscribes on reconnect."""

    def __init__(self, broker: TlsBroker, topic: str, client_id: str, user: str = "ingest",
                 password: str = "1ngest-pw") -> None:
        self.raw: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.username_pw_set(user, password)
        c.tls_set(ca_certs=str(broker.ca))
        c.reconnect_delay_set(1, 2)
        c.on_connect = lambda cl, *_: cl.subscribe(topic, qos=1)
        c.on_subscribe = lambda *_: self.subscribed.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", broker.port, 30)
        c.loop_start()
        self.client = c
        if not self.subscribed.wait(30):
            self.close()
            raise AssertionError("the TLS collector did not subscribe")

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.raw.append((msg.topic, bytes(msg.payload)))

    def messages(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return list(self.raw)

    def envelopes(self) -> list[Envelope]:
        return [decode(p) for t, p in self.messages() if "/_edge/" not in t]

    def good(self) -> int:
        return sum(s.good for e in self.envelopes() for s in e.samples if isinstance(s, CountSample))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --------------------------------------------------------------------------- edge agent


def _edge_config(tmp_path: Path, broker: TlsBroker, server: ContractServer, uid: str, *, protocol: str,
                 password: str = PASSWORD, ca: Path | None = None) -> Path:
    (tmp_path / "uplink.pw").write_text(password + "\n")
    (tmp_path / "ca.pem").write_bytes((ca or broker.ca).read_bytes())
    uplink = {"url": broker.url(password=None), "password_file": "uplink.pw", "tls": {"ca_file": "ca.pem"},
              "protocol": protocol, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0, "connect_timeout_s": 30.0}
    return write_config(tmp_path, agent=f"a{uid}", line=f"{SITE_AREA}/l{uid}", broker_url=broker.url(),
                        sources=[opcua_source("opc", server.endpoint)], tags=contract_tags(server, SITE_AREA, "opc"),
                        uplink=uplink)


@contextlib.asynccontextmanager
async def _running(config: Path, server: ContractServer) -> AsyncIterator[asyncio.Task[None]]:
    cfg, tagmap = load_config(config)
    stop = asyncio.Event()
    await server.start()
    task = asyncio.create_task(run_agent(cfg, tagmap, stop=stop))
    try:
        yield task
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 30)
        finally:
            await server.stop()


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _status(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "state" / "status.json"
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):  # not written yet / being replaced
        return dict(json.loads(path.read_text()))
    return {}


async def _production(server: ContractServer, units: int) -> None:
    await server.state("s1", "PRD", "run")
    await server.product("s1", "SKU-A")
    for _ in range(units):
        await server.unit("s1")


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_edge_birth_and_data_over_tls(tmp_path: Path, tls_broker: TlsBroker, uid: str, protocol: str) -> None:
    server = ContractServer(f"l{uid}", ["s1"], free_port())
    config = _edge_config(tmp_path, tls_broker, server, uid, protocol=protocol)
    col = TlsCollector(tls_broker, f"twinline/v1/{SITE_AREA}/l{uid}/#", f"col-{uid}")
    try:
        async with _running(config, server):
            await async_wait_until(lambda: _status(tmp_path).get("uplink", {}).get("connected"), 60, 0.05,
                                   "uplink connected over TLS")
            await _production(server, 25)
            await async_wait_until(lambda: col.good() == 25, 60, 0.05, "25 good units at the broker")
            births = [decode_status(p) for t, p in col.messages() if t.endswith(f"/_edge/a{uid}")]
            status = _status(tmp_path)["uplink"]
        assert births and births[0].online and births[0].agent == f"a{uid}"
        assert births[0].stations == [f"{SITE_AREA}/l{uid}/s1"]
        states = [s for e in col.envelopes() for s in e.samples if isinstance(s, StateSample)]
        assert [s.state for s in states] == [E10.PRD]
        assert status["url"] == f"mqtts://{USER}@127.0.0.1:{tls_broker.port}"
        assert status["errors_total"] == 0 and status["connects_total"] == 1
        # the agent's graceful stop leaves its retained death on the TLS broker
        await asyncio.to_thread(wait_until, lambda: any(t.endswith(f"/_edge/a{uid}") and not decode_status(p).online
                                                        for t, p in col.messages()), 30, 0.05, "death message")
    finally:
        col.close()


@pytest.mark.parametrize(("protocol", "fault", "words"), [
    ("3.1.1", "password", "Not authorized"),  # mosquitto answers 'not authorized' for a bad password
    ("5", "password", "Not authorized"),
    ("5", "ca", "certificate verify failed"),
])
async def test_edge_refused_says_why_keeps_retrying_and_delivers_after_the_fix(
        tmp_path: Path, tls_broker: TlsBroker, pki: Pki, uid: str, protocol: str, fault: str, words: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    server = ContractServer(f"l{uid}", ["s1"], free_port())
    wrong_pw = "wr0ng-Pw-" + uid
    config = _edge_config(tmp_path, tls_broker, server, uid, protocol=protocol,
                          password=wrong_pw if fault == "password" else PASSWORD,
                          ca=pki.other_ca if fault == "ca" else None)
    col = TlsCollector(tls_broker, f"twinline/v1/{SITE_AREA}/l{uid}/#", f"col-{uid}")
    try:
        async with _running(config, server):
            await async_wait_until(lambda: _status(tmp_path).get("sources", {}).get("opc", {}).get("connected"),
                                   60, 0.05, "OPC UA source connected")
            await _production(server, 10)  # produced while the broker refuses us: queued on disk
            await async_wait_until(lambda: _status(tmp_path).get("uplink", {}).get("errors_total", 0) >= 3, 60, 0.05,
                                   "three refused attempts")
            last_error = _status(tmp_path)["uplink"]["last_error"]
            assert words in last_error, last_error
            if fault == "password":
                assert "check uplink.username / password_file" in last_error, last_error
            await async_wait_until(lambda: _status(tmp_path)["queue"]["depth"] >= 10, 30, 0.05, "units queued on disk")
            assert not _status(tmp_path)["uplink"]["connected"] and col.good() == 0
            # both files are read again at every connect; replaced atomically as a deployment tool would
            if fault == "password":
                _replace(tmp_path / "uplink.pw", (PASSWORD + "\n").encode())
            else:
                _replace(tmp_path / "ca.pem", tls_broker.ca.read_bytes())
            await async_wait_until(lambda: col.good() == 10, 60, 0.05, "the queued units after the fix")
            await async_wait_until(lambda: _status(tmp_path)["queue"]["depth"] == 0, 30, 0.05, "queue drained")
        refusals = [r for r in caplog.records if r.name == "twinline.edge.uplink" and words in r.getMessage()]
        assert refusals and all(r.levelno == logging.WARNING for r in refusals)
        assert "retry in" in refusals[0].getMessage()
        ours = [r for r in caplog.records if r.name.startswith("twinline.")]
        assert all(r.exc_info is None and "Traceback" not in r.getMessage() for r in ours)
        assert not any(wrong_pw in r.getMessage() or PASSWORD in r.getMessage() for r in caplog.records)
    finally:
        col.close()


# --------------------------------------------------------------------------- ingest and live twin


def _publish_tls(broker: TlsBroker, client_id: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish with QoS 1 over TLS as user `edge`; returns when the broker acknowledged every message."""
    connected = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(USER, PASSWORD)
    c.tls_set(ca_certs=str(broker.ca))
    c.on_connect = lambda *a: connected.set()
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        assert connected.wait(30), "TLS publisher did not connect"
        infos = [c.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(60)
            assert info.is_published(), f"message {info.mid} not acknowledged"
    finally:
        c.disconnect()
        c.loop_stop()


def test_ingest_stores_envelopes_received_over_tls(db_dsn: str, tls_broker: TlsBroker, uid: str) -> None:
    stations = add_stations(db_dsn, f"site{uid}", 2)
    url = parse_mqtt_url(tls_broker.url("ingest", "1ngest-pw", ca_file=str(tls_broker.ca)))
    assert url.tls and url.ca_file == str(tls_broker.ca)
    cfg = IngestConfig(dsn=db_dsn, mqtt=url, group=f"g{uid}", name=f"ingest-{uid}", site=f"site{uid}",
                       batch=BatchPolicy(2000, 0.05), session_expiry_s=60, heartbeat_s=0.5)
    service = IngestService(cfg)
    service.start()
    try:
        assert service.wait_subscribed(30), "ingest did not subscribe over TLS"
        _publish_tls(tls_broker, f"pub-{uid}", stream(stations, 40, samples=3, source=f"edge-{uid}"))
        wait_until(lambda: counts(db_dsn)[0] == 40, 60, what="40 envelopes stored")
    finally:
        service.stop()
    assert counts(db_dsn) == (40, 120, 120)
    assert scalar(db_dsn, "SELECT count(DISTINCT source) FROM envelope_ledger") == 1
    assert scalar(db_dsn, "SELECT count(*) FROM dead_letter") == 0


def test_ingest_with_an_untrusted_ca_says_so(db_dsn: str, tls_broker: TlsBroker, pki: Pki, uid: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="twinline.ingest.subscriber")
    url = parse_mqtt_url(tls_broker.url("ingest", "1ngest-pw", ca_file=str(pki.other_ca)))
    service = IngestService(IngestConfig(dsn=db_dsn, mqtt=url, group=f"g{uid}", name=f"ingest-{uid}",
                                         site=f"site{uid}", session_expiry_s=60, heartbeat_s=0.5))
    service.start()
    try:
        wait_until(lambda: any("cannot connect" in r.getMessage() for r in caplog.records), 60,
                   what="the failed TLS connect logged")
        assert not service.workers[0].subscriber.connected.is_set()
    finally:
        service.stop()
    assert all(r.exc_info is None and "1ngest-pw" not in r.getMessage() for r in caplog.records)


def test_live_twin_subscribes_over_tls(tls_broker: TlsBroker, uid: str) -> None:
    from twinline.twin.live import LiveTwin

    plant = load_plant(sample_plant_path())
    station = next(iter(plant.stations.values())).path
    now = dt.datetime.now(UTC)
    twin = LiveTwin(None, tls_broker.url("ingest", "1ngest-pw", ca_file=str(tls_broker.ca)), plant,
                    clock=lambda: now, client_id=f"twin-{uid}")
    twin.start(connect_timeout_s=30)
    try:
        env = Envelope(1, f"edge-{uid}", 1, now, [StateSample(now, E10.PRD, Reason.RUN)])
        _publish_tls(tls_broker, f"pub-{uid}", [(str(data_topic(station, Channel.STATE)), encode(env))])
        wait_until(lambda: twin.messages >= 1, 30, what="the live twin received the envelope")
        live = {s.station: s for ln in twin.snapshot().lines for s in ln.stations}
    finally:
        twin.stop()
    assert twin.rejected == 0
    assert (live[str(station)].state, live[str(station)].reason) == ("PRD", "run")
