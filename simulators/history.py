"""History mode: simulate a period as fast as possible straight into the contract (envelopes) plus the truth.

Each station is one source (`sim:<station path>`) with one sequence counter over its channels; samples are
batched per station channel into envelopes of up to `batch_size` samples (the last batch of each channel is
flushed when the period ends). `run_history` returns a HistoryResult that generates lazily: iterating it
runs the model hour by hour (`chunk_s`) and yields `(topic, Envelope)` pairs as batches fill, so 30 days
never sit in memory at once. The truth is complete once the iteration is exhausted (`result.truth`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from twinline.simulators.engine import LineModel
from twinline.simulators.errors import SimConfigError
from twinline.simulators.truth import Truth
from twinline.uns.envelope import (
    SCHEMA_VERSION,
    AlarmSample,
    CountSample,
    EnergySample,
    Envelope,
    ProcessSample,
    ProductSample,
    Sample,
    StateSample,
)
from twinline.uns.plant import Plant
from twinline.uns.states import E10, Reason
from twinline.uns.topics import Channel, data_topic

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHANNELS = (Channel.STATE, Channel.COUNT, Channel.PROCESS, Channel.PRODUCT, Channel.ALARM, Channel.ENERGY)


class EnvelopeBatcher:
    """Observer turning model events into batched envelopes per station channel (history sink)."""

    def __init__(self, model: LineModel, batch_size: int = 1000) -> None:
        self.batch_size = batch_size
        self.t0_us = model.truth.t0_us
        stations = model.line.stations
        self.sources = [f"sim:{s.path}" for s in stations]
        self.seq = [0 for _ in stations]
        self.topics = [{c: data_topic(s.path, c) for c in _CHANNELS} for s in stations]
        self.pending: list[dict[Channel, list[Sample]]] = [{c: [] for c in _CHANNELS} for _ in stations]
        self.out: list[tuple[str, Envelope]] = []
        self.clock = model  # edge_ts of a history envelope is the time of its last sample

    def ts(self, t: float) -> datetime:
        return _EPOCH + timedelta(microseconds=self.t0_us + round(t * 1_000_000))

    def _add(self, st: int, channel: Channel, sample: Sample) -> None:
        batch = self.pending[st][channel]
        batch.append(sample)
        if len(batch) > self.batch_size:
            self._flush(st, channel, keep_last=True)

    def _flush(self, st: int, channel: Channel, keep_last: bool = False) -> None:
        # keep_last: the newest sample stays pending, so a zero-length state at the same instant can still
        # replace it (see on_state)
        batch = self.pending[st][channel]
        if keep_last:
            batch, self.pending[st][channel] = batch[:-1], batch[-1:]
        else:
            self.pending[st][channel] = []
        if not batch:
            return
        env = Envelope(v=SCHEMA_VERSION, source=self.sources[st], seq=self.seq[st], edge_ts=batch[-1].ts,
                       samples=batch)
        self.seq[st] += 1
        self.out.append((self.topics[st][channel], env))

    def flush_all(self) -> None:
        for st in range(len(self.pending)):
            for channel in _CHANNELS:
                self._flush(st, channel)

    def drain(self) -> list[tuple[str, Envelope]]:
        out, self.out = self.out, []
        return out

    # ------------------------------------------------------------------ Observer
    def on_state(self, st: int, t: float, state: E10, reason: Reason, power_kw: float) -> None:
        ts = self.ts(t)
        batch = self.pending[st][Channel.STATE]
        if batch and batch[-1].ts == ts:  # a zero-length detour replaces the sample at the same instant
            batch.pop()
            if batch and isinstance(prev := batch[-1], StateSample) and (prev.state, prev.reason) == (state, reason):
                return
        self._add(st, Channel.STATE, StateSample(ts=ts, state=state, reason=reason))

    def on_count(self, st: int, t: float, product: str, good: int, scrap: int, rework: int) -> None:
        self._add(st, Channel.COUNT, CountSample(ts=self.ts(t), good=good, scrap=scrap, rework=rework, product=product))

    def on_product(self, st: int, t: float, product: str) -> None:
        self._add(st, Channel.PRODUCT, ProductSample(ts=self.ts(t), product=product, recipe=product))

    def on_process(self, st: int, t: float, name: str, value: float, unit: str) -> None:
        self._add(st, Channel.PROCESS, ProcessSample(ts=self.ts(t), name=name, value=value, unit=unit))

    def on_energy(self, st: int, t: float, kwh: float, power_kw: float) -> None:
        self._add(st, Channel.ENERGY, EnergySample(ts=self.ts(t), energy_kwh=kwh, power_kw=power_kw))

    def on_alarm(self, st: int, t: float, code: str, active: bool, severity: int, text: str) -> None:
        self._add(st, Channel.ALARM, AlarmSample(ts=self.ts(t), code=code, active=active, severity=severity,
                                                 text=text))


class HistoryResult:
    """Lazy result of `run_history`: iterate for `(topic, Envelope)`; `truth` is complete after iteration."""

    def __init__(self, model: LineModel, batcher: EnvelopeBatcher, end_s: float, chunk_s: float) -> None:
        self.model = model
        self.batcher = batcher
        self.end_s = end_s
        self.chunk_s = chunk_s
        self._started = False

    @property
    def truth(self) -> Truth:
        return self.model.truth

    @property
    def done(self) -> bool:
        return bool(self.model.closed)

    @property
    def progress(self) -> float:
        """Fraction of the period simulated so far (0..1)."""
        return min(1.0, self.model.env.now / self.end_s) if self.end_s > 0 else 1.0

    @property
    def station_hours(self) -> float:
        return len(self.model.stations) * self.end_s / 3600.0

    def __iter__(self) -> Iterator[tuple[str, Envelope]]:
        if self._started:
            raise RuntimeError("a HistoryResult can be iterated once")
        self._started = True
        t = 0.0
        while t < self.end_s:
            t = min(self.end_s, t + self.chunk_s)
            if t < self.end_s:
                self.model.run_until(t)
            else:
                self.model.close(t)
                self.batcher.flush_all()
            yield from self.batcher.drain()

    def collect(self) -> list[tuple[str, Envelope]]:
        """Run to the end and return every envelope (small periods and tests)."""
        return list(self)


def run_history(plant: Plant, line_path: str, start: datetime, end: datetime, seed: int, *,
                batch_size: int = 1000, chunk_s: float = 3600.0) -> HistoryResult:
    """Simulate `line_path` over [start, end) with `seed`; see HistoryResult."""
    if start.tzinfo is None or end.tzinfo is None:
        raise SimConfigError("start" if start.tzinfo is None else "end", "naive datetime (no time zone)")
    if end <= start:
        raise SimConfigError("end", f"end {end.isoformat()} is not after start {start.isoformat()}")
    model = LineModel(plant, line_path, start, seed)
    batcher = EnvelopeBatcher(model, batch_size)
    model.add_observer(batcher)
    # the initial state samples were emitted before the batcher was attached: replay them
    for s in model.stations:
        batcher.on_state(s.i, 0.0, s.disp[0], s.disp[1], s.power)
    return HistoryResult(model, batcher, (end - start).total_seconds(), chunk_s)
