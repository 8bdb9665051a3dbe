"""OPC UA source: an asyncua client subscription per server, notifications -> normaliser -> queue.

- One subscription, one monitored item per tagged node; the server-side queue per item (`queue_size`,
  default 1000, `discard_oldest`) holds every change between two publishes, so changes are not
  overwritten the way queue size 1 drops them under load; overflows that still happen are counted from
  the status code's overflow bit. Deadband (absolute) only on process values.
- Each publish response is handled as ONE batch inside the publish loop: sorted, normalised and
  committed to the queue before asyncua acknowledges it in its next Publish request.
- After every (re)subscribe the current values are READ once and go through the same path (a
  notification missed around the subscribe is not lost; repeats are suppressed by the normaliser).
- The session is probed every `keepalive_s`; a failed probe, a Bad status-change notification or a
  lost connection tears everything down and re-creates session + subscription with backoff + jitter.
  Counters that went down (a restarted device) are handled by the normaliser.
- Security: None, or Basic256Sha256 Sign / SignAndEncrypt with our certificate; username/password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, cast

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import Subscription
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError

from twinline.edge._retry import backoff_s
from twinline.edge.config import EdgeConfig, OpcUaSourceConfig, read_secret
from twinline.edge.errors import QueueError, SourceError
from twinline.edge.normalise import Normaliser, Reading
from twinline.edge.stats import SourceStats
from twinline.edge.tagmap import OpcUaTag
from twinline.uns.envelope import Quality

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
Sink = Callable[[str, Normaliser, list[Reading], datetime], Awaitable[None]]
_UA_ERRORS = (OSError, TimeoutError, ConnectionError, UaError, asyncio.IncompleteReadError)


def quality_of(code: int) -> Quality:
    """OPC UA StatusCode severity bits (Part 4 7.39): 00 Good, 01 Uncertain, 10/11 Bad."""
    severity = (code >> 30) & 0b11
    return Quality.GOOD if severity == 0 else Quality.UNCERTAIN if severity == 1 else Quality.BAD


def _overflowed(code: int) -> bool:
    return bool(code & 0x0400) and bool(code & 0x0080)  # InfoType DataValue + Overflow bit


class _BatchSubscription(Subscription):
    """A subscription that hands each publish response to `on_batch` as one list, in the publish loop."""

    def __init__(self, session: Any, params: ua.CreateSubscriptionParameters,
                 on_batch: Callable[[list[tuple[int, ua.DataValue]]], Awaitable[None]],
                 on_status: Callable[[ua.StatusCode], None]) -> None:
        super().__init__(session, params, handler=cast(Any, self))
        self._on_batch = on_batch
        self._on_status = on_status

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_publish_at = asyncio.get_running_loop().time()
        data = publish_result.NotificationMessage.NotificationData
        if not data:
            return
        items: list[tuple[int, ua.DataValue]] = []
        for notif in data:
            if isinstance(notif, ua.DataChangeNotification):
                items.extend((m.ClientHandle, m.Value) for m in notif.MonitoredItems)
            elif isinstance(notif, ua.StatusChangeNotification):
                self._on_status(notif.Status)
        if items:
            await self._on_batch(items)


class OpcUaSource:
    def __init__(self, cfg: EdgeConfig, src: OpcUaSourceConfig, tags: tuple[OpcUaTag, ...], sink: Sink,
                 normaliser: Normaliser, stats: SourceStats, *, clock: Clock) -> None:
        self.cfg = cfg
        self.src = src
        self.tags = tags
        self.sink = sink
        self.normaliser = normaliser
        self.stats = stats
        self.clock = clock
        self._lost = asyncio.Event()
        self.halt = asyncio.Event()  # set by the agent when stopping (asyncua may swallow a cancellation)
        self._fatal: BaseException | None = None
        self.name = cfg.source_id(src.name)

    async def run(self) -> None:
        attempt = 0
        while not self.halt.is_set():
            try:
                await self._session()
            except SourceError as exc:
                _reraise_cancel()
                self.stats.error(str(exc))
                if self._fatal is not None:
                    raise self._fatal from exc
                delay = backoff_s(attempt, self.src.reconnect_min_s, self.src.reconnect_max_s)
                log.warning("source %s: %s; retry in %.1f s", self.name, exc, delay)
                attempt = attempt + 1 if not self.stats.connected else 0
                self.stats.connected = False
                await asyncio.sleep(delay)
                self.stats.reconnects_total += 1

    async def _make_client(self) -> Client:
        src = self.src
        client = Client(src.endpoint, timeout=src.timeout_s, watchdog_intervall=src.keepalive_s)
        client.name = client.description = f"twinline edge {self.cfg.agent}"
        if src.security.policy == "Basic256Sha256":
            sec = src.security
            cert = self.cfg.path(sec.certificate or "")
            uri = _application_uri(cert.read_bytes())
            if uri:
                client.application_uri = uri
            mode = ua.MessageSecurityMode.Sign if sec.mode == "Sign" else ua.MessageSecurityMode.SignAndEncrypt
            server_cert = str(self.cfg.path(sec.server_certificate)) if sec.server_certificate else None
            await client.set_security(SecurityPolicyBasic256Sha256, str(cert),
                                      str(self.cfg.path(sec.private_key or "")), server_certificate=server_cert,
                                      mode=mode)
        if src.username:
            client.set_user(src.username)
            password = read_secret(self.cfg, src.password_file)
            if password is not None:
                client.set_password(password)
        return client

    async def _session(self) -> None:
        self._lost.clear()
        try:
            client = await self._make_client()
            await client.connect()
        except _UA_ERRORS as exc:
            raise SourceError(f"cannot connect to {self.src.endpoint}: {exc!r}") from exc
        try:
            await self._subscribe(client)
            self.stats.connected = True
            log.info("source %s: subscribed %d nodes at %s", self.name, len(self.tags), self.src.endpoint)
            while not self._lost.is_set() and not self.halt.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._lost.wait(), self.src.keepalive_s)
                if not self._lost.is_set() and not self.halt.is_set():
                    await asyncio.wait_for(client.nodes.server_state.read_value(), self.src.timeout_s)
            if self.halt.is_set():
                return
            raise SourceError(self._fatal_text())
        except _UA_ERRORS as exc:
            raise SourceError(f"connection to {self.src.endpoint} lost: {exc!r}") from exc
        finally:
            self.stats.connected = False
            with contextlib.suppress(*_UA_ERRORS):
                await asyncio.wait_for(client.disconnect(), 2.0)

    def _fatal_text(self) -> str:
        return f"queue failed: {self._fatal}" if self._fatal else f"server {self.src.endpoint} reported a bad status"

    async def _subscribe(self, client: Client) -> None:
        node_ids = [await self._resolve(client, t.node) for t in self.tags]
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=self.src.publishing_interval_ms, RequestedLifetimeCount=10000,
            RequestedMaxKeepAliveCount=max(3, int(10_000 / self.src.publishing_interval_ms)),
            MaxNotificationsPerPublish=0, PublishingEnabled=True, Priority=0)
        sub = _BatchSubscription(client.uaclient.session, params, self._on_batch, self._on_status)
        await sub.init()
        requests = [self._item(i, nid, t) for i, (nid, t) in enumerate(zip(node_ids, self.tags, strict=True))]
        results = await sub.create_monitored_items(requests)
        for t, r in zip(self.tags, results, strict=True):
            if isinstance(r, ua.StatusCode):
                self.stats.error(f"{t.node}: {r.name}")
                log.error("source %s: cannot monitor %s: %s", self.name, t.node, r.name)
        # read once after subscribing: an initial notification missed around the subscribe is not lost
        read = ua.ReadParameters()
        read.TimestampsToReturn = ua.TimestampsToReturn.Both
        read.NodesToRead = [ua.ReadValueId(NodeId=nid, AttributeId=AttributeIds.Value) for nid in node_ids]
        values = await client.uaclient.session.read(read)
        await self._on_batch(list(enumerate(values)))

    async def _resolve(self, client: Client, text: str) -> ua.NodeId:
        if text.startswith("nsu="):
            uri, _, rest = text[4:].partition(";")
            text = f"ns={await client.get_namespace_index(uri)};{rest}"
        try:
            return ua.NodeId.from_string(text)
        except (ValueError, UaError) as exc:
            raise SourceError(f"bad node id {text!r}") from exc

    def _item(self, handle: int, nid: ua.NodeId, tag: OpcUaTag) -> ua.MonitoredItemCreateRequest:
        params = ua.MonitoringParameters(ClientHandle=handle, SamplingInterval=self.src.sampling_interval_ms,
                                         QueueSize=self.src.queue_size, DiscardOldest=self.src.discard_oldest)
        if tag.tag.kind == "process" and self.src.deadband > 0:
            params.Filter = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValue,
                                                DeadbandType=ua.DeadbandType.Absolute,
                                                DeadbandValue=self.src.deadband)
        return ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(NodeId=nid, AttributeId=AttributeIds.Value),
            MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=params)

    def _on_status(self, status: ua.StatusCode) -> None:
        if not status.is_good():
            log.warning("source %s: status change %s", self.name, status.name)
            self._lost.set()

    async def _on_batch(self, items: list[tuple[int, ua.DataValue]]) -> None:
        recv = self.clock()
        readings: list[Reading] = []
        for handle, dv in items:
            if not 0 <= handle < len(self.tags):
                continue
            code = dv.StatusCode.value if dv.StatusCode is not None else 0
            if _overflowed(code):
                self.stats.overflow_total += 1
            value = dv.Value.Value if dv.Value is not None else None
            ts = dv.SourceTimestamp or dv.ServerTimestamp
            readings.append(Reading(self.tags[handle].tag, value, ts, quality_of(code), code or None))
            if ts is not None and (self.stats.last_value_ts is None or ts > self.stats.last_value_ts):
                self.stats.last_value_ts = ts
        self.stats.readings_total += len(readings)
        self.stats.last_receive_ts = recv
        try:
            await self.sink(self.name, self.normaliser, readings, recv)
        except QueueError as exc:  # the disk failed: stop this source, the agent exits and is restarted
            self._fatal = exc
            self._lost.set()


def _reraise_cancel() -> None:
    """asyncua may turn a cancellation into a connection error; a cancelled task must still end."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _application_uri(cert_bytes: bytes) -> str | None:
    """The URI in our certificate's subjectAltName: the client's ApplicationUri must match it."""
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(cert_bytes)
    except ValueError:
        cert = x509.load_pem_x509_certificate(cert_bytes)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


__all__ = ["OpcUaSource", "quality_of"]
