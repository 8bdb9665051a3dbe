"""The uplink: sealed envelopes from the durable queue to the central broker (paho-mqtt 2.x, QoS 1).

One connection at a time, each a fresh paho client (so nothing half-sent in a dead client's memory is
replayed out of order): connect (TLS, username/password, MQTT 3.1.1 or 5, keep-alive, the death
message as will) -> retained birth -> publish every un-acked envelope from the queue in id order, at
most `inflight` un-acked at once -> on PUBACK delete the envelope. On disconnect: exponential backoff
with jitter, then again from the oldest un-acked envelope. A re-sent envelope is byte-identical (same
source, seq and samples), which is what ingest's (source, seq) dedupe needs.

TLS trusts `uplink.tls.ca_file`, else the URL's `?ca_file=`, else the system store (uns.mqtturl.tls_context).
The password file and the TLS files are read again at every connect, so a fixed password or a renewed
certificate is picked up without a restart. A refused or failed connect is one warning with the broker's
reason (no traceback), and the agent keeps retrying while the queue holds the data.

paho runs its network loop in its own thread; its callbacks only hand events to the asyncio loop with
`call_soon_threadsafe` (no I/O, no locks in callbacks).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from twinline.edge._retry import backoff_s
from twinline.edge.config import EdgeConfig, read_secret
from twinline.edge.errors import UplinkError
from twinline.edge.queue import DurableQueue
from twinline.edge.stats import UplinkStats
from twinline.uns.envelope import SCHEMA_VERSION, EdgeStatus, encode_status
from twinline.uns.mqtturl import parse_mqtt_url, tls_context
from twinline.uns.topics import edge_topic

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


class _Conn:
    """Events of one paho connection, delivered on the asyncio loop."""

    def __init__(self) -> None:
        self.connected: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.lost = asyncio.Event()
        self.acks: list[tuple[int, bool]] = []
        self.wake = asyncio.Event()
        self.reason = ""
        self.refusal = ""  # the broker's CONNACK reason when it refused us


class Uplink:
    def __init__(self, cfg: EdgeConfig, queue: DurableQueue, stats: UplinkStats, *, clock: Clock,
                 sources: list[str], stations: list[str]) -> None:
        self.cfg = cfg
        self.queue = queue
        self.stats = stats
        self.clock = clock
        self.sources = sources
        self.stations = stations
        self.url = parse_mqtt_url(cfg.uplink.url or "", "uplink.url")
        self.topic = edge_topic(cfg.line, cfg.agent)
        self._wake = asyncio.Event()
        self.halt = asyncio.Event()  # set by the agent when stopping
        self._client: mqtt.Client | None = None

    def wake(self) -> None:
        """New envelopes were sealed."""
        self._wake.set()

    # ------------------------------------------------------------------ connection

    def _status(self, online: bool) -> bytes:
        return bytes(encode_status(EdgeStatus(v=SCHEMA_VERSION, agent=self.cfg.agent, online=online, ts=self.clock(),
                                        sources=self.sources, stations=self.stations)))

    def _make_client(self, conn: _Conn, loop: asyncio.AbstractEventLoop) -> mqtt.Client:
        up = self.cfg.uplink
        v5 = up.protocol == "5"
        client_id = up.client_id or self.url.client_id or f"twinline-edge-{self.cfg.agent}"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                             clean_session=None if v5 else True, reconnect_on_failure=False)
        client.max_inflight_messages_set(up.inflight)
        client.max_queued_messages_set(0)  # bounded by `inflight`: we never hand paho more than that
        client.connect_timeout = up.connect_timeout_s
        user = up.username or self.url.username
        password = read_secret(self.cfg, up.password_file) if up.password_file else self.url.password
        if user:
            client.username_pw_set(user, password)
        if self.url.tls or up.tls is not None:
            tls = up.tls
            ca_file = str(self.cfg.path(tls.ca_file)) if tls and tls.ca_file else self.url.ca_file
            # files are read at every connect: a renewed certificate or a fixed CA file is picked up
            client.tls_set_context(tls_context(
                ca_file, str(self.cfg.path(tls.cert_file)) if tls and tls.cert_file else None,
                str(self.cfg.path(tls.key_file)) if tls and tls.key_file else None,
                check_hostname=not (tls and tls.insecure)))
        client.will_set(self.topic, self._status(False), qos=1, retain=True)

        def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
            code, text = int(getattr(rc, "value", rc)), str(rc)

            def done() -> None:
                if not conn.connected.done():
                    conn.refusal = text
                _resolve(conn.connected, code)
            loop.call_soon_threadsafe(done)

        def on_disconnect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
            def mark() -> None:
                conn.reason = str(rc)
                conn.lost.set()
                conn.wake.set()
                _resolve(conn.connected, -1)
            loop.call_soon_threadsafe(mark)

        def on_publish(c: Any, u: Any, mid: int, rc: Any, props: Any) -> None:
            ok = not getattr(rc, "is_failure", False)

            def add() -> None:
                conn.acks.append((mid, ok))
                conn.wake.set()
            loop.call_soon_threadsafe(add)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        return client

    async def _connect(self, conn: _Conn) -> mqtt.Client:
        loop = asyncio.get_running_loop()
        try:
            client = self._make_client(conn, loop)
        except OSError as exc:  # ssl.SSLError too: a CA / certificate file that cannot be read or parsed
            raise UplinkError(f"TLS set-up for {self.url} failed: {exc}") from exc
        try:
            await asyncio.to_thread(client.connect, self.url.host, self.url.port, self.cfg.uplink.keepalive_s)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise UplinkError(f"cannot connect to {self.url}: {exc}") from exc
        client.loop_start()
        try:
            rc = await asyncio.wait_for(asyncio.shield(conn.connected), self.cfg.uplink.connect_timeout_s)
        except TimeoutError:
            rc = -2
        if rc != 0:
            _stop(client)
            why = {-2: f"no CONNACK within {self.cfg.uplink.connect_timeout_s:g} s",
                   -1: "closed the connection before CONNACK"}.get(rc, f"refused: {conn.refusal}, reason code {rc}")
            if rc in _CREDENTIALS_REFUSED:
                why += "; check uplink.username / password_file (or the URL's user and password)"
            raise UplinkError(f"broker {self.url} did not accept the connection ({why})")
        return client

    # ------------------------------------------------------------------ main loop

    async def run(self) -> None:
        attempt = 0
        while not self.halt.is_set():
            conn = _Conn()
            try:
                client = await self._connect(conn)
            except UplinkError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from exc
                self.stats.errors_total += 1
                self.stats.last_error = str(exc)
                delay = backoff_s(attempt, self.cfg.uplink.reconnect_min_s, self.cfg.uplink.reconnect_max_s)
                log.warning("agent %s: uplink: %s; retry in %.1f s", self.cfg.agent, exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self._client = client
            self.stats.connected = True
            self.stats.connects_total += 1
            log.info("agent %s: uplink connected to %s; %d samples waiting", self.cfg.agent, self.url, self.queue.depth)
            try:
                client.publish(self.topic, self._status(True), qos=1, retain=True)
                await self._pump(client, conn)
            finally:
                self.stats.connected = False
                self._client = None
                _stop(client)
            if self.halt.is_set():  # a graceful stop, not a lost connection
                break
            self.stats.errors_total += 1
            self.stats.last_error = f"disconnected ({conn.reason})"
            delay = backoff_s(0, self.cfg.uplink.reconnect_min_s, self.cfg.uplink.reconnect_max_s)
            log.warning("agent %s: uplink to %s lost (%s); reconnect in %.1f s", self.cfg.agent, self.url,
                        conn.reason, delay)
            await asyncio.sleep(delay)

    async def _pump(self, client: mqtt.Client, conn: _Conn) -> None:
        inflight: dict[int, int] = {}  # mid -> envelope id
        cursor = 0
        window = self.cfg.uplink.inflight
        while not conn.lost.is_set() and not self.halt.is_set():
            if conn.acks:
                done = []
                for mid, ok in conn.acks:
                    env_id = inflight.pop(mid, None)
                    if env_id is None:
                        continue
                    if ok:
                        done.append(env_id)
                    else:
                        self.stats.publish_errors_total += 1
                        log.error("agent %s: broker rejected envelope %d (kept; re-sent after reconnect)",
                                  self.cfg.agent, env_id)
                conn.acks.clear()
                if done:
                    n = self.queue.ack(done)
                    self.stats.envelopes_acked_total += len(done)
                    self.stats.samples_acked_total += n
                    self.stats.last_ack_ts = self.clock()
            if len(inflight) < window:
                for env in self.queue.outgoing(cursor, window - len(inflight)):
                    info = client.publish(env.topic, env.payload, qos=1)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        conn.reason = f"publish failed ({mqtt.error_string(info.rc)})"
                        return
                    inflight[info.mid] = env.id
                    cursor = env.id
            waiters = [asyncio.ensure_future(conn.wake.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waiters, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            conn.wake.clear()
            self._wake.clear()

    async def close(self) -> None:
        """Graceful stop: announce death (retained) so consumers need not wait for the keep-alive."""
        self.halt.set()
        self._wake.set()
        client = self._client
        if client is None or not self.stats.connected:
            return
        info = client.publish(self.topic, self._status(False), qos=1, retain=True)
        deadline = asyncio.get_running_loop().time() + 2.0
        while not info.is_published() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        client.disconnect()


# CONNACK reason codes (MQTT 5 numbering; paho maps 3.1.1 return codes 4 and 5 onto 134 and 135)
_CREDENTIALS_REFUSED = frozenset({134, 135})  # bad user name or password, not authorized


def _resolve(fut: asyncio.Future[int], value: int) -> None:
    if not fut.done():
        fut.set_result(value)


def _stop(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


__all__ = ["Uplink"]
