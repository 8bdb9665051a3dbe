"""A healthy simulated line is never stale: every station's meter reports well inside the plant's limit.

The counterpart of tests/integration/test_twin_stale.py (where silences are hand-built): two days of
every line of the sample plant through ingest's backfill, then the twin finds no stale second, while
the same data with one station's rows cut out for an hour shows that hour as stale.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from twinline.ingest.backfill import backfill
from twinline.ingest.plant_store import load_plant_into
from twinline.simulators.history import run_history
from twinline.twin.service import compute
from twinline.uns.plant import load_plant, sample_plant_path

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)  # a Monday, 08:00 in Chongqing
T1 = T0 + timedelta(days=2)


def test_healthy_simulated_lines_have_no_stale_time_and_a_cut_link_does(db_dsn: str) -> None:
    path = sample_plant_path()
    plant = load_plant(path)
    load_plant_into(db_dsn, plant, path.read_text())
    with psycopg.connect(db_dsn) as conn:
        for i, line in enumerate(plant.lines):
            backfill(conn, run_history(plant, line, T0, T1, seed=40 + i), clock=lambda: T1)
        for line in plant.lines:
            result = compute(conn, plant, line, T0, T1, as_of=T1, with_changeovers=False)
            stale = {p: st.quality.stale_s for p, st in result.whole.stations.items() if st.quality.stale_s}
            assert stale == {}, f"{line}: healthy stations marked stale: {stale}"
        victim = "cq/terminal/nb1/reflow"
        cut0, cut1 = T0 + timedelta(hours=5), T0 + timedelta(hours=6)
        for table in ("state_event", "count_event", "process_sample", "energy_sample", "product_event",
                      "alarm_event"):
            conn.execute(f"DELETE FROM {table} WHERE asset = %s AND ts >= %s AND ts < %s",
                         (victim, cut0, cut1))
        conn.commit()
        result = compute(conn, plant, "cq/terminal/nb1", T0, T1, as_of=T1, with_changeovers=False)
    quality = result.whole.stations[victim].quality
    limit = plant.settings.stale_after_s
    # the silence is at least the cut hour; it is stale from (last reading before it + limit) on
    assert 3600 - limit <= quality.stale_s <= 3600 + 2 * limit
    others = {p: st.quality.stale_s for p, st in result.whole.stations.items() if p != victim and st.quality.stale_s}
    assert others == {}
