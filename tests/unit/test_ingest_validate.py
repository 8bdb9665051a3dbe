"""Validation verdicts and dead-letter codes, rows mapping, and the Prometheus text (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from twinline.ingest.metrics import WorkerMetrics, prometheus_text
from twinline.ingest.rows import TABLES, rows_of
from twinline.ingest.validate import Accepted, StatusUpdate, Validator, reason_code
from twinline.ingest.writer import DeadLetter
from twinline.uns.envelope import EdgeStatus, Envelope, ProcessSample, encode, encode_status
from twinline.uns.topics import Channel

pytestmark = pytest.mark.unit

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
TOPIC = "twinline/v1/s/a/l/st/process"


def _env(ts: datetime, value: float = 1.0) -> Envelope:
    return Envelope(1, "src", 5, ts, [ProcessSample(ts, "temp", value, "degC")])


def test_a_valid_envelope_is_accepted() -> None:
    verdict = Validator().check(TOPIC, encode(_env(NOW)), NOW)
    assert isinstance(verdict, Accepted)
    assert verdict.topic.channel is Channel.PROCESS and verdict.envelope.seq == 5


@pytest.mark.parametrize(("topic", "payload", "code", "field"), [
    ("twinline/v1/s/a/l/st/nope", b"{}", "bad_topic", "topic.channel"),
    (TOPIC, b"", "malformed", ""),
    (TOPIC, b"[1, 2", "malformed", ""),
    (TOPIC, encode(_env(NOW + timedelta(hours=1))), "future_timestamp", "samples[0].ts"),
    (TOPIC, encode(_env(datetime(2000, 1, 1, tzinfo=UTC))), "before_epoch", "samples[0].ts"),
    (TOPIC, encode(_env(NOW, float("nan")), binary=True), "not_finite", "samples[0].value"),
    ("twinline/v1/s/a/l/st/state", encode(_env(NOW)), "wrong_channel", "samples[0].kind"),
])
def test_refusals_become_dead_letters_with_code_and_field(topic: str, payload: bytes, code: str, field: str) -> None:
    verdict = Validator(not_before=datetime(2020, 1, 1, tzinfo=UTC)).check(topic, payload, NOW)
    assert isinstance(verdict, DeadLetter)
    assert (reason_code(verdict.reason), verdict.field, verdict.payload, verdict.topic) == (code, field, payload,
                                                                                            topic)


def test_dead_letter_names_the_source_of_a_refused_envelope() -> None:
    obj = msgspec.json.decode(encode(_env(NOW)))
    obj["v"] = 9
    verdict = Validator().check(TOPIC, msgspec.json.encode(obj), NOW)
    assert isinstance(verdict, DeadLetter)
    assert (verdict.source, verdict.seq, reason_code(verdict.reason)) == ("src", 5, "schema_version")


def test_edge_status_topics() -> None:
    topic = "twinline/v1/s/a/l/_edge/agent1"
    ok = Validator().check(topic, encode_status(EdgeStatus(1, "agent1", True)), NOW)
    assert isinstance(ok, StatusUpdate) and ok.line == "s/a/l" and ok.status.online
    assert Validator().check(topic, b"", NOW) is None  # a cleared retained birth
    other = Validator().check(topic, encode_status(EdgeStatus(1, "agent2", True)), NOW)
    assert isinstance(other, DeadLetter) and reason_code(other.reason) == "bad_status"


def test_rows_follow_the_table_columns() -> None:
    rows = rows_of(Channel.PROCESS, "s/a/l/st", _env(NOW, 2.5))
    spec = TABLES[Channel.PROCESS]
    assert dict(zip(spec.columns, rows[0], strict=True)) == {
        "ts": NOW, "asset": "s/a/l/st", "name": "temp", "value": 2.5, "unit": "degC", "quality": "good",
        "status_code": None, "source": "src", "seq": 5}
    assert all(len(s.columns) == len(s.types) for s in TABLES.values())


def test_prometheus_text() -> None:
    m = WorkerMetrics("w0")
    m.envelopes = 3
    m.dead_letters["malformed"] += 2
    m.batch_samples.observe(150)
    text = prometheus_text([m])
    assert 'twinline_ingest_envelopes_total{worker="w0"} 3' in text
    assert 'twinline_ingest_dead_letters_total{worker="w0",reason="malformed"} 2' in text
    assert 'twinline_ingest_batch_samples_bucket{worker="w0",le="100"} 0' in text
    assert 'twinline_ingest_batch_samples_bucket{worker="w0",le="1000"} 1' in text
