"""The live twin: current state, product, shift counts and OEE so far of every station, from the UNS.

``LiveTwin`` subscribes to ``twinline/v1/{site}/#`` with paho-mqtt 2.x on paho's own network thread.
The message callback never blocks: it only puts (topic, payload) into a bounded queue; its overflow
policy is "drop the newest message and count it" (``LiveSnapshot.dropped``). A worker thread decodes
envelopes (twinline.uns.envelope) and applies state / product / count samples under a lock;
redelivered envelopes (same source and sequence) are applied once.

At ``start`` the running shift so far is seeded from the database (twin.store: state intervals, counts
per hour and product, product in force) up to the seed time ``horizon`` = clock(); stream samples
stamped before the horizon are taken as already seeded and skipped (a sample that reaches the broker
after the seed but is stamped before it is therefore missed until the next restart: documented limit).
When the clock enters a new shift, each station's counts restart from zero and its state carries over.

``snapshot()`` computes, per station, the shift's time elements so far with the pure engine
(twin.timemodel, scheduled = the shift up to now, the calendar's planned downtime) and OEE so far
(twin.iso22400.kpis). Per line:
- hourly plan vs actual: for each hour of the shift so far (hours counted from the shift start),
  plan = scheduled seconds of the hour outside planned downtime / the line's bottleneck ideal cycle
  time of the product running at the last station; actual = good units at the last station.
- shift-end forecast = actual output so far + rate × remaining scheduled time (outside planned downtime),
  rate = output so far / scheduled time elapsed so far (outside planned downtime); None before any
  scheduled time has elapsed.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from twinline.uns.plant import Plant

from ._live_state import LineLive, LiveSnapshot, StationLive, StationState, build_line, render
from .errors import TwinError

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
_SEEN_MAX = 50_000
Clock = Callable[[], datetime]


class LiveTwin:
    """Keeps the running shift of every station of ``plant`` up to date from the UNS (module docstring).

    ``dsn`` None skips the database seed (counts then start at the first message). ``clock`` returns the
    current UTC time (the wall clock in programs, a fake one in tests). Use as a context manager or call
    ``start`` / ``stop``.
    """

    def __init__(self, dsn: str | None, mqtt_url: str, plant: Plant, *, clock: Clock,
                 client_id: str | None = None, queue_size: int = QUEUE_SIZE) -> None:
        self._plant = plant
        self._dsn = dsn
        self._mqtt_url = mqtt_url
        self._client_id = client_id or f"twinline-twin-{uuid.uuid4().hex[:10]}"
        self._clock = clock
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._stations = {path: StationState(path, plant.line_of(path)) for path in plant.stations}
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._horizon: datetime | None = None
        self._client: Any = None
        self._worker: threading.Thread | None = None
        self._connected = threading.Event()
        self.messages = 0
        self.dropped = 0
        self.rejected = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, connect_timeout_s: float = 30.0) -> None:
        """Seed from the database (when a DSN is configured), connect and subscribe; returns when subscribed."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from twinline.uns.mqtturl import parse_mqtt_url, tls_context

        now = self._clock()
        if self._dsn:
            self._seed(now)
        self._horizon = now
        url = parse_mqtt_url(self._mqtt_url)
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             client_id=self._client_id, protocol=mqtt.MQTTv311, clean_session=True)
        if url.username:
            client.username_pw_set(url.username, url.password)
        if url.tls:  # certificate and host name checked; url.ca_file None = the system trust store
            try:
                client.tls_set_context(tls_context(url.ca_file))
            except OSError as exc:  # ssl.SSLError is an OSError too: an unreadable or invalid CA file
                raise TwinError(f"live twin: cannot load the CA file {url.ca_file}: {exc}") from exc
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        self._client = client
        self._worker = threading.Thread(target=self._work, name="twin-live", daemon=True)
        self._worker.start()
        try:
            client.connect(url.host, url.port, keepalive=30)
        except OSError as exc:
            self.stop()
            raise TwinError(f"live twin cannot reach the broker {url}: {exc}") from exc
        client.loop_start()
        if not self._connected.wait(connect_timeout_s):
            self.stop()
            raise TwinError(f"live twin: no subscription on {url} within {connect_timeout_s:g} s")

    def stop(self) -> None:
        """Disconnect and stop the worker (idempotent)."""
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=10)
            self._worker = None

    def __enter__(self) -> LiveTwin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ paho callbacks (never block)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("live twin: broker refused the connection: %s", reason_code)
            return
        client.subscribe(f"twinline/v1/{self._plant.site_id}/#", qos=1)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._connected.clear()

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reason_codes: Any, properties: Any) -> None:
        self._connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            self._queue.put_nowait((str(message.topic), bytes(message.payload)))
        except queue.Full:
            self.dropped += 1  # overflow policy: drop the newest, count it

    # ------------------------------------------------------------------ worker

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._apply(*item)

    def _apply(self, topic: str, payload: bytes) -> None:
        from twinline.uns.envelope import CountSample, ProductSample, StateSample, decode
        from twinline.uns.errors import ContractError
        from twinline.uns.topics import parse_topic

        try:
            parsed = parse_topic(topic)
            if parsed.channel is None:
                return
            env = decode(payload, parsed.channel, now=self._clock(), max_future_s=86400.0 * 365)
        except ContractError as exc:
            self.rejected += 1
            log.info("live twin: rejected message on %s: %s", topic, exc)
            return
        station = self._stations.get(str(parsed.asset))
        key = (env.source, env.seq)
        with self._lock:
            self.messages += 1
            if station is None or key in self._seen:
                return
            self._seen[key] = None
            if len(self._seen) > _SEEN_MAX:
                self._seen.popitem(last=False)
            for sample in env.samples:
                if self._horizon is not None and sample.ts < self._horizon:
                    continue
                if isinstance(sample, StateSample):
                    station.enter(sample.ts, sample.state.value, sample.reason.value, sample.quality.value)
                elif isinstance(sample, ProductSample):
                    station.set_product(sample.ts, sample.product)
                elif isinstance(sample, CountSample):
                    station.add_count(sample.ts, sample.product, sample.good, sample.scrap, sample.rework)

    # ------------------------------------------------------------------ seed and snapshot

    def _seed(self, now: datetime) -> None:
        from . import store

        with store.connect(self._dsn or "") as conn:
            for path, st in self._stations.items():
                shift = st.line.calendar.shift_at(now)
                start = shift.start if shift is not None else now - timedelta(hours=1)
                states = store.state_intervals(conn, [path], start, now, as_of=now)
                hours = st.hour_windows(start, now)
                plan = store.prepare_rollups(conn, start, now)
                counts = store.counts(conn, [path], hours, as_of=now, plan=plan)
                products = store.product_changes(conn, [path], start, now, as_of=now)
                st.seed(shift, states, hours, counts, products)

    def snapshot(self) -> LiveSnapshot:
        """The live state now (clock()), with OEE so far, plan vs actual and forecast per line."""
        now = self._clock()
        lines: list[LineLive] = []
        with self._lock:
            for ln in self._plant.lines.values():
                stations = [self._stations[str(s.path)] for s in ln.stations]
                for st in stations:
                    st.roll(now)
                lines.append(build_line(ln, stations, now))
        return LiveSnapshot(now, tuple(lines), self.messages, self.dropped, self.rejected,
                            self._client is not None and self._connected.is_set())


__all__ = ["LineLive", "LiveSnapshot", "LiveTwin", "StationLive", "render"]
