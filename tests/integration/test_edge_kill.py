"""The agent process killed with SIGKILL mid-stream and restarted loses nothing its source delivered."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.edge_support import Collector, ContractServer, contract_tags, opcua_source, write_config
from tests.helpers import async_wait_until
from twinline.cli.embedded import free_port
from twinline.uns.envelope import CountSample

pytestmark = pytest.mark.integration
TWINLINE = str(Path(sys.executable).parent / "twinline")


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINLINE_")}
    with log.open("ab") as fh:
        return subprocess.Popen([TWINLINE, "edge", "run", "--config", str(config)], stdout=fh, stderr=fh, env=env)


async def _connected(state: Path, started: str | None = None) -> str:
    def ok() -> str | None:
        path = state / "status.json"
        if not path.exists():
            return None
        try:
            snap = json.loads(path.read_text())
        except ValueError:
            return None
        up = snap["uplink"]["connected"] and all(s["connected"] for s in snap["sources"].values())
        return str(snap["started"]) if up and snap["started"] != started else None
    return await async_wait_until(ok, 60, 0.05, "agent process connected")


async def test_sigkill_and_restart_loses_nothing(tmp_path: Path, mqtt_url: str, uid: str) -> None:
    line = f"l{uid}"
    server = ContractServer(line, ["s1", "s2"], free_port())
    cfg = write_config(tmp_path, agent=f"a{uid}", line=f"tsite/tarea/{line}", broker_url=mqtt_url,
                       sources=[opcua_source("opc", server.endpoint)], tags=contract_tags(server, "tsite/tarea", "opc"))
    col = Collector(mqtt_url, f"twinline/v1/tsite/tarea/{line}/#", f"col-{uid}")
    assert col.subscribed.wait(30)
    log = tmp_path / "agent.log"
    proc = _start(cfg, log)
    await server.start()
    try:
        started = await _connected(tmp_path / "state")
        for st in server.stations:
            await server.state(st, "PRD", "run")
            await server.product(st, "SKU-A")

        async def stream(n: int) -> None:
            for _ in range(n):
                for st in server.stations:
                    await server.unit(st)
                await asyncio.sleep(0.004)

        await stream(300)
        await async_wait_until(lambda: col.counts("s1")["good"] > 0, 60, 0.05, "first counts")
        proc.send_signal(signal.SIGKILL)  # mid-stream: samples are queued, in flight and un-sealed right now
        proc.wait(30)
        await stream(200)  # the source keeps producing while the agent is dead
        proc = _start(cfg, log)
        await _connected(tmp_path / "state", started)
        await stream(300)
        await server.state("s1", "SBY", "blocked")
        for st in server.stations:
            await async_wait_until(lambda st=st: col.counts(st)["good"] >= server.counts[f"{st}.GoodCount"], 60, 0.1,
                                   f"all counts of {st}")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        finally:
            await server.stop()
            col.close()
    # nothing lost, nothing double counted (increments persisted with the counter baselines)
    for st in server.stations:
        assert col.counts(st)["good"] == server.counts[f"{st}.GoodCount"], log.read_text()[-3000:]
        ts = [s.ts for s in col.samples(st) if isinstance(s, CountSample)]
        assert ts == sorted(ts)
    envs, _dups = col.unique()  # duplicates only with the same source + seq and identical content
    seqs = sorted(e.seq for _, e in envs)
    assert seqs == list(range(1, len(seqs) + 1)), "a sealed envelope was lost"
    assert any(e.samples for _, e in envs)
