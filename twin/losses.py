"""Loss tree, top loss reasons and bottleneck detection (KPI.md sections 1 and 2, used by the reports).

Loss tree (ISO 22400 time model, KPI.md 2) of one station over PBT, in minutes and in OEE points
(percentage points of PBT):

    PBT = availability loss + performance loss + quality loss + valuable time
    availability loss = PBT − APT = setup (AUST) + downtime (ADET) + idle (ADOT)
    performance loss  = APT − Σ_p PRI_p × PQ_p      (negative when E > 1)
    quality loss      = Σ_p PRI_p × (PQ_p − GQ_p)
    valuable time     = Σ_p PRI_p × GQ_p

For a single product valuable time / PBT is exactly A × E × QR; with several products it is the
product-exact value-adding share (A × E × QR weights quality by count, not by ideal time). Performance,
quality loss and valuable time are None when a produced product lacks an ideal cycle time.

Bottleneck (method): for each station of a line the waiting share = (SBY starved + SBY blocked) / PBT
and the utilization = APT / PBT are taken from the same time classification. The bottleneck is the
station with the least waiting share, ties broken by the highest utilization (the active-period idea
of Roser et al. 2001: the constraint is the station that waits least). Beside it, the arrow method of
Kuo, Lim and Meerkov (1996) is reported along the route: between neighbours i and i+1 the arrow points
downstream when blocked_i > starved_{i+1} (i is held back by i+1) and upstream otherwise; a station
that both neighbouring arrows point to is a bottleneck candidate. Stations with PBT = 0 are left out.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from .iso22400 import Counts, effective_time_s, ratio
from .timemodel import TimeElements


@dataclass(frozen=True)
class Loss:
    """One branch of the loss tree: minutes and OEE points (percent of PBT); None = unknown."""

    minutes: float | None
    oee_points: float | None


@dataclass(frozen=True)
class LossTree:
    """Loss tree of one station over PBT (module docstring)."""

    pbt_min: float
    availability: Loss
    setup: Loss
    downtime: Loss
    idle: Loss
    performance: Loss
    quality: Loss
    valuable: Loss
    missing_ideal_cycle: tuple[str, ...]


def _loss(seconds: float | None, pbt_s: float) -> Loss:
    if seconds is None:
        return Loss(None, None)
    points = ratio(seconds, pbt_s)
    return Loss(seconds / 60.0, None if points is None else points * 100.0)


def loss_tree(elements: TimeElements, counts: Counts, ideal_cycle_s: Mapping[str, float]) -> LossTree:
    """Loss tree in minutes and OEE points (KPI.md 2 time model; see module docstring)."""
    e = elements
    produced_s, missing = effective_time_s({s: c.pq for s, c in counts.by_sku.items()}, ideal_cycle_s)
    good_s, _ = effective_time_s({s: c.gq for s, c in counts.by_sku.items()}, ideal_cycle_s)
    known = not missing
    return LossTree(
        pbt_min=e.pbt_s / 60.0,
        availability=_loss(e.pbt_s - e.apt_s, e.pbt_s),
        setup=_loss(e.aust_s, e.pbt_s), downtime=_loss(e.adet_s, e.pbt_s), idle=_loss(e.adot_s, e.pbt_s),
        performance=_loss(e.apt_s - produced_s if known else None, e.pbt_s),
        quality=_loss(produced_s - good_s if known else None, e.pbt_s),
        valuable=_loss(good_s if known else None, e.pbt_s),
        missing_ideal_cycle=missing,
    )


def top_reasons(by_reason: pl.DataFrame, limit: int | None = None) -> pl.DataFrame:
    """Loss seconds per (state, reason) from ``timemodel.seconds_by_reason`` frames, largest first.

    Only loss elements count (aust, adet, adot); a ``station`` column, when present, groups per station
    and ``limit`` then applies per station.
    """
    keys = [c for c in ("station",) if c in by_reason.columns]
    out = (by_reason.filter(pl.col("element").is_in(["aust", "adet", "adot"]))
           .group_by(*keys, "element", "state", "reason").agg(pl.col("seconds").sum())
           .sort([*keys, "seconds", "state", "reason"], descending=[*([False] * len(keys)), True, False, False]))
    if limit is not None:
        out = out.group_by(*keys, maintain_order=True).head(limit) if keys else out.head(limit)
    return out


@dataclass(frozen=True)
class StationWaiting:
    """Inputs of the bottleneck method for one station: its elements and SBY starved / blocked seconds."""

    elements: TimeElements
    starved_s: float
    blocked_s: float


@dataclass(frozen=True)
class StationShare:
    """Per-station figures of the bottleneck method."""

    station: str
    utilization: float
    starved_share: float
    blocked_share: float
    waiting_share: float


@dataclass(frozen=True)
class Bottleneck:
    """Bottleneck by least waiting share (ties: highest utilization) and arrow-method candidates."""

    station: str | None
    shares: tuple[StationShare, ...]
    arrows: tuple[str, ...]
    arrow_candidates: tuple[str, ...]


def waiting_seconds(by_reason: pl.DataFrame) -> tuple[float, float]:
    """(starved_s, blocked_s) of one station from a ``seconds_by_reason`` frame (ADOT, SBY starved/blocked)."""
    sby = by_reason.filter((pl.col("element") == "adot") & (pl.col("state") == "SBY"))
    starved = sby.filter(pl.col("reason") == "starved")["seconds"].sum()
    blocked = sby.filter(pl.col("reason") == "blocked")["seconds"].sum()
    return float(starved or 0.0), float(blocked or 0.0)


def bottleneck(route: Sequence[str], stations: Mapping[str, StationWaiting]) -> Bottleneck:
    """Bottleneck of a line along ``route`` (method in the module docstring)."""
    shares = []
    for name in route:
        w = stations[name]
        pbt = w.elements.pbt_s
        if pbt <= 0:
            continue
        shares.append(StationShare(name, w.elements.apt_s / pbt, w.starved_s / pbt, w.blocked_s / pbt,
                                   (w.starved_s + w.blocked_s) / pbt))
    best = min(shares, key=lambda s: (s.waiting_share, -s.utilization), default=None)
    arrows = []
    for up, down in itertools.pairwise(route):
        arrows.append("down" if stations[up].blocked_s > stations[down].starved_s else "up")
    candidates = []
    for i, name in enumerate(route):
        from_left = i == 0 or arrows[i - 1] == "down"
        from_right = i == len(route) - 1 or arrows[i] == "up"
        if from_left and from_right:
            candidates.append(name)
    return Bottleneck(None if best is None else best.station, tuple(shares), tuple(arrows), tuple(candidates))


__all__ = ["Bottleneck", "Loss", "LossTree", "StationShare", "StationWaiting", "bottleneck", "loss_tree",
           "top_reasons", "waiting_seconds"]
