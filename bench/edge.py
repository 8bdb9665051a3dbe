"""Benchmark of the edge agent: sustained samples/s from OPC UA and from MQTT on one core, latency
device timestamp -> broker (p50 / p99), beside the limits measured in the same run:

- OPC UA limit: a bare asyncua subscription client (one process, pinned to the same core as the agent)
  on the same server processes with the same subscription settings, counting notifications;
- MQTT limit: a bare paho publisher (QoS 1, acked) of device messages to the same broker.

The feed is several asyncua server processes (one saturates at ~20-25k writes/s), each writing Double
process values with SourceTimestamp = wall clock at a fixed rate. The agent runs as `twinline edge run`
pinned to one core (sched_setaffinity); a collector subscribed to the UNS counts samples and latencies.

    python bench/edge.py [--seconds 10] [--servers 3] [--rate 4000] [--vars 200]

Broker: TWINLINE_MQTT_URL / TWINLINE_TEST_MQTT, else a local mosquitto on a free port. Last line:
`edge: <x> samples/s; limit <y> samples/s; ratio <r>` (OPC UA; goal >= 10,000 samples/s, ratio >= 0.95).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import yaml

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
TWINLINE = str(Path(sys.executable).parent / "twinline")
LINE = "bench/edge/line"


# ---------------------------------------------------------------- child modes

async def _serve(port: int, n_vars: int, rate: float, seconds: float) -> None:
    from asyncua import Server, ua

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench")
    ns = await server.register_namespace("urn:twinline:bench")
    obj = await server.nodes.objects.add_object(ua.NodeId("st", ns), ua.QualifiedName("st", ns))
    nodes = [(await obj.add_variable(ua.NodeId(f"st.v{i}", ns), ua.QualifiedName(f"v{i}", ns), 0.0)).nodeid
             for i in range(n_vars)]
    await server.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    t0 = time.monotonic()
    written, i = 0, 0
    while (now := time.monotonic()) - t0 < seconds:
        due = int((now - t0) * rate) - written
        for _ in range(min(due, 2000)):
            i += 1
            dv = ua.DataValue(ua.Variant(float(i), ua.VariantType.Double), SourceTimestamp=datetime.now(UTC))
            await server.write_attribute_value(nodes[i % n_vars], dv)
            written += 1
        await asyncio.sleep(0.002)
    print(f"written {written}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await server.stop()


async def _bare(endpoints: list[str], n_vars: int, seconds: float) -> None:
    from asyncua import Client, ua
    from asyncua.common.subscription import Subscription

    count = 0

    class Counting(Subscription):
        async def publish_callback(self, result: ua.PublishResult) -> None:
            nonlocal count
            for notif in result.NotificationMessage.NotificationData or []:
                if isinstance(notif, ua.DataChangeNotification):
                    count += len(notif.MonitoredItems)

    clients = []
    for ep in endpoints:
        client = Client(ep)
        await client.connect()
        idx = await client.get_namespace_index("urn:twinline:bench")
        params = ua.CreateSubscriptionParameters(RequestedPublishingInterval=100, RequestedLifetimeCount=10000,
                                                 RequestedMaxKeepAliveCount=100, MaxNotificationsPerPublish=0,
                                                 PublishingEnabled=True, Priority=0)
        sub = Counting(client.uaclient.session, params, handler=object())  # type: ignore[arg-type]
        await sub.init()
        reqs = [ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(NodeId=ua.NodeId(f"st.v{i}", idx), AttributeId=ua.AttributeIds.Value),
            MonitoringMode=ua.MonitoringMode.Reporting,
            RequestedParameters=ua.MonitoringParameters(ClientHandle=i, SamplingInterval=0, QueueSize=1000,
                                                        DiscardOldest=True)) for i in range(n_vars)]
        await sub.create_monitored_items(reqs)
        clients.append(client)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    start = count
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    print(f"rate {(count - start) / (time.monotonic() - t0):.1f}", flush=True)
    for c in clients:
        await c.disconnect()


# ---------------------------------------------------------------- orchestration

def _child(args: list[str], core: int | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen([PY, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if core is not None:
        os.sched_setaffinity(proc.pid, {core})
    return proc


def _end(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        print("agent did not stop on SIGTERM within 30 s; killed", flush=True)
        proc.kill()
        proc.wait()


def _expect(proc: subprocess.Popen[str], word: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith(word):
        raise RuntimeError(f"child said {line!r}, expected {word}")
    return line


def _go(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()


class UnsCounter:
    """Counts samples arriving under the bench line and their latency (arrival - device ts)."""

    def __init__(self, host: str, port: int) -> None:
        self.lat: list[float] = []
        self.samples = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-col-{os.getpid()}")
        self.client.on_connect = lambda c, *_: c.subscribe(f"twinline/v1/{LINE}/+/+", qos=1)
        self.client.on_message = self._msg
        self.client.connect(host, port)
        self.client.loop_start()
        self._dec = msgspec.json.Decoder()

    def _msg(self, c: object, u: object, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        if "/_edge/" in msg.topic:
            return
        doc = self._dec.decode(msg.payload)
        lats = [now - datetime.fromisoformat(s["ts"]).timestamp() for s in doc["samples"]]
        with self.lock:
            self.samples += len(lats)
            self.lat.extend(lats[:: max(1, len(lats) // 50)])

    def take(self) -> tuple[int, list[float]]:
        with self.lock:
            n, lat = self.samples, self.lat
            self.samples, self.lat = 0, []
        return n, lat


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _agent_config(tmp: Path, url: str, sources: list[dict[str, object]], tags: dict[str, object]) -> Path:
    (tmp / "tagmap.yaml").write_text(yaml.safe_dump(tags))
    cfg = {"agent": f"bench{os.getpid()}", "line": LINE, "state_dir": str(tmp / "state"), "log_level": "WARNING",
           "uplink": {"url": url, "inflight": 200}, "batching": {"max_samples": 1000, "max_delay_s": 0.1},
           "sources": sources, "tagmap": "tagmap.yaml"}
    path = tmp / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _measure(counter: UnsCounter, seconds: float, warmup: float = 2.0) -> tuple[float, list[float]]:
    time.sleep(warmup)
    counter.take()
    t0 = time.monotonic()
    time.sleep(seconds)
    n, lat = counter.take()
    return n / (time.monotonic() - t0), lat


def bench_opcua(url: str, host: str, port: int, a: argparse.Namespace, tmp: Path) -> tuple[float, float, list[float]]:
    from twinline.cli.embedded import free_port

    total = a.seconds + 6
    ports = [free_port() for _ in range(a.servers)]
    servers = [_child(["--serve", str(p), str(a.vars), str(a.rate), str(total * 2 + 10)],
                      core=(1 + i) % os.cpu_count() if os.cpu_count() else None) for i, p in enumerate(ports)]
    for s in servers:
        _expect(s, "ready")
    _go(servers)
    endpoints = [f"opc.tcp://127.0.0.1:{p}/bench" for p in ports]
    bare = _child(["--bare", str(a.vars), str(a.seconds), *endpoints], core=0)
    _expect(bare, "ready")
    time.sleep(2)
    _go([bare])
    limit = float(_expect(bare, "rate").split()[1])
    bare.wait(30)
    # the agent on the same servers, same core
    sources = [{"type": "opcua", "name": f"s{i}", "endpoint": ep, "publishing_interval_ms": 100}
               for i, ep in enumerate(endpoints)]
    tags = {"opcua": {f"s{i}": [{"node": f"nsu=urn:twinline:bench;s=st.v{j}", "station": f"{LINE}/st{i}",
                                 "kind": "process", "name": f"v{j}", "unit": "1"} for j in range(a.vars)]
                      for i in range(a.servers)}}
    counter = UnsCounter(host, port)
    agent = subprocess.Popen([TWINLINE, "edge", "run", "--config", str(_agent_config(tmp, url, sources, tags))])
    os.sched_setaffinity(agent.pid, {0})
    try:
        rate, lat = _measure(counter, a.seconds)
    finally:
        _end(agent)
        counter.client.disconnect()
        _go(servers)
        for s in servers:
            s.wait(30)
    return rate, limit, lat


def bench_mqtt(url: str, host: str, port: int, a: argparse.Namespace, tmp: Path) -> tuple[float, float]:
    """Device messages (one process sample each) -> agent; limit: a bare paho QoS 1 publisher of the same."""
    topic = f"benchdev{os.getpid()}"
    n = int(a.rate * a.servers * a.seconds)

    def publish(count: int) -> float:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}-{time.time_ns()}")
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.connect(host, port)
        c.loop_start()
        t0 = time.monotonic()
        infos = []
        for i in range(count):
            doc = {"device": "d1", "t_ms": int(time.time() * 1000), "temp_c": float(i)}
            infos.append(c.publish(f"{topic}/line/d1/telemetry", json.dumps(doc), qos=1))
        for info in infos:
            info.wait_for_publish(60)
        dt = time.monotonic() - t0
        c.disconnect()
        c.loop_stop()
        return count / dt

    limit = publish(min(n, 50_000))
    sources = [{"type": "mqtt", "name": "dev", "broker": url, "topic": f"{topic}/line/+/telemetry",
                "client_id": f"bench-edge-{os.getpid()}"}]
    tags = {"mqtt": {"dev": {"station_key": {"topic_level": 2}, "station_template": f"{LINE}/{{key}}",
                             "timestamp": {"path": "t_ms"},
                             "fields": [{"path": "temp_c", "kind": "process", "name": "temp", "unit": "degC"}]}}}
    (tmp / "m").mkdir(exist_ok=True)
    counter = UnsCounter(host, port)
    agent = subprocess.Popen([TWINLINE, "edge", "run", "--config",
                              str(_agent_config(tmp / "m", url, sources, tags))])
    os.sched_setaffinity(agent.pid, {0})
    try:
        time.sleep(3)
        counter.take()
        t0 = time.monotonic()
        publish(min(n, 50_000))
        total = min(n, 50_000)
        got, last, idle_since = 0, t0, time.monotonic()
        while got < total and time.monotonic() - idle_since < 3.0:  # the broker may drop what it cannot queue
            time.sleep(0.05)
            n = counter.take()[0]
            if n:
                got += n
                last = idle_since = time.monotonic()
        rate = got / (last - t0)
        print(f"mqtt: {got} of {total} device messages arrived as samples", flush=True)
    finally:
        _end(agent)
        counter.client.disconnect()
    return rate, limit


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--servers", type=int, default=3)
    p.add_argument("--rate", type=float, default=4000, help="writes/s per server process")
    p.add_argument("--vars", type=int, default=200)
    a = p.parse_args()
    from twinline.cli.embedded import LocalBroker
    from twinline.uns.mqtturl import parse_mqtt_url

    url = os.environ.get("TWINLINE_MQTT_URL") or os.environ.get("TWINLINE_TEST_MQTT")
    broker = None
    if not url:
        broker = LocalBroker(prefer="mosquitto")
        url = broker.start()
    u = parse_mqtt_url(url)
    try:
        with tempfile.TemporaryDirectory() as d:
            rate, limit, lat = bench_opcua(url, u.host, u.port, a, Path(d))
            mrate, mlimit = bench_mqtt(url, u.host, u.port, a, Path(d))
    finally:
        if broker is not None:
            broker.stop()
    offered = a.rate * a.servers
    print(f"{'measure':44} {'value':>12}")
    print(f"{'OPC UA offered (writes/s, ' + str(a.servers) + ' servers)':44} {offered:12.0f}")
    print(f"{'OPC UA bare asyncua client (notif/s, 1 core)':44} {limit:12.0f}")
    print(f"{'OPC UA edge agent (samples/s at broker)':44} {rate:12.0f}")
    print(f"{'latency device ts -> broker p50 (s)':44} {_pct(lat, 0.5):12.3f}")
    print(f"{'latency device ts -> broker p99 (s)':44} {_pct(lat, 0.99):12.3f}")
    print(f"{'MQTT bare paho publisher (msg/s, QoS 1)':44} {mlimit:12.0f}")
    print(f"{'MQTT edge agent (samples/s at broker)':44} {mrate:12.0f}")
    print(f"mqtt: {mrate:.0f} samples/s; limit {mlimit:.0f} samples/s; ratio {mrate / mlimit:.2f}")
    print(f"edge: {rate:.0f} samples/s; limit {limit:.0f} samples/s; ratio {rate / limit:.2f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        asyncio.run(_serve(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--bare":
        asyncio.run(_bare(sys.argv[4:], int(sys.argv[2]), float(sys.argv[3])))
    else:
        sys.exit(main())
