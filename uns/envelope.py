"""The versioned payload envelope: one source, one per-source sequence number, MANY samples.

Wire formats: JSON (default, any plant tool can publish it) and MessagePack (same types, smaller and
faster); `decode` tells them apart by the first byte. Decoding is two-phase: msgspec checks types and
shapes (fast, in C), then `validate` checks meaning (time zones, finite values, reasons that belong to
their state, the topic's channel). Every failure is a ContractError naming the field, e.g.
`samples[3].good`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final

import msgspec

from twinline.uns.errors import ContractError
from twinline.uns.states import E10, REASONS, Reason
from twinline.uns.topics import Channel

SCHEMA_VERSION: Final = 1
MAX_SAMPLES: Final = 100_000

UtcTime = Annotated[datetime, msgspec.Meta(tz=True)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
NonNeg = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]


class Quality(StrEnum):
    """Data quality, kept from OPC UA status codes: bad / uncertain values are never passed off as good."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


class StateSample(msgspec.Struct, tag="state", forbid_unknown_fields=True, frozen=True):
    """The station entered `state` (SEMI E10) for `reason` at `ts`; it stays there until the next one."""

    ts: UtcTime
    state: E10
    reason: Reason
    quality: Quality = Quality.GOOD


class CountSample(msgspec.Struct, tag="count", forbid_unknown_fields=True, frozen=True):
    """Units completed since the previous count sample of this station (increments, never totals)."""

    ts: UtcTime
    good: NonNeg = 0
    scrap: NonNeg = 0
    rework: NonNeg = 0
    product: Name | None = None
    quality: Quality = Quality.GOOD


class ProcessSample(msgspec.Struct, tag="process", forbid_unknown_fields=True, frozen=True):
    """A process value (temperature, pressure, thickness ...) in the unit it names."""

    ts: UtcTime
    name: Name
    value: float
    unit: Annotated[str, msgspec.Meta(max_length=32)]
    quality: Quality = Quality.GOOD
    status_code: int | None = None  # the raw OPC UA StatusCode when the value came from OPC UA


class ProductSample(msgspec.Struct, tag="product", forbid_unknown_fields=True, frozen=True):
    """The station switched to `product` (SKU) running `recipe` at `ts`."""

    ts: UtcTime
    product: Name
    recipe: Name | None = None


class AlarmSample(msgspec.Struct, tag="alarm", forbid_unknown_fields=True, frozen=True):
    """An alarm became active (`active=True`) or cleared; severity 1-1000 as OPC UA."""

    ts: UtcTime
    code: Name
    active: bool
    severity: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 500
    text: Annotated[str, msgspec.Meta(max_length=512)] = ""


class EnergySample(msgspec.Struct, tag="energy", forbid_unknown_fields=True, frozen=True):
    """Energy used since the previous energy sample of this station (kWh increment), optional power."""

    ts: UtcTime
    energy_kwh: Annotated[float, msgspec.Meta(ge=0)]
    power_kw: float | None = None
    quality: Quality = Quality.GOOD


Sample = StateSample | CountSample | ProcessSample | ProductSample | AlarmSample | EnergySample

KIND_OF: Final[dict[type, Channel]] = {
    StateSample: Channel.STATE,
    CountSample: Channel.COUNT,
    ProcessSample: Channel.PROCESS,
    ProductSample: Channel.PRODUCT,
    AlarmSample: Channel.ALARM,
    EnergySample: Channel.ENERGY,
}


class Envelope(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Schema version, source id, per-source sequence, edge receive time and the samples."""

    v: int
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    edge_ts: UtcTime
    samples: Annotated[list[Sample], msgspec.Meta(min_length=1, max_length=MAX_SAMPLES)]


class EdgeStatus(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Birth (online=True, retained) or death (online=False, the MQTT will) of an edge agent."""

    v: int
    agent: Name
    online: bool
    ts: UtcTime | None = None
    sources: list[str] = []
    stations: list[str] = []


_json_enc = msgspec.json.Encoder()
_mp_enc = msgspec.msgpack.Encoder()
_json_dec = msgspec.json.Decoder(Envelope)
_mp_dec = msgspec.msgpack.Decoder(Envelope)
_status_dec = msgspec.json.Decoder(EdgeStatus)
_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`$")


def encode(envelope: Envelope, *, binary: bool = False) -> bytes:
    """JSON by default; MessagePack when `binary`."""
    return _mp_enc.encode(envelope) if binary else _json_enc.encode(envelope)


def encode_status(status: EdgeStatus) -> bytes:
    return _json_enc.encode(status)


def _translate(exc: msgspec.MsgspecError) -> ContractError:
    text = str(exc)
    m = _PATH.search(text)
    if m:
        field = m.group("path").lstrip(".")
        reason = text[: m.start()]
        missing = _MISSING.match(reason)
        if missing:
            field = f"{field}.{missing.group(1)}" if field else missing.group(1)
        return ContractError(field, reason)
    missing = _MISSING.match(text)
    if missing:
        return ContractError(missing.group(1), text)
    return ContractError("", f"malformed payload: {text}")


def decode(payload: bytes, channel: Channel | None = None, *, now: datetime | None = None,
           max_future_s: float = 300.0, not_before: datetime | None = None) -> Envelope:
    """Decode and validate one envelope; see `validate` for the meaning checks."""
    if not payload:
        raise ContractError("", "empty payload")
    try:
        env = _json_dec.decode(payload) if payload[:1] in (b"{", b" ", b"\n", b"\t") else _mp_dec.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _translate(exc) from None
    validate(env, channel, now=now, max_future_s=max_future_s, not_before=not_before)
    return env


def decode_status(payload: bytes) -> EdgeStatus:
    try:
        return _status_dec.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _translate(exc) from None


def validate(env: Envelope, channel: Channel | None = None, *, now: datetime | None = None,
             max_future_s: float = 300.0, not_before: datetime | None = None) -> None:
    """Meaning checks msgspec cannot do.

    - schema version known; every sample of the topic's channel (when given);
    - finite numbers (NaN / inf are rejected, never stored);
    - a reason that belongs to its E10 state;
    - device time not more than `max_future_s` after `now` and not before `not_before` (the plant's
      epoch) when those are given — the caller passes its clock, this module never reads one.
    """
    if env.v != SCHEMA_VERSION:
        raise ContractError("v", f"unsupported schema version {env.v} (this build speaks {SCHEMA_VERSION})")
    # Whole-envelope checks first (C-level builtins over the samples); only a failing envelope is walked
    # sample by sample to name the offending one. This keeps ingest's hot path off per-sample Python code.
    samples = env.samples
    kinds = {type(s) for s in samples}
    if channel is not None and kinds != {_TYPE_OF[channel]}:
        _first(samples, lambda s: KIND_OF[type(s)] is not channel, "kind",
               lambda s: f"a {KIND_OF[type(s)].value} sample on a {channel.value} topic")
    if now is not None:
        limit = now + timedelta(seconds=max_future_s)
        if max(s.ts for s in samples) > limit:
            _first(samples, lambda s: s.ts > limit, "ts",
                   lambda s: f"{s.ts.isoformat()} is more than {max_future_s:g} s in the future")
    if not_before is not None and min(s.ts for s in samples) < not_before:
        _first(samples, lambda s: s.ts < not_before, "ts", lambda s: f"{s.ts.isoformat()} is before the plant's epoch")
    if StateSample in kinds:
        _first(samples, lambda s: isinstance(s, StateSample) and s.reason not in REASONS[s.state], "reason",
               lambda s: f"reason {s.reason.value!r} does not belong to state {s.state.value}")
    if ProcessSample in kinds and not all(map(math.isfinite, (s.value for s in samples if type(s) is ProcessSample))):
        _first(samples, lambda s: isinstance(s, ProcessSample) and not math.isfinite(s.value), "value",
               lambda s: "not a finite number")
    if EnergySample in kinds:
        _first(samples, lambda s: isinstance(s, EnergySample) and not math.isfinite(s.energy_kwh), "energy_kwh",
               lambda s: "not a finite number")
        _first(samples, lambda s: isinstance(s, EnergySample) and s.power_kw is not None
               and not math.isfinite(s.power_kw), "power_kw", lambda s: "not a finite number")


def _first(samples: list[Any], bad: Callable[[Any], bool], field: str, why: Callable[[Any], str]) -> None:
    """Raise ContractError for the first sample for which `bad` holds (if any)."""
    for i, s in enumerate(samples):
        if bad(s):
            raise ContractError(f"samples[{i}].{field}", why(s))


_TYPE_OF: Final[dict[Channel, type]] = {channel: kind for kind, channel in KIND_OF.items()}


def utc(ts: datetime) -> datetime:
    """Normalise an aware datetime to UTC; naive datetimes are a contract error, never guessed."""
    if ts.tzinfo is None:
        raise ContractError("ts", "naive datetime (no time zone)")
    return ts.astimezone(UTC)


__all__ = [
    "E10",
    "KIND_OF",
    "MAX_SAMPLES",
    "SCHEMA_VERSION",
    "AlarmSample",
    "CountSample",
    "EdgeStatus",
    "EnergySample",
    "Envelope",
    "ProcessSample",
    "ProductSample",
    "Quality",
    "Reason",
    "Sample",
    "StateSample",
    "decode",
    "decode_status",
    "encode",
    "encode_status",
    "utc",
    "validate",
]
