"""Contract objects -> COPY rows: the ONE place that maps twinline.uns samples to store rows.

Each channel has one event table (ingest/migrations/0001_core.sql), its column list, the PostgreSQL type of
each column (for binary COPY with `set_types`) and a row builder. A builder turns one envelope's samples into
row tuples with a single list comprehension: the samples were already decoded by msgspec (in C), so this is
the only per-sample Python work on the hot path. Builders trust their input: the envelope was validated
(`twinline.uns.envelope.decode/validate` with the topic's channel), so every sample is of the channel's kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from twinline.uns.envelope import (
    AlarmSample,
    CountSample,
    EnergySample,
    Envelope,
    ProcessSample,
    ProductSample,
    StateSample,
)
from twinline.uns.topics import Channel

Row = tuple[Any, ...]
RowBuilder = Callable[[str, Envelope], list[Row]]


@dataclass(frozen=True, slots=True)
class TableSpec:
    """An event table: its name, columns and their PostgreSQL types (in COPY order)."""

    table: str
    columns: tuple[str, ...]
    types: tuple[str, ...]

    @property
    def copy_sql(self) -> str:
        return f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN (FORMAT BINARY)"


def _state_rows(asset: str, env: Envelope) -> list[Row]:
    src, seq = env.source, env.seq
    samples = cast(list[StateSample], env.samples)
    return [(s.ts, asset, s.state, s.reason, s.quality, src, seq) for s in samples]


def _count_rows(asset: str, env: Envelope) -> list[Row]:
    src, seq = env.source, env.seq
    samples = cast(list[CountSample], env.samples)
    return [(s.ts, asset, s.product, s.good, s.scrap, s.rework, s.quality, src, seq) for s in samples]


def _process_rows(asset: str, env: Envelope) -> list[Row]:
    src, seq = env.source, env.seq
    samples = cast(list[ProcessSample], env.samples)
    return [(s.ts, asset, s.name, s.value, s.unit, s.quality, s.status_code, src, seq) for s in samples]


def _product_rows(asset: str, env: Envelope) -> list[Row]:
    src, seq = env.source, env.seq
    samples = cast(list[ProductSample], env.samples)
    return [(s.ts, asset, s.product, s.recipe, src, seq) for s in samples]


def _alarm_rows(asset: str, env: Envelope) -> list[Row]:
    src, seq = env.source, env.seq
    samples = cast(list[AlarmSample], env.samples)
    return [(s.ts, asset, s.code, s.active, s.severity, s.text, src, seq) for s in samples]


def _energy_rows(asset: str, env: Envelope) -> list[Row]:
    src, seq = env.source, env.seq
    samples = cast(list[EnergySample], env.samples)
    return [(s.ts, asset, s.energy_kwh, s.power_kw, s.quality, src, seq) for s in samples]


_T, _TS, _I8, _I4, _F8, _B = "text", "timestamptz", "int8", "int4", "float8", "bool"

TABLES: Final[dict[Channel, TableSpec]] = {
    Channel.STATE: TableSpec("state_event", ("ts", "asset", "state", "reason", "quality", "source", "seq"),
                             (_TS, _T, _T, _T, _T, _T, _I8)),
    Channel.COUNT: TableSpec("count_event",
                             ("ts", "asset", "product", "good", "scrap", "rework", "quality", "source", "seq"),
                             (_TS, _T, _T, _I4, _I4, _I4, _T, _T, _I8)),
    Channel.PROCESS: TableSpec("process_sample",
                               ("ts", "asset", "name", "value", "unit", "quality", "status_code", "source", "seq"),
                               (_TS, _T, _T, _F8, _T, _T, _I8, _T, _I8)),
    Channel.PRODUCT: TableSpec("product_event", ("ts", "asset", "product", "recipe", "source", "seq"),
                               (_TS, _T, _T, _T, _T, _I8)),
    Channel.ALARM: TableSpec("alarm_event", ("ts", "asset", "code", "active", "severity", "text", "source", "seq"),
                             (_TS, _T, _T, _B, _I4, _T, _T, _I8)),
    Channel.ENERGY: TableSpec("energy_sample", ("ts", "asset", "energy_kwh", "power_kw", "quality", "source", "seq"),
                              (_TS, _T, _F8, _F8, _T, _T, _I8)),
}

BUILDERS: Final[dict[Channel, RowBuilder]] = {
    Channel.STATE: _state_rows,
    Channel.COUNT: _count_rows,
    Channel.PROCESS: _process_rows,
    Channel.PRODUCT: _product_rows,
    Channel.ALARM: _alarm_rows,
    Channel.ENERGY: _energy_rows,
}


def rows_of(channel: Channel, asset: str, env: Envelope) -> list[Row]:
    """The rows of one validated envelope for the table of `channel`."""
    return BUILDERS[channel](asset, env)


DEAD_LETTER_COLUMNS: Final = ("received_at", "topic", "payload", "field", "reason", "source", "seq")
DEAD_LETTER_TYPES: Final = ("timestamptz", "text", "bytea", "text", "text", "text", "int8")

__all__ = ["BUILDERS", "DEAD_LETTER_COLUMNS", "DEAD_LETTER_TYPES", "TABLES", "Row", "RowBuilder", "TableSpec",
           "rows_of"]
