"""Durable queue: commit, seal with persisted seq, ack, restart, overflow policies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from twinline.edge.errors import QueueFull
from twinline.edge.queue import DurableQueue
from twinline.uns.envelope import CountSample, StateSample, decode
from twinline.uns.topics import AssetPath, Channel

pytestmark = pytest.mark.unit
ST = AssetPath("s", "a", "l", "st1")
T = datetime(2025, 1, 1, tzinfo=UTC)


def counts(n: int) -> list[tuple[AssetPath, Channel, CountSample]]:
    return [(ST, Channel.COUNT, CountSample(ts=T, good=i + 1)) for i in range(n)]


def test_seal_ack_restart_keeps_original_seq(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with DurableQueue(path, max_samples=1000, overflow="drop_oldest") as q:
        q.append("a/src", [*counts(5), (ST, Channel.STATE, StateSample(ts=T, state="PRD", reason="run"))],  # type: ignore[arg-type]
                 {"ctr|x": "5"}, T)
        assert q.seal(3) == 3  # 5 counts -> 3 + 2, 1 state
        out = q.outgoing(0, 10)
        assert [o.seq for o in out] == [1, 2, 3] and q.depth == 6
        env = decode(out[0].payload, Channel.COUNT)
        assert env.source == "a/src" and env.seq == 1 and len(env.samples) == 3 and env.edge_ts == T
        assert q.ack([out[0].id]) == 3
    with DurableQueue(path, max_samples=1000, overflow="drop_oldest") as q:  # after a crash / restart
        again = q.outgoing(0, 10)
        assert [o.payload for o in again] == [o.payload for o in out[1:]]
        assert q.load_kv() == {"ctr|x": "5"} and q.depth == 3
        q.ack(o.id for o in again)
        q.append("a/src", counts(1), {}, T)
        q.seal(10)
        assert [o.seq for o in q.outgoing(0, 10)] == [4]  # seq persisted, ids never reused


def test_overflow_policies(tmp_path: Path) -> None:
    with DurableQueue(tmp_path / "d.db", max_samples=100, overflow="drop_oldest") as q:
        q.append("a/src", counts(80), {}, T)
        q.seal(50)
        q.append("a/src", counts(40), {}, T)
        assert q.depth <= 100 and q.dropped >= 20
    with DurableQueue(tmp_path / "r.db", max_samples=100, overflow="reject_new") as q:
        q.append("a/src", counts(90), {}, T)
        with pytest.raises(QueueFull):
            q.append("a/src", counts(20), {}, T)
        assert q.depth == 90 and q.rejected == 1
