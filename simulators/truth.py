"""Ground truth of a simulation run: exactly what happened, for tests to compare the twin's KPIs with.

Recorded while the model runs (times are seconds after `t0`, converted to UTC on export with microsecond
rounding shared with the emitted samples, so frame sums are exact):

- state intervals per station (start, end, E10 state, reason), contiguous from the period start to its end;
- unit completions (ts, product, good, scrap, rework) per processing round (one unit, or one chamber round
  of wafers);
- product switches (the instant a station loaded product B's recipe, i.e. the start of its setup);
- energy per station (sum of the kWh increments emitted) and the number of alarms raised.

Changeovers are derived (KPI.md 5): on a station, start = last good unit of A, end = first good unit of B,
setup_s = SDT setup time inside [start, end], runup_end = completion of the first good unit k (counting B's
good units from its first, a round of n units counting n times at its timestamp) with k >= N for which the
last N units took at most N x ideal cycle / fraction (N = runup_window_units, fraction = runup_rate_fraction
of the plant settings), or None when the rate was not back before the next changeover / the period end.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from twinline.uns.states import E10, Reason

Interval = tuple[float, float, E10, Reason]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(t0_us: int, t: float) -> int:
    """Microseconds since the Unix epoch of sim time `t` (seconds after t0); the one rounding rule."""
    return t0_us + round(t * 1_000_000)


@dataclass(frozen=True, slots=True)
class Changeover:
    station: str
    from_product: str
    to_product: str
    start: datetime
    end: datetime
    setup_s: float
    runup_end: datetime | None

    @property
    def total_s(self) -> float:
        return (self.end - self.start).total_seconds()


class Truth:
    """What really happened on one line; filled by the engine, read by tests and exporters."""

    def __init__(self, line: str, stations: tuple[str, ...], t0: datetime, ideal_cycle_s: tuple[dict[str, float], ...],
                 runup_window_units: int, runup_rate_fraction: float) -> None:
        self.line = line
        self.stations = stations
        self.t0 = t0.astimezone(UTC)
        self.t0_us = (self.t0 - _EPOCH) // timedelta(microseconds=1)
        self.ideal_cycle_s = ideal_cycle_s
        self.runup_window_units = runup_window_units
        self.runup_rate_fraction = runup_rate_fraction
        self.intervals: list[list[Interval]] = [[] for _ in stations]
        self.units: list[tuple[int, float, str, int, int, int]] = []
        self.product_switches: list[tuple[int, float, str]] = []
        self.releases: list[tuple[float, str, int]] = []
        self.energy_kwh: list[float] = [0.0 for _ in stations]
        self.alarms: list[int] = [0 for _ in stations]
        self.end_s: float | None = None

    # ------------------------------------------------------------------ time helpers
    def ts(self, t: float) -> datetime:
        return _EPOCH + timedelta(microseconds=to_us(self.t0_us, t))

    @property
    def end(self) -> datetime | None:
        return None if self.end_s is None else self.ts(self.end_s)

    # ------------------------------------------------------------------ frames
    def states_frame(self) -> pl.DataFrame:
        rows = [(self.stations[i], to_us(self.t0_us, s), to_us(self.t0_us, e), st.value, r.value)
                for i, ivs in enumerate(self.intervals) for s, e, st, r in ivs]
        return _frame(rows, ["station", "start", "end", "state", "reason"], ("start", "end"))

    def units_frame(self) -> pl.DataFrame:
        rows = [(self.stations[i], to_us(self.t0_us, t), sku, g, s, r) for i, t, sku, g, s, r in self.units]
        return _frame(rows, ["station", "ts", "product", "good", "scrap", "rework"], ("ts",))

    def energy_frame(self) -> pl.DataFrame:
        return pl.DataFrame({"station": list(self.stations), "energy_kwh": self.energy_kwh,
                             "alarms": self.alarms})

    def changeovers_frame(self) -> pl.DataFrame:
        rows = [asdict(c) for c in self.changeovers()]
        schema: dict[str, Any] = {"station": pl.Utf8, "from_product": pl.Utf8, "to_product": pl.Utf8,
                  "start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"), "setup_s": pl.Float64,
                  "runup_end": pl.Datetime("us", "UTC")}
        return pl.DataFrame(rows, schema=schema)

    def totals(self) -> dict[str, dict[str, int]]:
        """Per station: good, scrap, rework unit counts."""
        out = {s: {"good": 0, "scrap": 0, "rework": 0} for s in self.stations}
        for i, _, _, g, s, r in self.units:
            row = out[self.stations[i]]
            row["good"] += g
            row["scrap"] += s
            row["rework"] += r
        return out

    def state_seconds(self) -> dict[str, dict[str, float]]:
        """Per station: seconds in each E10 state."""
        out: dict[str, dict[str, float]] = {s: {} for s in self.stations}
        for i, ivs in enumerate(self.intervals):
            row = out[self.stations[i]]
            for s, e, st, _ in ivs:
                row[st.value] = row.get(st.value, 0.0) + (e - s)
        return out

    # ------------------------------------------------------------------ changeovers
    def changeovers(self) -> list[Changeover]:
        out: list[Changeover] = []
        by_station: dict[int, list[tuple[float, str, int]]] = {}
        for i, t, sku, g, _, _ in self.units:
            if g:
                by_station.setdefault(i, []).append((t, sku, g))
        for i, goods in by_station.items():
            for k in range(1, len(goods)):
                prev, cur = goods[k - 1], goods[k]
                if prev[1] == cur[1]:
                    continue
                out.append(Changeover(
                    station=self.stations[i], from_product=prev[1], to_product=cur[1], start=self.ts(prev[0]),
                    end=self.ts(cur[0]), setup_s=self._setup_s(i, prev[0], cur[0]),
                    runup_end=self._runup_end(i, goods, k)))
        out.sort(key=lambda c: (c.start, c.station))
        return out

    def _setup_s(self, i: int, a: float, b: float) -> float:
        return sum(min(e, b) - max(s, a) for s, e, st, r in self.intervals[i]
                   if st is E10.SDT and r is Reason.SETUP and e > a and s < b)

    def _runup_end(self, i: int, goods: list[tuple[float, str, int]], k: int) -> datetime | None:
        sku = goods[k][1]
        n = self.runup_window_units
        limit = n * self.ideal_cycle_s[i][sku] / self.runup_rate_fraction
        times: list[float] = []
        for t, s, g in goods[k:]:
            if s != sku:
                return None
            times.extend([t] * g)
            if len(times) > n and times[-1] - times[-1 - n] <= limit:
                return self.ts(times[-1])
        return None

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        """Everything as plain JSON types (ISO 8601 UTC timestamps)."""
        def iso(t: float) -> str:
            return self.ts(t).isoformat()

        return {
            "line": self.line, "t0": self.t0.isoformat(), "end": iso(self.end_s) if self.end_s is not None else None,
            "states": [{"station": self.stations[i], "start": iso(s), "end": iso(e), "state": st.value,
                        "reason": r.value} for i, ivs in enumerate(self.intervals) for s, e, st, r in ivs],
            "units": [{"station": self.stations[i], "ts": iso(t), "product": sku, "good": g, "scrap": s, "rework": r}
                      for i, t, sku, g, s, r in self.units],
            "changeovers": [{**asdict(c), "start": c.start.isoformat(), "end": c.end.isoformat(),
                             "runup_end": c.runup_end.isoformat() if c.runup_end else None}
                            for c in self.changeovers()],
            "energy_kwh": dict(zip(self.stations, self.energy_kwh, strict=True)),
            "alarms": dict(zip(self.stations, self.alarms, strict=True)),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json())


def _frame(rows: list[tuple[Any, ...]], names: list[str], time_cols: tuple[str, ...]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=names, orient="row") if rows else pl.DataFrame({n: [] for n in names})
    return frame.with_columns([pl.col(c).cast(pl.Int64).cast(pl.Datetime("us", "UTC")) for c in time_cols])
