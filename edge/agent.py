"""The agent: sources -> normaliser -> durable queue -> batcher (envelopes) -> uplink, plus health.

`run_agent(cfg, tagmap)` runs until `stop` is set (or forever); a TaskGroup owns every task. A queue
failure (disk) ends the agent with QueueError so systemd restarts it; source and uplink failures are
retried inside their tasks with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from twinline.edge.config import EdgeConfig, MqttSourceConfig, OpcUaSourceConfig
from twinline.edge.errors import QueueFull
from twinline.edge.health import Health
from twinline.edge.normalise import Normaliser, Reading
from twinline.edge.queue import DurableQueue
from twinline.edge.stats import AgentStats, SourceStats, UplinkStats
from twinline.edge.tagmap import TagMap
from twinline.edge.uplink import Uplink
from twinline.uns.mqtturl import parse_mqtt_url

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Sink:
    """Normalise a batch and commit it; under `reject_new` wait (blocking the source) until it fits."""

    def __init__(self, queue: DurableQueue, stats: AgentStats, batch_samples: int, full: asyncio.Event) -> None:
        self.queue = queue
        self.stats = stats
        self.batch_samples = batch_samples
        self.full = full
        self.drained = asyncio.Event()
        self._locks: dict[str, asyncio.Lock] = {}

    async def __call__(self, source: str, normaliser: Normaliser, readings: list[Reading], recv: datetime) -> None:
        lock = self._locks.setdefault(source, asyncio.Lock())
        name = source.split("/", 1)[1]
        st = self.stats.sources[name]
        async with lock:
            out = normaliser.process(readings, recv)
            st.rejected_total += out.rejected
            st.bad_total += out.bad
            while True:
                try:
                    self.queue.append(source, out.samples, out.kv, recv)
                    break
                except QueueFull:
                    st.blocked_total += 1
                    self.drained.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.drained.wait(), 1.0)
            st.samples_total += len(out.samples)
        if self.queue.pending >= self.batch_samples:
            self.full.set()


async def _batcher(cfg: EdgeConfig, queue: DurableQueue, uplink: Uplink, full: asyncio.Event,
                   sink: _Sink) -> None:
    """Seal pending samples into envelopes every `max_delay_s`, or at once when a full envelope waits."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(full.wait(), cfg.batching.max_delay_s)
        full.clear()
        if queue.seal(cfg.batching.max_samples):
            uplink.wake()
        if queue.depth < queue.max_samples:
            sink.drained.set()


def _endpoint(text: str) -> str:
    """An endpoint for display: no credentials."""
    if text.startswith(("mqtt://", "mqtts://")):
        return str(parse_mqtt_url(text))
    parts = urlsplit(text)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


async def run_agent(cfg: EdgeConfig, tagmap: TagMap, *, clock: Clock = utc_now,
                    stop: asyncio.Event | None = None) -> None:
    """Run the edge agent of `cfg` until `stop` is set (then stop gracefully: death message, queue closed)."""
    from twinline.edge.mqtt_source import MqttSource
    from twinline.edge.opcua_source import OpcUaSource

    queue = DurableQueue(cfg.state_path(cfg.queue.path), max_samples=cfg.queue.max_samples,
                         overflow=cfg.queue.overflow, synchronous=cfg.queue.synchronous).open()
    try:
        kv = queue.load_kv()
        stats = AgentStats(cfg.agent, cfg.line, clock(), UplinkStats(str(parse_mqtt_url(cfg.uplink.url or ""))))
        full = asyncio.Event()
        sink = _Sink(queue, stats, cfg.batching.max_samples, full)
        stations = sorted(str(s) for s in tagmap.stations())
        uplink = Uplink(cfg, queue, stats.uplink, clock=clock, sources=[cfg.source_id(s.name) for s in cfg.sources],
                        stations=stations)
        health = Health(stats, queue, cfg.state_path(cfg.health.status_file), interval_s=cfg.health.interval_s,
                        clock=clock)
        runners = []
        halts = [uplink.halt]
        for src in cfg.sources:
            normaliser = Normaliser(cfg.source_id(src.name), kv, first_counter=src.first_counter)
            if isinstance(src, OpcUaSourceConfig):
                st = stats.sources[src.name] = SourceStats(src.name, "opcua", _endpoint(src.endpoint))
                opc = OpcUaSource(cfg, src, tagmap.opcua[src.name], sink, normaliser, st, clock=clock)
                halts.append(opc.halt)
                runners.append(opc.run)
            elif isinstance(src, MqttSourceConfig):
                st = stats.sources[src.name] = SourceStats(src.name, "mqtt", f"{_endpoint(src.broker)} {src.topic}")
                runners.append(MqttSource(cfg, src, tagmap.mqtt[src.name], sink, normaliser, st, clock=clock).run)
        log.info("agent %s: starting on line %s with %d sources, %d stations; queue %s", cfg.agent, cfg.line,
                 len(runners), len(stations), queue.path)
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(uplink.run(), name="uplink"),
                     tg.create_task(_batcher(cfg, queue, uplink, full, sink), name="batcher"),
                     tg.create_task(health.run(), name="health")]
            if cfg.health.metrics_port:
                tasks.append(tg.create_task(health.serve(cfg.health.metrics_host, cfg.health.metrics_port)))
            tasks.extend(tg.create_task(run(), name=f"source-{src.name}")
                         for run, src in zip(runners, cfg.sources, strict=True))
            if stop is not None:
                await stop.wait()
                log.info("agent %s: stopping", cfg.agent)
                for halt in halts:
                    halt.set()
                await uplink.close()
                for t in tasks:
                    t.cancel()
        health.write(health.tick())
    finally:
        queue.close()


__all__ = ["run_agent", "utc_now"]
