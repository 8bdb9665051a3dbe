"""The batch writer on a real database: every channel's rows, idempotency by envelope, concurrent workers."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest

from tests.integration.ingest_helpers import T0, process_envelope
from twinline.ingest.writer import DeadLetter, write_batch, write_dead_letters
from twinline.uns.envelope import (
    AlarmSample,
    CountSample,
    EnergySample,
    Envelope,
    ProcessSample,
    ProductSample,
    Quality,
    StateSample,
)
from twinline.uns.states import E10, Reason
from twinline.uns.topics import AssetPath, Channel, parse_topic

pytestmark = pytest.mark.integration

ST = AssetPath("s1", "fab", "L1", "st1")


def _all_channels() -> list[tuple[tuple[AssetPath, Channel], Envelope]]:
    t = T0
    return [
        ((ST, Channel.STATE), Envelope(1, "e", 1, t, [StateSample(t, E10.PRD, Reason.RUN)])),
        ((ST, Channel.COUNT), Envelope(1, "e", 2, t, [CountSample(t, good=3, scrap=1, rework=2, product="P1")])),
        ((ST, Channel.PROCESS), Envelope(1, "e", 3, t, [ProcessSample(t, "temp", 21.5, "degC", Quality.BAD, 2**31)])),
        ((ST, Channel.PRODUCT), Envelope(1, "e", 4, t, [ProductSample(t, "P2", "R7")])),
        ((ST, Channel.ALARM), Envelope(1, "e", 5, t, [AlarmSample(t, "A1", True, 700, "door open")])),
        ((ST, Channel.ENERGY), Envelope(1, "e", 6, t, [EnergySample(t, 0.25, 12.0)])),
    ]


@pytest.mark.smoke
def test_every_channel_maps_to_its_table(any_db_dsn: str) -> None:
    with psycopg.connect(any_db_dsn) as conn:
        result = write_batch(conn, _all_channels())
        assert (result.envelopes, result.duplicates, result.rows) == (6, 0, 6)
        q = conn.execute
        assert q("SELECT ts, asset, state, reason, quality, source, seq FROM state_event").fetchall() == [
            (T0, "s1/fab/L1/st1", "PRD", "run", "good", "e", 1)]
        assert q("SELECT product, good, scrap, rework, quality FROM count_event").fetchall() == [
            ("P1", 3, 1, 2, "good")]
        assert q("SELECT name, value, unit, quality, status_code FROM process_sample").fetchall() == [
            ("temp", 21.5, "degC", "bad", 2**31)]
        assert q("SELECT product, recipe FROM product_event").fetchall() == [("P2", "R7")]
        assert q("SELECT code, active, severity, text FROM alarm_event").fetchall() == [("A1", True, 700, "door open")]
        assert q("SELECT energy_kwh, power_kw, quality FROM energy_sample").fetchall() == [(0.25, 12.0, "good")]
        assert q("SELECT source, seq, topic, samples FROM envelope_ledger ORDER BY seq LIMIT 1").fetchall() == [
            ("e", 1, "twinline/v1/s1/fab/L1/st1/state", 1)]


@pytest.mark.smoke
def test_resent_and_overlapping_batches_add_no_row(db_dsn: str) -> None:
    topic = parse_topic("twinline/v1/s1/fab/L1/st1/process")
    first = [(topic, process_envelope("a", i, 10)) for i in range(0, 20)]
    overlap = [(topic, process_envelope("a", i, 10)) for i in range(10, 30)]
    with psycopg.connect(db_dsn) as conn:
        assert write_batch(conn, first).rows == 200
        again = write_batch(conn, first)
        assert (again.envelopes, again.duplicates, again.rows) == (0, 20, 0)
        over = write_batch(conn, overlap + overlap[:3])  # repeats inside the batch count as duplicates too
        assert (over.envelopes, over.duplicates, over.rows_by_table) == (10, 13, {"process_sample": 100})
        row = conn.execute("SELECT count(*), count(DISTINCT (seq, ts)) FROM process_sample").fetchone()
        assert row == (300, 300)
        # the same seq from another source is another envelope
        assert write_batch(conn, [(topic, process_envelope("b", 0, 10))]).rows == 10


@pytest.mark.smoke
def test_concurrent_writers_of_the_same_envelopes_store_them_once(db_dsn: str) -> None:
    topic = parse_topic("twinline/v1/s1/fab/L1/st1/process")
    batch = [(topic, process_envelope("a", i, 50)) for i in range(40)]
    with psycopg.connect(db_dsn) as first, psycopg.connect(db_dsn) as second:
        first_pid = first.info.backend_pid
        tx = first.transaction()
        tx.__enter__()
        assert write_batch(first, batch).envelopes == 40  # claimed, not committed yet
        results = []
        worker = threading.Thread(target=lambda: results.append(write_batch(second, list(reversed(batch)))))
        worker.start()
        with psycopg.connect(db_dsn, autocommit=True) as watch:  # the second writer waits on the ledger key
            deadline_rows = None
            for _ in range(600):
                deadline_rows = watch.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "WHERE NOT l.granted AND a.datname = current_database() AND l.pid <> %s", (first_pid,)).fetchone()
                if deadline_rows and deadline_rows[0] > 0:
                    break
                worker.join(0.05)
            assert deadline_rows and deadline_rows[0] > 0, "the second writer never waited for the first"
        assert worker.is_alive()
        tx.__exit__(None, None, None)
        worker.join(30)
        assert not worker.is_alive()
        assert (results[0].envelopes, results[0].duplicates, results[0].rows) == (0, 40, 0)
        row = first.execute("SELECT count(*) FROM process_sample").fetchone()
        assert row == (2000,)


def test_a_rolled_back_claim_leaves_the_envelope_to_the_next_writer(db_dsn: str) -> None:
    topic = parse_topic("twinline/v1/s1/fab/L1/st1/process")
    batch = [(topic, process_envelope("a", i, 3)) for i in range(5)]
    with psycopg.connect(db_dsn) as conn:
        with pytest.raises(RuntimeError), conn.transaction():
            write_batch(conn, batch)
            raise RuntimeError("crash after the COPY, before the commit")
        assert conn.execute("SELECT count(*) FROM envelope_ledger").fetchone() == (0,)
        assert write_batch(conn, batch).rows == 15


def test_dead_letters_keep_raw_bytes_and_reason(db_dsn: str) -> None:
    letters = [DeadLetter(T0, "twinline/v1/x", b"\x00\xffraw", "malformed: bad", "samples[0]", "e", 7),
               DeadLetter(T0 + timedelta(seconds=1), "t", b"{}", "unknown_asset: no")]
    with psycopg.connect(db_dsn) as conn:
        assert write_dead_letters(conn, letters) == 2
        rows = conn.execute("SELECT received_at, topic, payload, field, reason, source, seq FROM dead_letter "
                            "ORDER BY id").fetchall()
    assert rows == [(T0, "twinline/v1/x", b"\x00\xffraw", "samples[0]", "malformed: bad", "e", 7),
                    (T0 + timedelta(seconds=1), "t", b"{}", "", "unknown_asset: no", None, None)]
