"""Benchmark: end-to-end ingest (publisher -> broker -> two workers -> database) beside raw binary COPY.

Run: `python bench/ingest.py [--samples 1000000] [--per-envelope 200] [--workers 2]` against
TWINLINE_TEST_DSN (or TWINLINE_DSN; default the local server). The broker is a private mosquitto on a free
port (its queue limits raised so a burst is not dropped), or `--mqtt URL`. Two fresh migrated databases
(plain flavor, indexed event tables). Pass 1: `twinline ingest run` worker processes on one shared
subscription; the samples are published as batched envelopes (QoS 1) and timed from the first publish until
every row is committed. Pass 2, the limit: raw binary COPY of the same rows into the same indexed table.
`--profile FILE` instead runs the workers in this process with cProfile on every worker and network thread
and prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from writer import _fresh_db, raw_copy

from twinline.cli.embedded import LocalBroker
from twinline.ingest.rows import rows_of
from twinline.uns.envelope import Envelope, ProcessSample, encode
from twinline.uns.mqtturl import parse_mqtt_url
from twinline.uns.topics import AssetPath, Channel, data_topic

SITE = "bench"


def _envelopes(samples: int, per_env: int, stations: list[AssetPath]) -> list[tuple[AssetPath, Envelope]]:
    t0 = datetime.now(UTC) - timedelta(days=1)
    out = []
    for e in range(samples // per_env):
        base = t0 + timedelta(seconds=e)
        env = Envelope(1, f"edge-{e % 4}", e, base, [ProcessSample(base + timedelta(microseconds=i), "temp",
                                                                    20.0 + i, "degC") for i in range(per_env)])
        out.append((stations[e % len(stations)], env))
    return out


def _add_stations(dsn: str, n: int) -> list[AssetPath]:
    paths = [AssetPath(SITE, "fab", "L1", f"st{i:02d}") for i in range(n)]
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO asset (path, kind, site, name) VALUES (%s, 'site', %s, %s)", (SITE, SITE, SITE))
        cur.executemany("INSERT INTO asset (path, kind, site, area, line, station, name) "
                        "VALUES (%s, 'station', %s, 'fab', 'L1', %s, %s)",
                        [(str(p), SITE, p.station, p.station) for p in paths])
    return paths


def _ledger(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM envelope_ledger").fetchone()
        return int(row[0]) if row else 0


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval_s)


@contextmanager
def _workers(dsn: str, url: str, n: int, batch_rows: int) -> Iterator[None]:
    exe = Path(sys.executable).parent / "twinline"
    env = {**os.environ, "TWINLINE_DSN": dsn, "TWINLINE_MQTT_URL": url}
    procs = [subprocess.Popen([str(exe), "ingest", "run", "--group", "bench", "--name", f"bench-{i}", "--site", SITE,
                               "--batch-rows", str(batch_rows), "--flush-s", "0.2", "--receive-maximum", "2000",
                               "--session-expiry-s", "0", "--heartbeat-s", "0.5"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)


def _publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    u = parse_mqtt_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect(u.host, u.port)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(120)
    finally:
        client.disconnect()
        client.loop_stop()


def _profiled_run(dsn: str, url: str, n: int, batch_rows: int, messages: list[tuple[str, bytes]], out: str) -> None:
    from twinline.ingest.batch import BatchPolicy
    from twinline.ingest.service import IngestConfig, IngestService, IngestWorker

    profiles: list[cProfile.Profile] = []

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **kw: Any) -> Any:
            prof = cProfile.Profile()
            profiles.append(prof)
            return prof.runcall(fn, *a, **kw)
        return run

    IngestWorker._run = wrap(IngestWorker._run)  # type: ignore[method-assign,unused-ignore]
    mqtt.Client._thread_main = wrap(mqtt.Client._thread_main)  # type: ignore[method-assign,unused-ignore]
    cfg = IngestConfig(dsn=dsn, mqtt=parse_mqtt_url(url), group="benchp", workers=n, name="benchp", site=SITE,
                       batch=BatchPolicy(batch_rows, 0.2), receive_maximum=2000, session_expiry_s=0)
    with IngestService(cfg) as service:
        service.wait_subscribed()
        t = time.perf_counter()
        _publish(url, messages)
        _wait(lambda: _ledger(dsn) == len(messages), 600, "all envelopes (profiled)")
        print(f"profiled run: {time.perf_counter() - t:.2f} s")
    stats = pstats.Stats(profiles[0])
    for p in profiles[1:]:
        stats.add(p)
    stats.dump_stats(out)
    stats.sort_stats("tottime").print_stats(25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--per-envelope", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-rows", type=int, default=20_000)
    ap.add_argument("--mqtt", default=None, help="broker URL (default: a private mosquitto)")
    ap.add_argument("--msgpack", action="store_true", help="publish MessagePack envelopes instead of JSON")
    ap.add_argument("--profile", default=None, help="write a cProfile of the in-process workers here")
    args = ap.parse_args()
    server = os.environ.get("TWINLINE_TEST_DSN") or os.environ.get("TWINLINE_DSN") or \
        "postgresql://postgres@127.0.0.1:5432/postgres"
    broker = None if args.mqtt else LocalBroker(prefer="mosquitto")
    url = args.mqtt or broker.start()  # type: ignore[union-attr]
    try:
        with _fresh_db(server) as dsn, _fresh_db(server) as raw_dsn:
            stations = _add_stations(dsn, 20)
            envs = _envelopes(args.samples, args.per_envelope, stations)
            messages = [(data_topic(st, Channel.PROCESS), encode(env, binary=args.msgpack)) for st, env in envs]
            rows = [r for st, env in envs for r in rows_of(Channel.PROCESS, str(st), env)]
            n = len(rows)
            if args.profile:
                _profiled_run(dsn, url, args.workers, args.batch_rows, messages, args.profile)
                return
            with _workers(dsn, url, args.workers, args.batch_rows):
                _wait(lambda: _ledger(dsn) >= 0 and _heartbeats(dsn) == args.workers, 60, "workers up")
                t = time.perf_counter()
                threading.Thread(target=_publish, args=(url, messages), daemon=True).start()
                _wait(lambda: _ledger(dsn) == len(messages), 600, "all envelopes", 0.02)
                ingest_s = time.perf_counter() - t
            with psycopg.connect(raw_dsn) as raw_conn:
                raw_s = raw_copy(raw_conn, rows)
    finally:
        if broker is not None:
            broker.stop()
    rate, limit = n / ingest_s, n / raw_s
    print(f"{'pass':<36}{'samples':>10}{'seconds':>10}{'samples/s':>12}")
    print(f"{'raw binary COPY (limit)':<36}{n:>10}{raw_s:>10.2f}{limit:>12.0f}")
    print(f"{f'publish -> broker -> {args.workers} workers -> db':<36}{n:>10}{ingest_s:>10.2f}{rate:>12.0f}")
    print(f"{len(messages)} envelopes of {args.per_envelope} samples ({sum(len(p) for _, p in messages) / 1e6:.0f} MB "
          f"{'MessagePack' if args.msgpack else 'JSON'}), batches of up to {args.batch_rows} samples")
    print(f"ingest: {rate:.0f} samples/s; limit {limit:.0f} samples/s; ratio {rate / limit:.2f}")


def _heartbeats(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM ingest_worker").fetchone()
        return int(row[0]) if row else 0


if __name__ == "__main__":
    main()
