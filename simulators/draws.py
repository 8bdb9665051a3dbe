"""Buffered random draws: one numpy Generator per station, drawn in blocks because scalar numpy calls are slow.

Determinism: the same seed gives the same block sequence, so a run is reproducible as long as the event
order is (SimPy's is, for a given model).
"""

from __future__ import annotations

import numpy as np

_BLOCK = 4096


class Draws:
    """Uniform and standard-normal numbers served from pre-drawn blocks of one Generator."""

    __slots__ = ("_n", "_ni", "_u", "_ui", "rng")

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._u: list[float] = []
        self._n: list[float] = []
        self._ui = self._ni = _BLOCK

    def uniform(self) -> float:
        if self._ui >= len(self._u):
            self._u = self.rng.random(_BLOCK).tolist()
            self._ui = 0
        self._ui += 1
        return self._u[self._ui - 1]

    def normal(self) -> float:
        if self._ni >= len(self._n):
            self._n = self.rng.standard_normal(_BLOCK).tolist()
            self._ni = 0
        self._ni += 1
        return self._n[self._ni - 1]

    def exponential(self, mean: float) -> float:
        return float(self.rng.exponential(mean))

    def lognormal(self, mean: float, cv: float) -> float:
        """A positive draw with the given mean and coefficient of variation (cv 0 -> exactly the mean)."""
        if cv <= 0:
            return mean
        sigma2 = float(np.log1p(cv * cv))
        return float(self.rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2)))
