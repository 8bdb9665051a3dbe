"""One MQTT 5 client on the shared subscription, handing messages to a worker through a bounded queue.

paho runs its network loop in its own thread; `on_message` only puts a `Delivery` on the inbox and returns,
it never does I/O. Acknowledgement is manual (`manual_ack=True`): the worker calls `ack` only after the batch
holding the message committed. Flow control: the broker sends at most `receive_maximum` unacknowledged
messages (MQTT 5 Receive Maximum), and the inbox holds twice that (messages of a previous connection may
still wait in it), so a put normally never waits. Overflow policy, should it fill anyway: BLOCK the network
thread, i.e. stop reading the socket until the worker takes messages; nothing is dropped.

TLS and credentials come from the URL (`mqtts://user:pass@host:port?ca_file=...`, uns/mqtturl.py); a failed
TCP connection or TLS handshake is logged and retried by paho's loop, as is a refused CONNACK.

The session is persistent (clean_start=False, Session Expiry Interval): messages delivered but not
acknowledged when the process dies are delivered again when a worker with the same client id returns.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from twinline.uns.mqtturl import MqttUrl, tls_context

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One received message; `generation` counts this client's connections (acks go to the same one)."""

    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes


class Subscriber:
    """A paho client subscribed to `topic` with QoS 1, feeding `inbox`."""

    def __init__(self, url: MqttUrl, client_id: str, topic: str, inbox: queue.Queue[Delivery], *,
                 receive_maximum: int = 1000, session_expiry_s: int = 3600, keepalive_s: int = 30) -> None:
        self.url = url
        self.client_id = client_id
        self.topic = topic
        self.inbox = inbox
        self.receive_maximum = receive_maximum
        self.session_expiry_s = session_expiry_s
        self.keepalive_s = keepalive_s
        self.generation = 0
        self.received = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._unsubscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=mqtt.MQTTv5, manual_ack=True)
        if url.username is not None:
            self._client.username_pw_set(url.username, url.password)
        if url.tls:  # the broker's certificate and host name are checked; url.ca_file None = system trust store
            self._client.tls_set_context(tls_context(url.ca_file))
        self._client.reconnect_delay_set(1, 5)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_unsubscribe = self._on_unsubscribe
        self._client.on_message = self._on_message

    def start(self) -> None:
        """Connect in the background (retrying while the broker is away) and start the network thread."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry_s
        props.ReceiveMaximum = self.receive_maximum
        self._client.connect_async(self.url.host, self.url.port, self.keepalive_s, clean_start=False,
                                   properties=props)
        self._client.loop_start()

    def ack(self, generation: int, mid: int, qos: int) -> bool:
        """Acknowledge a committed message; False when it came on an earlier connection (the broker resends it)."""
        if qos == 0:
            return True
        if generation != self.generation or not self.connected.is_set():
            return False
        self._client.ack(mid, qos)
        return True

    def unsubscribe(self, timeout_s: float = 5.0) -> bool:
        """Stop new deliveries to this client (other members of the share get them); True when confirmed."""
        if not self.connected.is_set():
            return False
        self._unsubscribed.clear()
        self._client.unsubscribe(self.topic)
        return self._unsubscribed.wait(timeout_s)

    def close(self, *, end_session: bool) -> None:
        """Disconnect; with `end_session` the broker drops the session (nothing is left unacknowledged)."""
        props = None
        if end_session:
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
        self._client.disconnect(properties=props)
        self._client.loop_stop()

    # paho callbacks: run on the network thread, never block on I/O

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode,
                    properties: Properties | None) -> None:
        if reason.is_failure:
            log.warning("ingest client %s: broker %s refused the connection: %s", self.client_id, self.url, reason)
            return
        self.generation += 1
        self.connected.set()
        log.info("ingest client %s connected to %s (session present: %s)", self.client_id, self.url,
                 flags.session_present)
        client.subscribe(self.topic, options=SubscribeOptions(qos=1))

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho passes no exception here: a refused TCP connection or a failed TLS handshake
        log.warning("ingest client %s: cannot connect to %s (network or TLS); retrying", self.client_id, self.url)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags, reason: ReasonCode,
                       properties: Properties | None) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if reason.is_failure:
            log.warning("ingest client %s lost the broker %s: %s", self.client_id, self.url, reason)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode],
                      properties: Properties | None) -> None:
        if any(r.is_failure for r in reasons):
            log.error("ingest client %s: subscription %s refused: %s", self.client_id, self.topic, reasons)
            return
        self.subscribed.set()

    def _on_unsubscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode],
                        properties: Properties | None) -> None:
        self._unsubscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.received += 1
        # overflow policy BLOCK: waiting here stops reading the socket; the worker frees room
        payload = msg.payload if isinstance(msg.payload, bytes) else bytes(msg.payload)
        self.inbox.put(Delivery(self.generation, msg.mid, msg.qos, msg.topic, payload))


__all__ = ["Delivery", "Subscriber"]
