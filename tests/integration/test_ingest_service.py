"""The ingest service on the shared broker and a fresh database: shared subscription split, edge births,
metrics and heartbeat, graceful stop."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.helpers import wait_until
from tests.integration.ingest_helpers import Publisher, add_stations, counts, scalar, stream
from twinline.ingest.batch import BatchPolicy
from twinline.ingest.service import IngestConfig, IngestService
from twinline.uns.envelope import EdgeStatus, encode_status
from twinline.uns.mqtturl import parse_mqtt_url
from twinline.uns.topics import AssetPath, edge_topic

pytestmark = pytest.mark.integration


@contextmanager
def running(dsn: str, url: str, uid: str, **kw: object) -> Iterator[IngestService]:
    cfg = IngestConfig(dsn=dsn, mqtt=parse_mqtt_url(url), group=f"g{uid}", name=f"ingest-{uid}", site=f"site{uid}",
                       batch=BatchPolicy(2000, 0.05), session_expiry_s=60, heartbeat_s=0.5, **kw)
    service = IngestService(cfg)
    service.start()
    try:
        assert service.wait_subscribed(30), "ingest workers did not subscribe"
        yield service
    finally:
        service.stop()


@pytest.mark.smoke
def test_two_workers_split_a_stream_without_loss_or_duplicates(db_dsn: str, mqtt_shared_url: str, uid: str) -> None:
    stations = add_stations(db_dsn, f"site{uid}", 3)
    messages = stream(stations, 400, samples=5)
    pub = Publisher(mqtt_shared_url, f"pub-{uid}")
    try:
        with running(db_dsn, mqtt_shared_url, uid, workers=2) as service:
            pub.publish_all(messages)
            wait_until(lambda: counts(db_dsn)[0] == 400, 60, what="400 envelopes stored")
            pub.publish_all(messages[:50])  # a re-sent stretch is absorbed
            wait_until(lambda: sum(w.metrics.duplicates for w in service.workers) == 50, 60, what="50 duplicates")
            per_worker = [w.metrics.envelopes for w in service.workers]
        assert counts(db_dsn) == (400, 2000, 2000)
        assert all(n > 0 for n in per_worker) and sum(per_worker) == 400, per_worker
        assert scalar(db_dsn, "SELECT count(*) FROM dead_letter") == 0
    finally:
        pub.close()


@pytest.mark.smoke
def test_edge_birth_and_death_register_the_agent(db_dsn: str, mqtt_shared_url: str, uid: str) -> None:
    add_stations(db_dsn, f"site{uid}", 1)
    line = AssetPath(f"site{uid}", "fab", "L1")
    topic = edge_topic(line, f"agent{uid}")
    pub = Publisher(mqtt_shared_url, f"pub-{uid}")
    try:
        with running(db_dsn, mqtt_shared_url, uid):
            birth = EdgeStatus(1, f"agent{uid}", True, None, ["opcua-1"], [f"{line}/st0"])
            pub.publish_all([(topic, encode_status(birth))])
            wait_until(lambda: scalar(db_dsn, "SELECT online FROM edge_agent WHERE agent = %s", (f"agent{uid}",)),
                       30, what="agent online")
            pub.publish_all([(topic, encode_status(EdgeStatus(1, f"agent{uid}", False)))])
            wait_until(lambda: scalar(db_dsn, "SELECT NOT online FROM edge_agent WHERE agent = %s",
                                      (f"agent{uid}",)), 30, what="agent offline")
        assert scalar(db_dsn, "SELECT line FROM edge_agent") == str(line)
    finally:
        pub.close()


def test_birth_from_a_line_without_stations_is_a_dead_letter(db_dsn: str, mqtt_shared_url: str, uid: str) -> None:
    add_stations(db_dsn, f"site{uid}", 1)
    stranger = AssetPath(f"site{uid}", "fab", "L9")
    topic = edge_topic(stranger, f"agent{uid}")
    pub = Publisher(mqtt_shared_url, f"pub-{uid}")
    try:
        with running(db_dsn, mqtt_shared_url, uid):
            pub.publish_all([(topic, encode_status(EdgeStatus(1, f"agent{uid}", True)))])
            wait_until(lambda: scalar(db_dsn, "SELECT count(*) FROM dead_letter WHERE topic = %s", (topic,)),
                       30, what="dead letter of the stranger's birth")
        reason = scalar(db_dsn, "SELECT reason FROM dead_letter WHERE topic = %s", (topic,))
        assert str(reason).startswith("unknown_asset: line ") and str(stranger) in str(reason)
        assert scalar(db_dsn, "SELECT count(*) FROM edge_agent WHERE agent = %s", (f"agent{uid}",)) == 0
    finally:
        pub.close()


def test_metrics_endpoint_and_heartbeat(db_dsn: str, mqtt_shared_url: str, uid: str) -> None:
    stations = add_stations(db_dsn, f"site{uid}", 1)
    pub = Publisher(mqtt_shared_url, f"pub-{uid}")
    try:
        with running(db_dsn, mqtt_shared_url, uid, metrics_port=0) as service:
            pub.publish_all(stream(stations, 20, samples=3))
            wait_until(lambda: counts(db_dsn)[0] == 20, 30, what="20 envelopes")
            with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=10) as resp:
                text = resp.read().decode()
            assert f'twinline_ingest_envelopes_total{{worker="ingest-{uid}-0"}} 20' in text
            assert "twinline_ingest_db_commit_seconds_count" in text
            wait_until(lambda: scalar(db_dsn, "SELECT (metrics->>'envelopes')::int FROM ingest_worker "
                                              "WHERE worker = %s", (f"ingest-{uid}-0",)) == 20, 30,
                       what="heartbeat with 20 envelopes")
    finally:
        pub.close()
