"""The twin's exception tree: every error says which input failed and why.

Pure KPI functions raise these for input that does not fit (a naive timestamp, overlapping state
intervals, a negative count, a non-positive ideal cycle time). Missing data is never an error: it is
reported as ``None`` or listed as unknown in the result. The read side (store, service, live) raises
StoreError / StoreUnavailable for the database (psycopg errors translated at the seam), UnknownAsset for
an asset path the plant model does not have and NoPlantModel when none is loaded.
"""

from __future__ import annotations


class TwinError(Exception):
    """Base of every error raised by twinline.twin."""


class InputError(TwinError, ValueError):
    """An input frame or parameter does not fit; ``field`` names it (``states.end``, ``ideal_cycle_s[A]``)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class StoreError(TwinError):
    """Reading the store failed: the schema is missing or a query failed (the message says which)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (connection refused, bad DSN, server gone)."""


class UnknownAsset(TwinError, LookupError):
    """An asset path is not a site, area, line or station of the plant model; ``asset`` names it."""

    def __init__(self, asset: str, reason: str) -> None:
        self.asset = asset
        super().__init__(f"{asset!r}: {reason}")


class NoPlantModel(StoreError):
    """The store holds no plant model yet (``twinline plant load FILE`` first)."""
