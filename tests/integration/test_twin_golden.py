"""Golden test: a seeded simulator history written through ingest's backfill; the twin must reproduce the truth.

State seconds per station and E10 state, unit counts and changeovers (station, products, start, end, setup)
must match the simulator's ground truth exactly (the truth rounds times to microseconds as the samples do).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from twinline.twin import service

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # Monday 08:00 in Chongqing
END = START + timedelta(hours=6)


@pytest.mark.parametrize("line", ["cq/terminal/nb1", "cq/fab/fab12", "cq/display/amoled1"])
def test_twin_reproduces_simulator_truth(plain_db_dsn: str, line: str) -> None:
    history = pytest.importorskip("twinline.simulators.history")
    from twinline.ingest.backfill import backfill
    from twinline.ingest.db import connect
    from twinline.ingest.plant_store import load_plant_into
    from twinline.uns.plant import parse_plant, sample_plant_path

    body = Path(sample_plant_path()).read_text(encoding="utf-8")
    plant = parse_plant(body, "chongqing.yaml")
    load_plant_into(plain_db_dsn, plant, body)
    result = history.run_history(plant, line, START, END, seed=7)
    with connect(plain_db_dsn, autocommit=True) as conn:
        backfill(conn, result, clock=lambda: END)
        kpi = service.compute(conn, plant, line, START, END, as_of=END)
    truth = result.truth
    states = truth.states_frame().with_columns(
        ((pl.col("end").clip(START, END) - pl.col("start").clip(START, END)).dt.total_microseconds()).alias("us"))
    sums = states.group_by("station", "state").agg(pl.col("us").sum())
    seconds = {(r[0], r[1]): r[2] / 1e6 for r in sums.iter_rows()}
    totals = truth.totals()
    for path, st in kpi.whole.stations.items():
        t = st.e10.times
        for state, got in (("PRD", t.prd_s), ("SBY", t.sby_s), ("ENG", t.eng_s), ("SDT", t.sdt_s), ("UDT", t.udt_s),
                           ("NST", t.nst_s)):
            assert got == pytest.approx(seconds.get((path, state), 0.0), abs=1e-6), (path, state)
        assert t.nodata_s == pytest.approx(0.0, abs=1e-6), path
        counts = st.iso.counts
        assert (counts.gq, counts.sq, counts.rq) == (totals[path]["good"], totals[path]["scrap"],
                                                     totals[path]["rework"]), path
    want = sorted((c.station, c.from_product, c.to_product, c.start, c.end, c.setup_s)
                  for c in truth.changeovers() if START <= c.end < END)
    got = sorted((path, c.from_product, c.to_product, c.start, c.end, c.setup_s)
                 for path, st in kpi.whole.stations.items() for c in st.changeovers)
    assert [g[:5] for g in got] == [w[:5] for w in want]  # boundaries exact to the microsecond
    # setup: the twin sums microsecond-rounded state boundaries, the truth sums float sim seconds: <= 2 µs apart
    assert [g[5] for g in got] == pytest.approx([w[5] for w in want], abs=2e-6)
    assert want or line != "cq/terminal/nb1", "the laptop scenario must contain changeovers"  # others: long campaigns
