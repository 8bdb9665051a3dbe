"""Readings from a source -> contract samples (twinline.uns.envelope), per station and channel.

What it does to a batch of readings (one OPC UA publish response, one MQTT message):
- orders it by device time (a server groups notifications by monitored item); at equal time counts and
  energy come before a product change: a unit completed at the instant B is loaded is still A's;
- keeps the device timestamp as the sample `ts` (edge receive time when the device sent none);
- keeps data quality: bad counters/energy never move a baseline, process values keep quality and the
  raw OPC UA status code; nothing bad or uncertain is passed off as good;
- cumulative counters (good/scrap/rework, kWh) become increments; a counter that goes down is a device
  reset and its new value is the increment; the last values live in the queue DB (`kv`), written in
  the same transaction as the samples, so a restart neither double-counts nor loses;
- count increments carry the station's current product;
- state: E10 code + reason from two variables are combined (a state is emitted once the pair is valid:
  E10 reason sets are disjoint, so a new state with the old reason always waits for its reason), or
  mapped from MachineryItemState / PackML / a device status map; repeats are suppressed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from twinline.edge.errors import MappingError
from twinline.edge.tagmap import Tag
from twinline.uns.envelope import (
    KIND_OF,
    AlarmSample,
    CountSample,
    EnergySample,
    ProcessSample,
    ProductSample,
    Quality,
    Sample,
    StateSample,
)
from twinline.uns.states import E10, REASONS, Reason, from_machinery, from_packml
from twinline.uns.topics import AssetPath, Channel

log = logging.getLogger(__name__)
# At one device instant, units and energy belong to the product that made them: a station completes the last
# unit of A and loads B in the same instant, while B's first unit needs at least one cycle.
_ORDER = {"count": 0, "energy": 1, "state": 2, "product": 3, "process": 4, "alarm": 5}
_RANK = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2}
MAX_INCREMENT = 2**31 - 1


@dataclass(slots=True)
class Reading:
    """One value from a source for one tag, with the device's timestamp and the source's quality."""

    tag: Tag
    value: Any
    ts: datetime | None
    quality: Quality = Quality.GOOD
    status_code: int | None = None


@dataclass(slots=True)
class Normalised:
    """The samples of one batch and the persistent state (`kv`) to commit with them."""

    samples: list[tuple[AssetPath, Channel, Sample]] = field(default_factory=list)
    kv: dict[str, str] = field(default_factory=dict)
    rejected: int = 0  # readings that do not fit their tag (logged)
    bad: int = 0  # bad-quality readings that carry no usable value


@dataclass(slots=True)
class _Pending:
    state: E10 | None = None
    reason: Reason | None = None
    ts: datetime | None = None
    quality: Quality = Quality.GOOD


class Normaliser:
    """Per source; `kv` is the persisted state loaded from the queue DB (shared dict, updated in place)."""

    def __init__(self, source: str, kv: dict[str, str], *, first_counter: str = "baseline") -> None:
        self.source = source
        self.kv = kv
        self.first_counter = first_counter
        self._pending: dict[AssetPath, _Pending] = {}
        self._power: dict[AssetPath, float] = {}
        self._last_value: dict[str, tuple[datetime, Any]] = {}
        self._dirty: dict[str, str] = {}

    # ------------------------------------------------------------------ public

    def process(self, readings: list[Reading], recv_ts: datetime) -> Normalised:
        out = Normalised()
        ordered = sorted(readings, key=lambda r: (r.ts or recv_ts, _ORDER[r.tag.kind]))
        self._dirty = {}
        for r in ordered:
            if r.value is None:
                out.bad += 1
                continue
            if r.value == "" and r.tag.kind in ("state", "product"):
                continue  # a device that has not set the value yet (e.g. no product before the first one)
            try:
                self._one(r, r.ts or recv_ts, out)
            except MappingError as exc:
                out.rejected += 1
                log.warning("source %s: %s: %s", self.source, r.tag.key, exc)
        out.kv = self._dirty
        return out

    # ------------------------------------------------------------------ per kind

    def _set(self, key: str, value: str) -> None:
        self.kv[key] = value
        self._dirty[key] = value

    def _emit(self, out: Normalised, station: AssetPath, sample: Sample) -> None:
        out.samples.append((station, KIND_OF[type(sample)], sample))

    def _one(self, r: Reading, ts: datetime, out: Normalised) -> None:
        tag = r.tag
        if tag.kind == "state":
            self._state(r, ts, out)
        elif tag.kind == "count":
            self._count(r, ts, out)
        elif tag.kind == "product":
            sku = str(r.value).strip()
            if not sku or len(sku) > 128:
                raise MappingError(f"product {r.value!r} is not a SKU")
            key = f"product|{tag.station}"
            if self.kv.get(key) != sku and r.quality is not Quality.BAD:
                self._set(key, sku)
                self._emit(out, tag.station, ProductSample(ts=ts, product=sku))
        elif tag.kind == "process":
            value = _number(r.value) * tag.scale + tag.offset
            if self._repeat(tag.key, ts, value):
                return
            self._emit(out, tag.station, ProcessSample(ts=ts, name=tag.name or tag.key, value=value, unit=tag.unit,
                                                       quality=r.quality, status_code=r.status_code))
        elif tag.kind == "energy":
            self._energy(r, ts, out)
        else:
            self._alarm(r, ts, out)

    def _alarm(self, r: Reading, ts: datetime, out: Normalised) -> None:
        tag = r.tag
        code, severity, text, active = tag.code or tag.key, tag.severity, tag.text, r.value
        if isinstance(r.value, dict):  # an MQTT alarm message: code / severity / text from the payload
            code = str(r.value.get("code") or code)
            severity = int(r.value.get("severity") or severity)
            text = str(r.value.get("text") or text)[:512]
            active = r.value.get("active")
        if not 1 <= severity <= 1000 or not code or len(code) > 128:
            raise MappingError(f"alarm code {code!r} / severity {severity!r} out of range")
        if self._repeat(f"{tag.key}|{code}", None, bool(active)):
            return
        self._emit(out, tag.station, AlarmSample(ts=ts, code=code, active=bool(active), severity=severity, text=text))

    def _repeat(self, key: str, ts: datetime | None, value: Any) -> bool:
        last = self._last_value.get(key)
        if last is not None and last[1] == value and (ts is None or last[0] == ts):
            return True
        self._last_value[key] = (ts or datetime.min, value)
        return False

    def _state(self, r: Reading, ts: datetime, out: Normalised) -> None:
        tag = r.tag
        p = self._pending.setdefault(tag.station, _Pending())
        text = str(r.value).strip()
        if tag.field == "state":
            try:
                p.state = E10(text)
            except ValueError:
                raise MappingError(f"{text!r} is not a SEMI E10 state") from None
        elif tag.field == "reason":
            try:
                p.reason = Reason(text)
            except ValueError:
                raise MappingError(f"{text!r} is not a reason") from None
        else:
            try:
                if tag.field == "item_state":
                    p.state, p.reason = from_machinery(text)
                elif tag.field == "packml":
                    p.state, p.reason = from_packml(text)
                else:
                    p.state, p.reason = (tag.status_map or {})[text]
            except (KeyError, ValueError):
                raise MappingError(f"{text!r} is not a known {tag.field} value") from None
        p.ts = ts if p.ts is None else max(p.ts, ts)
        p.quality = r.quality if _RANK[r.quality] > _RANK[p.quality] else p.quality
        if p.state is None or p.reason is None or p.reason not in REASONS[p.state]:
            return  # waits for the other half of the pair
        key = f"state|{self.source}|{tag.station}"
        now = f"{p.state.value}/{p.reason.value}"
        if self.kv.get(key) != now:
            self._set(key, now)
            self._emit(out, tag.station, StateSample(ts=p.ts, state=p.state, reason=p.reason, quality=p.quality))
        p.ts, p.quality = None, Quality.GOOD

    def _increment(self, tag: Tag, value: float) -> float:
        """Cumulative value -> increment since the last one; first sight per `first_counter`; down = reset."""
        key = f"ctr|{self.source}|{tag.key}"
        last_text = self.kv.get(key)
        self._set(key, repr(value))
        if last_text is None:
            return value if self.first_counter == "count" else 0.0
        last = float(last_text)
        if value < last:
            log.info("source %s: %s went down from %s to %s: device reset, counting %s", self.source, tag.key,
                     last, value, value)
            return value
        return value - last

    def _count(self, r: Reading, ts: datetime, out: Normalised) -> None:
        tag = r.tag
        if r.quality is Quality.BAD:
            out.bad += 1  # a bad counter value must not move the baseline
            return
        value = _number(r.value)
        if value < 0 or value != int(value):
            raise MappingError(f"counter value {r.value!r} is not a whole number >= 0")
        inc = int(self._increment(tag, value)) if tag.cumulative else int(value)
        if inc == 0:
            return
        if inc > MAX_INCREMENT:
            raise MappingError(f"increment {inc} is implausible")
        product = self.kv.get(f"product|{tag.station}")
        fields = {tag.field or "good": inc}
        self._emit(out, tag.station, CountSample(ts=ts, product=product, quality=r.quality, **fields))

    def _energy(self, r: Reading, ts: datetime, out: Normalised) -> None:
        tag = r.tag
        if r.quality is Quality.BAD:
            out.bad += 1
            return
        value = _number(r.value) * tag.scale
        if tag.field == "power_kw":
            self._power[tag.station] = value
            return
        if value < 0:
            raise MappingError(f"energy total {r.value!r} is negative")
        inc = self._increment(tag, value) if tag.cumulative else value
        if inc <= 0:
            return
        self._emit(out, tag.station, EnergySample(ts=ts, energy_kwh=inc, power_kw=self._power.get(tag.station),
                                                  quality=r.quality))


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MappingError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise MappingError(f"{value!r} is not a finite number")
    return number


__all__ = ["MAX_INCREMENT", "Normalised", "Normaliser", "Reading"]
