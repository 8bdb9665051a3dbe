"""The real line simulator (OPC UA server + MQTT devices) -> edge agent -> broker: complete and in order.

The tag map of the OPC UA stations is the one `twinline edge browse` proposes for the simulator's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.edge_support import Collector, write_config
from tests.helpers import async_wait_until
from twinline.edge.agent import run_agent
from twinline.edge.browse import propose_tagmap
from twinline.edge.config import load_config
from twinline.simulators.live import LiveLine, serve_line
from twinline.uns.envelope import CountSample, ProcessSample, StateSample
from twinline.uns.plant import load_plant, sample_plant_path
from twinline.uns.topics import AssetPath

pytestmark = pytest.mark.integration
LINE = "cq/terminal/nb1"
STATUS_MAP = {"RUN": "PRD/run", "IDLE": "SBY/idle", "STARVED": "SBY/starved", "BLOCKED": "SBY/blocked",
              "FAIL": "UDT/failure", "SETUP": "SDT/setup", "PM": "SDT/preventive_maintenance",
              "OFF": "NST/non_scheduled"}


async def _pause(live: LiveLine) -> None:
    """Stop the simulation clock but keep the OPC UA server and MQTT client up (LiveLine has no public pause)."""
    task, live._task = live._task, None
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _mqtt_tags(prefix: str) -> dict[str, object]:
    return {"station_key": {"topic_level": 2}, "station_template": f"{LINE}/{{key}}",
            "timestamp": {"path": "t_ms", "unit": "ms"},
            "fields": [{"path": "status", "kind": "state", "field": "status", "map": STATUS_MAP},
                       {"path": "pass_total", "kind": "count", "field": "good"},
                       {"path": "fail_total", "kind": "count", "field": "scrap"},
                       {"path": "rework_total", "kind": "count", "field": "rework"},
                       {"path": "sku", "kind": "product"},
                       {"path": "kwh_total", "kind": "energy", "field": "total_kwh"},
                       {"path": "temp_c", "kind": "process", "name": "temp", "unit": "degC"}]}


async def test_simulated_line_arrives_complete_and_in_order(tmp_path: Path, mqtt_url: str, uid: str) -> None:
    plant = load_plant(sample_plant_path())
    line = plant.lines[LINE]
    prefix = f"f{uid}"
    start = datetime(2025, 1, 6, 8, 30, tzinfo=UTC)
    agent_id = f"a{uid}"
    col = Collector(mqtt_url, f"twinline/v1/{LINE}/#", f"col-{uid}", agent=agent_id)
    assert col.subscribed.wait(30)
    live = serve_line(plant, LINE, speed=120, seed=7, mqtt_url=mqtt_url, start=start, mqtt_prefix=prefix,
                      client_id=f"sim-{uid}")
    try:
        async with live:
            proposal = await propose_tagmap(live.endpoint, AssetPath.parse(LINE), "opc")
            entries = [e for e in proposal["opcua"]["opc"] if "_note" not in e]
            assert {e["kind"] for e in entries} == {"state", "product", "count", "energy", "process"}
            tags = {"opcua": {"opc": entries}, "mqtt": {"dev": _mqtt_tags(prefix)}}
            sources = [{"type": "opcua", "name": "opc", "endpoint": live.endpoint, "publishing_interval_ms": 50,
                        "first_counter": "count"},
                       {"type": "mqtt", "name": "dev", "broker": mqtt_url, "topic": f"{prefix}/nb1/+/telemetry",
                        "first_counter": "count", "client_id": f"edge-{uid}"}]
            cfg_path = write_config(tmp_path, agent=agent_id, line=LINE, broker_url=mqtt_url, sources=sources,
                                    tags=tags)
            cfg, tagmap = load_config(cfg_path)
            stop = asyncio.Event()
            task = asyncio.create_task(run_agent(cfg, tagmap, stop=stop))
            try:
                await async_wait_until(lambda: sum(col.counts(s.id)["good"] for s in line.stations) > 40, 60, 0.1,
                                       "units from the simulated line")
                await _pause(live)  # stop the line's clock, keep its server: what it wrote must all arrive
                truth = live.truth

                def totals_match() -> bool:
                    for i, st in enumerate(line.stations):
                        good = sum(u[3] for u in truth.units if u[0] == i)
                        if col.counts(st.id)["good"] != good:
                            return False
                    return True
                await async_wait_until(totals_match, 60, 0.1, "all units of every station")
                snap = json.loads((tmp_path / "state" / "status.json").read_text())
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
    finally:
        with contextlib.suppress(Exception):  # already closed above on the normal path
            await live.aclose()
        col.close()
    for i, st in enumerate(line.stations):
        samples = col.samples(st.id)
        counts = [s for s in samples if isinstance(s, CountSample)]
        assert [c.ts for c in counts] == sorted(c.ts for c in counts), st.id
        truth_units = {(round(truth.ts(u[1]).timestamp(), 3)): u[2] for u in truth.units if u[0] == i}
        for c in counts[1:]:  # the first may merge units counted before the agent subscribed
            product = truth_units.get(round(c.ts.timestamp(), 3))
            if product is not None:
                assert c.product == product, (st.id, c)
        states = [s for s in samples if isinstance(s, StateSample)]
        assert states, st.id
        assert all(a.ts <= b.ts for a, b in itertools.pairwise(states)), st.id
    assert snap["sources"]["opc"]["rejected_total"] == 0 and snap["sources"]["dev"]["rejected_total"] == 0
    assert any(isinstance(s, ProcessSample) for st in line.stations for s in col.samples(st.id))
    assert start - timedelta(days=1) < min(s.ts for st in line.stations for s in col.samples(st.id))
