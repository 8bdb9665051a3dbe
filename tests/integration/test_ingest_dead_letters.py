"""Malformed input becomes a dead letter (raw bytes, field, reason) and the good messages around it are stored:
one test per reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import psycopg
import pytest

from tests.helpers import wait_until
from tests.integration.ingest_helpers import T0, Publisher, add_stations, process_envelope, scalar
from tests.integration.test_ingest_service import running
from twinline.uns.envelope import Envelope, StateSample, encode
from twinline.uns.states import E10, Reason
from twinline.uns.topics import AssetPath, Channel, data_topic, edge_topic

pytestmark = pytest.mark.integration


def _json(env: Envelope, **change: object) -> dict[str, object]:
    obj: dict[str, object] = msgspec.json.decode(encode(env))
    obj.update(change)
    return obj


def _bad(site: str, reason: str) -> tuple[str, bytes, str]:
    """(topic, payload, expected field) of one kind of bad message."""
    st = AssetPath(site, "fab", "L1", "st0")
    topic = data_topic(st, Channel.PROCESS)
    env = process_envelope("bad", 99, 2)
    sample = _json(env)["samples"][0]  # type: ignore[index]
    if reason == "bad_topic":
        return f"twinline/v1/{site}/fab/L1/st0/bogus", encode(env), "topic.channel"
    if reason == "malformed":
        return topic, b'{"v": 1, "source": "bad", "seq": 99, "edge_ts": ', ""
    if reason == "schema_version":
        return topic, msgspec.json.encode(_json(env, v=2)), "v"
    if reason == "wrong_channel":
        state = Envelope(1, "bad", 99, T0, [StateSample(T0, E10.PRD, Reason.RUN)])
        return topic, encode(state), "samples[0].kind"
    if reason == "out_of_range":
        count = {"type": "count", "ts": sample["ts"], "good": -1}
        return data_topic(st, Channel.COUNT), msgspec.json.encode(_json(env, samples=[count])), "samples[0].good"
    if reason == "not_finite":
        nan = {**sample, "value": float("nan")}
        return topic, msgspec.msgpack.encode(_json(env, samples=[nan])), "samples[0].value"
    if reason == "future_timestamp":
        future = {**sample, "ts": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
        return topic, msgspec.json.encode(_json(env, samples=[future])), "samples[0].ts"
    if reason == "before_epoch":
        old = {**sample, "ts": (T0 - timedelta(days=30)).isoformat()}
        return topic, msgspec.json.encode(_json(env, samples=[old])), "samples[0].ts"
    if reason == "unknown_asset":
        return data_topic(AssetPath(site, "fab", "L1", "st9"), Channel.PROCESS), encode(env), "topic"
    if reason == "bad_status":
        return edge_topic(st, "agent1"), b'{"v": 1, "agent": "agent1"}', "online"
    raise AssertionError(reason)


REASONS = ["bad_topic", "malformed", "schema_version", "wrong_channel", "out_of_range", "not_finite",
           "future_timestamp", "before_epoch", "unknown_asset", "bad_status"]


@pytest.mark.parametrize("reason", REASONS)
def test_bad_message_is_a_dead_letter_and_good_ones_around_it_are_stored(
        reason: str, db_dsn: str, mqtt_shared_url: str, uid: str) -> None:
    site = f"site{uid}"
    (st,) = add_stations(db_dsn, site, 1, epoch=T0 - timedelta(days=1))
    topic = data_topic(st, Channel.PROCESS)
    bad_topic, bad_payload, field = _bad(site, reason)
    pub = Publisher(mqtt_shared_url, f"pub-{uid}")
    try:
        with running(db_dsn, mqtt_shared_url, uid) as service:
            pub.publish_all([(topic, encode(process_envelope("good", 1, 3))), (bad_topic, bad_payload),
                             (topic, encode(process_envelope("good", 2, 3)))])
            wait_until(lambda: scalar(db_dsn, "SELECT count(*) FROM dead_letter") == 1, 30, what="the dead letter")
            wait_until(lambda: scalar(db_dsn, "SELECT count(*) FROM envelope_ledger") == 2, 30, what="2 good ones")
            wait_until(lambda: service.workers[0].metrics.dead_letters[reason] == 1, 30, what="dead letter counted")
        with psycopg.connect(db_dsn) as conn:
            rows = conn.execute("SELECT topic, payload, field, split_part(reason, ':', 1) FROM dead_letter").fetchall()
        assert rows == [(bad_topic, bad_payload, field, reason)]
        assert scalar(db_dsn, "SELECT count(*) FROM process_sample WHERE source = 'good'") == 6
        assert scalar(db_dsn, "SELECT count(*) FROM process_sample WHERE source <> 'good'") == 0
    finally:
        pub.close()
