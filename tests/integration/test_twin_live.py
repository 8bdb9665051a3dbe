"""LiveTwin on the shared broker: seeded from the database, then kept current by published envelopes."""

from __future__ import annotations

import threading
from datetime import datetime

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests import twin_fixture as tf
from tests.helpers import wait_until
from twinline.twin.live import LiveSnapshot, LiveTwin, StationLive, render
from twinline.uns.envelope import SCHEMA_VERSION, CountSample, Envelope, ProductSample, StateSample, encode
from twinline.uns.mqtturl import parse_mqtt_url
from twinline.uns.states import E10, Reason
from twinline.uns.topics import data_topic

pytestmark = pytest.mark.integration


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def set(self, now: datetime) -> None:
        with self._lock:
            self.now = now


def _station(snap: LiveSnapshot, path: str) -> StationLive:
    return next(s for ln in snap.lines for s in ln.stations if s.station == path)


@pytest.mark.smoke
def test_live_twin_seeds_and_follows_the_stream(plain_db_dsn: str, mqtt_url: str, uid: str) -> None:
    site = f"t{uid}"
    plant = tf.load(plain_db_dsn, site)
    s1, s2 = f"{site}/ar/l1/s1", f"{site}/ar/l1/s2"
    with tf.connect(plain_db_dsn) as conn:
        tf.classic_shift(conn, s1)
    clock = FakeClock(tf.at(120))
    seeded_good = sum(tf.spread(18_848, 2880)[:720])  # rows every 10 s: 720 before 02:00
    url = parse_mqtt_url(mqtt_url)
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"pub-{uid}")
    with LiveTwin(plain_db_dsn, mqtt_url, plant, clock=clock, client_id=f"twin-{uid}") as twin:
        first = twin.snapshot()
        st1 = _station(first, s1)
        assert (st1.state, st1.reason, st1.good) == ("PRD", "run", seeded_good)
        assert st1.availability == pytest.approx(1 - 47 / 120)
        assert _station(first, s2).state is None and _station(first, s2).oee is None
        try:
            pub.connect(url.host, url.port)
            pub.loop_start()
            envelopes = [
                (s1, "state", Envelope(SCHEMA_VERSION, f"src-{uid}", 1, tf.at(121), [
                    StateSample(tf.at(121), E10.UDT, Reason.FAILURE)])),
                (s2, "state", Envelope(SCHEMA_VERSION, f"src-{uid}", 2, tf.at(121), [
                    StateSample(tf.at(121), E10.PRD, Reason.RUN)])),
                (s2, "product", Envelope(SCHEMA_VERSION, f"src-{uid}", 3, tf.at(121), [
                    ProductSample(tf.at(121), "B")])),
                (s2, "count", Envelope(SCHEMA_VERSION, f"src-{uid}", 4, tf.at(122), [
                    CountSample(tf.at(122), good=5, scrap=1), CountSample(tf.at(123), good=2)])),
                (s2, "count", Envelope(SCHEMA_VERSION, f"src-{uid}", 4, tf.at(122), [  # redelivery: applied once
                    CountSample(tf.at(122), good=5, scrap=1), CountSample(tf.at(123), good=2)])),
            ]
            for station, channel, env in envelopes:
                pub.publish(data_topic(station, channel), encode(env), qos=1).wait_for_publish(30)
            clock.set(tf.at(124))
            wait_until(lambda: _station(twin.snapshot(), s2).good == 7 and twin.messages == 5, 60,
                       what="the live twin to apply the published envelopes")
        finally:
            pub.loop_stop()
            pub.disconnect()
        snap = twin.snapshot()
    a, b = _station(snap, s1), _station(snap, s2)
    assert (a.state, a.reason, a.good) == ("UDT", "failure", seeded_good)
    assert (b.state, b.product, b.good, b.scrap) == ("PRD", "B", 7, 1)
    # s2 known since 02:01 (the shift's 121st minute); its OEE so far: 3 min running, 7 B at 1.5 s, 7/8 good
    assert b.availability == 1.0  # the 121 min before its first state are nodata, excluded from PBT
    assert b.oee == pytest.approx((8 * 1.5 / 180) * (7 / 8))
    line = snap.lines[0] if snap.lines[0].line == f"{site}/ar/l1" else snap.lines[1]
    assert line.shift == "2026-03-02 D" and line.forecast_units is None  # the line end sent nothing: unknown
    table_en, table_zh = render(snap, "en"), render(snap, "zh-CN")
    assert "OEE so far" in table_en and "UDT" in table_en
    assert "工位" in table_zh and "当班OEE" in table_zh
    assert snap.dropped == 0
