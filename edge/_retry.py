"""Exponential backoff with jitter, shared by the uplink and the sources."""

from __future__ import annotations

import random


def backoff_s(attempt: int, min_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Delay before retry number `attempt` (0-based): min_s * 2**attempt capped at max_s, times 0.5-1.0.

    The jitter keeps a line of agents that lost the broker at the same moment from coming back at once.
    """
    base = min(max_s, min_s * (2 ** min(attempt, 30)))
    return float(base * (0.5 + 0.5 * (rng or random).random()))
