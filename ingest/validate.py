"""Validation at the boundary: (topic, raw bytes) -> an accepted envelope, an edge status, or a dead letter.

Decoding is `twinline.uns.envelope.decode` (msgspec in C, then the contract's meaning checks with the clock
and the plant epoch passed in); nothing else looks at single samples. Every refusal becomes a DeadLetter
with the raw bytes, the field and a reason of the form `<code>: <words>`, where `<code>` is one of
DEAD_LETTER_CODES; metrics and `twinline ingest status` count by that code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeAlias

import msgspec

from twinline.ingest.writer import DeadLetter
from twinline.uns.envelope import EdgeStatus, Envelope, decode, decode_status, encode, encode_status, validate
from twinline.uns.errors import ContractError
from twinline.uns.topics import EDGE_SEGMENT, PREFIX, ParsedTopic, parse_topic

BAD_TOPIC: Final = "bad_topic"
MALFORMED: Final = "malformed"
SCHEMA_VERSION: Final = "schema_version"
WRONG_CHANNEL: Final = "wrong_channel"
OUT_OF_RANGE: Final = "out_of_range"
NOT_FINITE: Final = "not_finite"
FUTURE_TIMESTAMP: Final = "future_timestamp"
BEFORE_EPOCH: Final = "before_epoch"
UNKNOWN_ASSET: Final = "unknown_asset"
BAD_STATUS: Final = "bad_status"
DEAD_LETTER_CODES: Final = (BAD_TOPIC, MALFORMED, SCHEMA_VERSION, WRONG_CHANNEL, OUT_OF_RANGE, NOT_FINITE,
                            FUTURE_TIMESTAMP, BEFORE_EPOCH, UNKNOWN_ASSET, BAD_STATUS)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid envelope (its station still to be checked against the registry); `payload` as received."""

    topic: ParsedTopic
    envelope: Envelope
    payload: bytes = b""

    def unknown_asset(self, now: datetime) -> DeadLetter:
        """The dead letter of this envelope when its station is not an active station of the plant model."""
        channel = self.topic.channel.value if self.topic.channel is not None else ""
        env = self.envelope
        return DeadLetter(now, f"{PREFIX}/{self.topic.asset}/{channel}", self.payload or encode(env),
                          f"{UNKNOWN_ASSET}: {self.topic.asset} is not an active station of the plant model", "topic",
                          env.source, env.seq)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """An edge agent's birth / death on `twinline/v1/{line}/_edge/{agent}`."""

    line: str
    agent: str
    status: EdgeStatus

    def unknown_line(self, now: datetime) -> DeadLetter:
        """The dead letter of a birth / death from a line that has no active station in the plant model."""
        return DeadLetter(now, f"{PREFIX}/{self.line}/{EDGE_SEGMENT}/{self.agent}", encode_status(self.status),
                          f"{UNKNOWN_ASSET}: line {self.line} has no active station in the plant model", "topic")


Verdict: TypeAlias = Accepted | StatusUpdate | DeadLetter | None  # None: nothing to store (a cleared retained status)


class _Head(msgspec.Struct):
    """Just enough of a refused envelope to say whose it was in the dead letter."""

    source: str | None = None
    seq: int | None = None


_head_json = msgspec.json.Decoder(_Head)
_head_mp = msgspec.msgpack.Decoder(_Head)


def reason_code(reason: str) -> str:
    """The code of a dead letter's reason text (`future_timestamp: ...` -> `future_timestamp`)."""
    return reason.split(":", 1)[0]


def classify(err: ContractError) -> str:
    """The dead-letter code of a contract error, from the field it names (and its reason for time checks)."""
    f, r = err.field, err.reason
    if f.startswith("topic"):
        return BAD_TOPIC
    if f == "v":
        return SCHEMA_VERSION
    if f.endswith(".kind"):
        return WRONG_CHANNEL
    if f.endswith(".ts") and "in the future" in r:
        return FUTURE_TIMESTAMP
    if f.endswith(".ts") and "epoch" in r:
        return BEFORE_EPOCH
    if "finite" in r:
        return NOT_FINITE
    if r == "Number out of range" or (r.startswith("Expected") and any(op in r for op in ("<", ">"))):
        return OUT_OF_RANGE
    return MALFORMED


class Validator:
    """Checks one message without I/O; whether its station is registered is decided at flush (see batch.py),
    where a database connection is at hand. `not_before` is the plant epoch (updated when the plant changes).
    """

    def __init__(self, *, not_before: datetime | None = None, max_future_s: float = 300.0) -> None:
        self.not_before = not_before
        self.max_future_s = max_future_s

    def check(self, topic: str, payload: bytes, now: datetime) -> Verdict:
        """Parse the topic, decode the payload and check it; refusals come back as DeadLetter."""
        try:
            parsed = parse_topic(topic)
        except ContractError as exc:
            return _dead(now, topic, payload, exc, BAD_TOPIC)
        if parsed.agent is not None:
            return self._status(parsed, topic, payload, now)
        try:
            env = decode(payload, parsed.channel, now=now, max_future_s=self.max_future_s,
                         not_before=self.not_before)
        except ContractError as exc:
            return _dead(now, topic, payload, exc, classify(exc))
        return Accepted(parsed, env, payload)

    def check_envelope(self, parsed: ParsedTopic, env: Envelope, now: datetime, payload: bytes = b"") -> Verdict:
        """The same checks for an envelope already in memory (backfill from the simulators)."""
        channel = parsed.channel.value if parsed.channel is not None else ""
        topic = f"{PREFIX}/{parsed.asset}/{channel}"
        try:
            validate(env, parsed.channel, now=now, max_future_s=self.max_future_s, not_before=self.not_before)
        except ContractError as exc:
            return DeadLetter(now, topic, payload or encode(env), f"{classify(exc)}: {exc.reason}", exc.field,
                              env.source, env.seq)
        return Accepted(parsed, env, payload)

    def _status(self, parsed: ParsedTopic, topic: str, payload: bytes, now: datetime) -> Verdict:
        if not payload:
            return None  # an empty retained message clears a birth; there is nothing to record
        try:
            status = decode_status(payload)
        except ContractError as exc:
            return _dead(now, topic, payload, exc, BAD_STATUS)
        assert parsed.agent is not None
        if status.agent != parsed.agent:
            return DeadLetter(now, topic, payload, f"{BAD_STATUS}: agent {status.agent!r} does not match the topic's "
                                                   f"{parsed.agent!r}", "agent")
        return StatusUpdate(parsed.asset.line_path, parsed.agent, status)


def _dead(now: datetime, topic: str, payload: bytes, exc: ContractError, code: str) -> DeadLetter:
    source, seq = _head(payload)
    return DeadLetter(now, topic, payload, f"{code}: {exc.reason}", exc.field, source, seq)


def _head(payload: bytes) -> tuple[str | None, int | None]:
    try:
        head = _head_json.decode(payload) if payload[:1] == b"{" else _head_mp.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None, None
    source = head.source[:128] if isinstance(head.source, str) else None
    seq = head.seq if isinstance(head.seq, int) and 0 <= head.seq < 2**63 else None
    return source, seq


__all__ = ["BAD_STATUS", "BAD_TOPIC", "BEFORE_EPOCH", "DEAD_LETTER_CODES", "FUTURE_TIMESTAMP", "MALFORMED",
           "NOT_FINITE", "OUT_OF_RANGE", "SCHEMA_VERSION", "UNKNOWN_ASSET", "WRONG_CHANNEL", "Accepted",
           "StatusUpdate", "Validator", "Verdict", "classify", "reason_code"]
