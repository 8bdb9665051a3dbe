"""The twin's exception tree: every error says which input failed and why.

Pure KPI functions raise these for input that does not fit (a naive timestamp, overlapping state
intervals, a negative count, a non-positive ideal cycle time). Missing data is never an error: it is
reported as ``None`` or listed as unknown in the result.
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
