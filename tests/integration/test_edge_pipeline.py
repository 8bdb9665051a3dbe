"""Edge agent on real services: a contract-conformant asyncua server -> agent -> real broker -> collector."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.edge_support import (
    Collector,
    ContractServer,
    GateProxy,
    actual_for,
    contract_tags,
    expected_from_writes,
    make_cert,
    opcua_source,
    write_config,
)
from tests.helpers import async_wait_until
from twinline.cli.embedded import LocalBroker, free_port
from twinline.edge.agent import run_agent
from twinline.edge.config import load_config
from twinline.uns.envelope import ProcessSample

pytestmark = pytest.mark.integration
SITE_AREA = "tsite/tarea"


@contextlib.asynccontextmanager
async def agent(config: Path) -> AsyncIterator[asyncio.Task[None]]:
    cfg, tagmap = load_config(config)
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent(cfg, tagmap, stop=stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def served(server: ContractServer) -> AsyncIterator[ContractServer]:
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _connected(tmp_path: Path) -> None:
    """Wait until the agent's status says uplink and every source are connected."""
    def ok() -> bool:
        path = tmp_path / "state" / "status.json"
        if not path.exists():
            return False
        snap = json.loads(path.read_text())
        return bool(snap["uplink"]["connected"] and all(s["connected"] for s in snap["sources"].values()))
    await async_wait_until(ok, 60, 0.05, "agent connected")


def _collector(url: str, line: str, uid: str) -> Collector:
    col = Collector(url, f"twinline/v1/{SITE_AREA}/{line}/#", f"col-{uid}")
    assert col.subscribed.wait(30), "collector did not subscribe"
    return col


async def _produce(server: ContractServer, units: int, station: str) -> None:
    """A little production story: state, product A, units (some scrap / rework), changeover to B, units."""
    await server.state(station, "PRD", "run")
    await server.product(station, "SKU-A")
    for i in range(units):
        await server.unit(station, "ScrapCount" if i % 7 == 3 else "ReworkCount" if i % 11 == 5 else "GoodCount")
    await server.state(station, "SDT", "setup")
    await server.product(station, "SKU-B")
    await server.state(station, "PRD", "run")
    for _ in range(units):
        await server.unit(station)
    await server.state(station, "SBY", "starved")


async def _complete(col: Collector, server: ContractServer) -> None:
    def done() -> bool:
        return all(len(actual_for(col, st)["counts"]) >= len(expected_from_writes(server, st)["counts"])
                   and len(actual_for(col, st)["states"]) >= len(expected_from_writes(server, st)["states"])
                   for st in server.stations)
    await async_wait_until(done, 60, 0.1, "all samples at the broker")


def _assert_exact(col: Collector, server: ContractServer) -> None:
    for st in server.stations:
        exp, act = expected_from_writes(server, st), actual_for(col, st)
        assert act["counts"] == exp["counts"], st
        assert act["products"] == exp["products"], st
        # the initial empty state ('' before the first write) is not a state; repeats are suppressed
        assert act["states"] == exp["states"], st


@pytest.mark.smoke
async def test_line_data_arrives_complete_and_in_order(tmp_path: Path, mqtt_url: str, uid: str) -> None:
    line = f"l{uid}"
    server = ContractServer(line, ["s1", "s2"], free_port())
    cfg = write_config(tmp_path, agent=f"a{uid}", line=f"{SITE_AREA}/{line}", broker_url=mqtt_url,
                       sources=[opcua_source("opc", server.endpoint)], tags=contract_tags(server, SITE_AREA, "opc"))
    col = _collector(mqtt_url, line, uid)
    try:
        async with served(server), agent(cfg):
            await _connected(tmp_path)
            await asyncio.gather(*(_produce(server, 60, st) for st in server.stations))
            await server.write("s1", "Process/temp", 212.0, server.next_ts())
            await _complete(col, server)
            await async_wait_until(lambda: any(isinstance(s, ProcessSample) and s.value > 99
                                               for s in col.samples("s1")), 30, 0.1, "process value")
        _assert_exact(col, server)
        temp = next(s for s in col.samples("s1") if isinstance(s, ProcessSample) and s.value > 99)
        assert temp.unit == "degC" and abs(temp.value - 100.0) < 1e-9
        envs, _dups = col.unique()
        seqs = [e.seq for _, e in envs]
        assert seqs == list(range(1, len(seqs) + 1))  # per-source seq, in order, no gaps
    finally:
        col.close()


async def test_opcua_server_restart_is_survived(tmp_path: Path, mqtt_url: str, uid: str) -> None:
    line = f"l{uid}"
    server = ContractServer(line, ["s1"], free_port())
    cfg = write_config(tmp_path, agent=f"a{uid}", line=f"{SITE_AREA}/{line}", broker_url=mqtt_url,
                       sources=[opcua_source("opc", server.endpoint)], tags=contract_tags(server, SITE_AREA, "opc"))
    col = _collector(mqtt_url, line, uid)
    try:
        await server.start()
        async with agent(cfg):
            await _connected(tmp_path)
            await _produce(server, 20, "s1")
            await _complete(col, server)
            await server.stop()
            # written while the server is down: the values a restarted device comes back with
            await server.unit("s1")
            await server.state("s1", "PRD", "run")
            await server.start()
            for _ in range(10):
                await server.unit("s1")
            await async_wait_until(lambda: col.counts("s1")["good"] == server.counts["s1.GoodCount"], 60, 0.1,
                                   "counts after the server restart")
            await server.state("s1", "UDT", "failure")
            await async_wait_until(lambda: actual_for(col, "s1")["states"][-1][1:] == ("UDT", "failure"), 60, 0.1,
                                   "state after the server restart")
        counts = col.counts("s1")
        assert counts["good"] == server.counts["s1.GoodCount"]
        assert counts["scrap"] == server.counts["s1.ScrapCount"]
    finally:
        await server.stop()
        col.close()


@pytest.mark.smoke
async def test_broker_stopped_mid_stream_loses_nothing(tmp_path: Path, broker_control: LocalBroker,
                                                       uid: str) -> None:
    """The broker is down for 10 s (not 30: the loss window is the same, the test time is not)."""
    line = f"l{uid}"
    server = ContractServer(line, ["s1"], free_port())
    proxy = GateProxy(broker_control.port, free_port())
    await proxy.start()
    cfg = write_config(tmp_path, agent=f"a{uid}", line=f"{SITE_AREA}/{line}",
                       broker_url=f"mqtt://127.0.0.1:{proxy.port}",
                       sources=[opcua_source("opc", server.endpoint)], tags=contract_tags(server, SITE_AREA, "opc"))
    col = _collector(broker_control.url, line, uid)
    try:
        async with served(server), agent(cfg):
            await _connected(tmp_path)
            writer = asyncio.create_task(_stream(server, "s1", 2000))
            await async_wait_until(lambda: col.counts("s1")["good"] > 50, 60, 0.05, "stream flowing")
            proxy.open = False
            broker_control.kill()
            stop_at = time.monotonic()
            await async_wait_until(lambda: time.monotonic() - stop_at >= 10.0, 20, 0.2, "10 s outage")
            await asyncio.to_thread(broker_control.restart_same_port)
            await async_wait_until(col.subscribed.is_set, 30, 0.05, "collector back")
            proxy.open = True
            await writer
            await _complete(col, server)
        _assert_exact(col, server)
        envs, _dups = col.unique()
        assert [e.seq for _, e in envs] == list(range(1, len(envs) + 1))
    finally:
        col.close()
        await proxy.stop()


async def _stream(server: ContractServer, station: str, units: int) -> None:
    await server.state(station, "PRD", "run")
    await server.product(station, "SKU-A")
    for i in range(units):
        await server.unit(station)
        if i % 500 == 250:
            await server.product(station, f"SKU-{i}")
        await asyncio.sleep(0.006)


async def test_secured_endpoint_sign_and_encrypt_with_user(tmp_path: Path, mqtt_url: str, uid: str) -> None:
    line = f"l{uid}"
    server_cert = make_cert(tmp_path, "server", "urn:twinline:test:server")
    client_cert = make_cert(tmp_path, "client", f"urn:twinline:edge:{uid}")
    (tmp_path / "opc.pass").write_text("s3cret\n")
    server = ContractServer(line, ["s1"], free_port(), cert=server_cert, users={"edge": "s3cret"})
    src = opcua_source("opc", server.endpoint, username="edge", password_file="opc.pass",
                       security={"policy": "Basic256Sha256", "mode": "SignAndEncrypt",
                                 "certificate": str(client_cert[0]), "private_key": str(client_cert[1])})
    cfg = write_config(tmp_path, agent=f"a{uid}", line=f"{SITE_AREA}/{line}", broker_url=mqtt_url, sources=[src],
                       tags=contract_tags(server, SITE_AREA, "opc"))
    col = _collector(mqtt_url, line, uid)
    try:
        async with served(server), agent(cfg):
            await _connected(tmp_path)
            await _produce(server, 10, "s1")
            await _complete(col, server)
        _assert_exact(col, server)
    finally:
        col.close()
