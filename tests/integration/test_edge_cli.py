"""`twinline edge browse | status | run` as a user runs them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.edge_support import ContractServer, contract_tags, opcua_source, write_config
from tests.helpers import async_wait_until
from twinline.cli.embedded import free_port
from twinline.edge.agent import run_agent
from twinline.edge.config import load_config

pytestmark = pytest.mark.integration
TWINLINE = str(Path(sys.executable).parent / "twinline")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TWINLINE, "edge", *args], capture_output=True, text=True, timeout=60)


async def test_browse_status_and_bad_config(tmp_path: Path, mqtt_url: str, uid: str) -> None:
    server = ContractServer(f"l{uid}", ["s1"], free_port())
    await server.start()
    try:
        out = await asyncio.to_thread(_cli, "browse", "--endpoint", server.endpoint, "--line", "ts/ta/l1",
                                      "--source", "opc")
        assert out.returncode == 0, out.stderr
        proposal = yaml.safe_load(out.stdout)["opcua"]["opc"]
        by_kind = {(e["kind"], e.get("field")) for e in proposal}
        assert {("state", "state"), ("state", "reason"), ("count", "good"), ("product", None),
                ("energy", "total_kwh"), ("process", None)} <= by_kind
        temp = next(e for e in proposal if e["kind"] == "process")
        assert temp["unit"] == "degF" and temp["station"] == "ts/ta/l1/s1"
        assert temp["node"].startswith(f"nsu={server.uri};")

        cfg_path = write_config(tmp_path, agent=f"a{uid}", line=f"tsite/tarea/l{uid}", broker_url=mqtt_url,
                                sources=[opcua_source("opc", server.endpoint)],
                                tags=contract_tags(server, "tsite/tarea", "opc"))
        cfg, tagmap = load_config(cfg_path)
        stop = asyncio.Event()
        task = asyncio.create_task(run_agent(cfg, tagmap, stop=stop))
        try:
            await server.unit("s1")

            async def shows_connected() -> bool:
                res = await asyncio.to_thread(_cli, "status", "--config", str(cfg_path))
                return res.returncode == 0 and "source opc" in res.stdout and ": connected;" in res.stdout
            await async_wait_until(shows_connected, 60, 0.3, "status shows a connected source")
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    finally:
        await server.stop()
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent: a1\nline: s/a/l\nsources: []\n")
    res = _cli("run", "--config", str(bad))
    assert res.returncode == 2 and res.stderr.startswith("twinline: invalid edge config:") and "sources" in res.stderr
    assert "Traceback" not in res.stderr
