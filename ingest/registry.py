"""Which stations may send data: a cache of the active stations of the loaded plant model, and its epoch.

Assets come from the plant model (`twinline plant load` writes the `asset` table); ingest only reads them.
The cache is refreshed every `refresh_s`, and sooner when a batch names a station it does not know (at most
once per `recheck_s`, so a flood of messages for a wrong station costs one query per interval): a station
added to the plant a moment ago is found before its data is dead-lettered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import psycopg

_STATIONS = "SELECT path FROM asset WHERE kind = 'station' AND active"
_EPOCH = ("SELECT min((attrs->>'epoch')::timestamptz) FROM asset "
          "WHERE kind = 'site' AND active AND attrs ? 'epoch'")


class AssetRegistry:
    """Active station paths and the plant epoch, read from the store; not thread-safe (one per worker)."""

    def __init__(self, *, refresh_s: float = 30.0, recheck_s: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.refresh_s = refresh_s
        self.recheck_s = recheck_s
        self._monotonic = monotonic
        self.stations: frozenset[str] = frozenset()
        self.lines: frozenset[str] = frozenset()  # lines with at least one active station
        self.epoch: datetime | None = None
        self._loaded_at: float | None = None

    def refresh(self, conn: psycopg.Connection[Any]) -> None:
        """Reload the stations and the epoch (psycopg errors rise: the caller owns retrying)."""
        with conn.cursor() as cur:
            stations = frozenset(str(r[0]) for r in cur.execute(_STATIONS).fetchall())
            row = cur.execute(_EPOCH).fetchone()
        if not conn.autocommit:
            conn.commit()
        self.stations = stations
        self.lines = frozenset(p.rsplit("/", 1)[0] for p in stations)
        self.epoch = row[0] if row is not None else None
        self._loaded_at = self._monotonic()

    def ensure(self, conn: psycopg.Connection[Any], assets: Iterable[str], lines: Iterable[str] = ()) -> None:
        """Refresh when due, or when one of `assets` (stations) or `lines` is unknown and the last refresh is
        `recheck_s` old."""
        age = None if self._loaded_at is None else self._monotonic() - self._loaded_at
        stale = age is None or age >= self.refresh_s
        unknown = any(a not in self.stations for a in assets) or any(ln not in self.lines for ln in lines)
        if stale or (age is not None and age >= self.recheck_s and unknown):
            self.refresh(conn)

    def known(self, asset: str) -> bool:
        return asset in self.stations

    def known_line(self, line: str) -> bool:
        return line in self.lines


__all__ = ["AssetRegistry"]
