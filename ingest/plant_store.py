"""Writing the plant model into the store, and reading back what is loaded.

`load_plant_into` runs as one transaction: it upserts the asset hierarchy (site, area, line, station),
the products, the ideal cycle times and the routes, marks assets and products no longer in the file
inactive (never deleted: history references them) and keeps the YAML in `plant_model`. The same file
(same sha256) loaded again adds no version and changes no row. Loads are serialised by an advisory lock.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from twinline.ingest.db import connect
from twinline.ingest.errors import PlantLoadError
from twinline.uns.plant import Plant

log = logging.getLogger(__name__)

_LOCK_KEY = 0x7477_6C6E_706C_6E74  # "twlnplnt": serialises plant loads within one database
_ASSET_COLS = ("kind", "site", "area", "line", "station", "name", "line_type", "position", "key_process",
               "digital_control", "networked", "attrs")
_PRODUCT_COLS = ("name", "family", "attrs")


@dataclass(frozen=True, slots=True)
class PlantLoadResult:
    """What a load changed; `new_version` is False when the same file (sha256) was already the current one."""

    version: int
    new_version: bool
    sha256: str
    assets_added: int
    assets_updated: int
    assets_deactivated: int
    products_added: int
    products_updated: int
    products_deactivated: int

    @property
    def changed(self) -> bool:
        return self.new_version or any((self.assets_added, self.assets_updated, self.assets_deactivated,
                                        self.products_added, self.products_updated, self.products_deactivated))


@dataclass(frozen=True, slots=True)
class LineSummary:
    path: str
    name: str
    line_type: str | None
    stations: list[str]
    key_processes: list[str]


@dataclass(frozen=True, slots=True)
class PlantSummary:
    """The current plant model as stored: version, where it came from, active lines and products."""

    version: int
    loaded_at: datetime
    source: str
    sha256: str
    site: str
    lines: list[LineSummary]
    products: list[tuple[str, str, str | None]]
    inactive_assets: int


def load_plant_into(dsn: str, plant: Plant, body: str) -> PlantLoadResult:
    """Store a validated plant model (and its YAML `body`) in one transaction; see the module docstring."""
    sha = hashlib.sha256(body.encode("utf-8")).hexdigest()
    try:
        with connect(dsn) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            version, new_version = _store_body(conn, plant.source, sha, body)
            assets = _sync(conn, "asset", "path", _ASSET_COLS, dict(_asset_rows(plant)))
            products = _sync(conn, "product", "sku", _PRODUCT_COLS, {
                p.sku: (p.name, p.family or None, Jsonb(dict(p.attrs))) for p in plant.products.values()})
            _sync_cycles(conn, plant)
            _sync_routes(conn, plant)
    except psycopg.errors.UndefinedTable as exc:
        raise PlantLoadError("the store has no schema yet: run `twinline db migrate` first") from exc
    except psycopg.Error as exc:
        detail = exc.diag.message_primary if isinstance(exc, psycopg.DatabaseError) else None
        raise PlantLoadError(f"loading plant model {plant.source} failed: {detail or exc}") from exc
    result = PlantLoadResult(version, new_version, sha, *assets, *products)
    log.info("plant model %s loaded as version %d (%s)", plant.source, version, result)
    return result


def plant_summary(dsn: str) -> PlantSummary | None:
    """The current plant model as the database has it, or None when none was loaded."""
    with connect(dsn) as conn:
        head = conn.execute("SELECT version, loaded_at, source, sha256 FROM plant_model "
                            "ORDER BY version DESC LIMIT 1").fetchone()
        if head is None:
            return None
        assets = conn.execute("SELECT path, kind, name, line_type, line, key_process, active FROM asset "
                              "ORDER BY kind, path, position").fetchall()
        products = conn.execute("SELECT sku, name, family FROM product WHERE active ORDER BY sku").fetchall()
        stations = conn.execute("SELECT path, key_process FROM asset WHERE kind = 'station' AND active "
                                "ORDER BY position, path").fetchall()
    sites = [a[0] for a in assets if a[1] == "site" and a[6]]
    lines = []
    for path, kind, name, line_type, _, _, active in assets:
        if kind != "line" or not active:
            continue
        mine = [s for s in stations if s[0].rsplit("/", 1)[0] == path]
        lines.append(LineSummary(path, name, line_type, [s[0] for s in mine], [s[0] for s in mine if s[1]]))
    return PlantSummary(int(head[0]), head[1], str(head[2]), str(head[3]), ", ".join(sites), lines,
                        [(str(s), str(n), f) for s, n, f in products], sum(1 for a in assets if not a[6]))


# --------------------------------------------------------------------------- internals


def _store_body(conn: psycopg.Connection[Any], source: str, sha: str, body: str) -> tuple[int, bool]:
    head = conn.execute("SELECT version, sha256 FROM plant_model ORDER BY version DESC LIMIT 1").fetchone()
    if head is not None and head[1] == sha:
        return int(head[0]), False
    version = 1 if head is None else int(head[0]) + 1
    conn.execute("INSERT INTO plant_model (version, source, sha256, body) VALUES (%s, %s, %s, %s)",
                 (version, source, sha, body))
    return version, True


def _asset_rows(plant: Plant) -> Iterable[tuple[str, tuple[Any, ...]]]:
    site = plant.site_id
    yield site, ("site", site, None, None, None, plant.site_name, None, None, False, False, True,
                 Jsonb({"timezone": plant.timezone.key, "epoch": plant.epoch.isoformat()}))
    for area in plant.areas:
        yield f"{site}/{area.id}", ("area", site, area.id, None, None, area.name, None, None, False, False, True,
                                    Jsonb({}))
        for ln in area.lines:
            yield str(ln.path), ("line", site, area.id, ln.id, None, ln.name, ln.type.value, None, False, False,
                                 True, Jsonb({}))
            for st in ln.stations:
                attrs = {"protocol": st.protocol.value, "required_data": list(st.required_data)}
                yield str(st.path), ("station", site, area.id, ln.id, st.id, st.name, ln.type.value, st.position,
                                     st.key_process, st.digital_control, st.networked, Jsonb(attrs))


def _comparable(value: Any) -> Any:
    return value.obj if isinstance(value, Jsonb) else value


def _sync(conn: psycopg.Connection[Any], table: str, key: str, cols: tuple[str, ...],
          wanted: dict[str, tuple[Any, ...]]) -> tuple[int, int, int]:
    """Upsert `wanted` (key -> column values) into an asset-like table; others go inactive. (added, updated, gone)."""
    have = {row[0]: (row[1:-1], row[-1]) for row in conn.execute(
        f"SELECT {key}, {', '.join(cols)}, active FROM {table}").fetchall()}
    added = [k for k in wanted if k not in have]
    updated = [k for k in wanted if k in have and (not have[k][1] or tuple(map(_comparable, wanted[k])) !=
                                                   tuple(have[k][0]))]
    gone = [k for k, (_, active) in have.items() if active and k not in wanted]
    placeholders = ", ".join(["%s"] * (len(cols) + 1))
    set_cols = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols)
    stamp = ", updated_at = now()" if table == "asset" else ""
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} ({key}, {', '.join(cols)}) VALUES ({placeholders}) "
                        f"ON CONFLICT ({key}) DO UPDATE SET {set_cols}, active = true{stamp}",
                        [(k, *wanted[k]) for k in added + updated])
        if gone:
            cur.execute(f"UPDATE {table} SET active = false{stamp} WHERE {key} = ANY(%s)", (gone,))
    return len(added), len(updated), len(gone)


def _sync_pairs(conn: psycopg.Connection[Any], select: str, scope: list[str], wanted: dict[tuple[Any, ...], Any],
                delete: str, upsert: str, row: Callable[[Any, Any], tuple[Any, ...]]) -> None:
    have: dict[tuple[Any, ...], Any] = {tuple(r[:-1]): r[-1] for r in conn.execute(select, (scope,)).fetchall()}
    stale = [k for k in have if k not in wanted]
    changed = [row(k, v) for k, v in wanted.items() if have.get(k) != v]
    with conn.cursor() as cur:
        if stale:
            cur.executemany(delete, stale)
        cur.executemany(upsert, changed)


def _sync_cycles(conn: psycopg.Connection[Any], plant: Plant) -> None:
    """Ideal cycle times of the file's stations mirror the file; those of removed stations are kept."""
    wanted: dict[tuple[Any, ...], Any] = {(path, sku): float(s) for path, st in plant.stations.items()
                                   for sku, s in st.ideal_cycle_s.items()}
    _sync_pairs(conn, "SELECT asset, product, ideal_cycle_s FROM ideal_cycle WHERE asset = ANY(%s)",
                list(plant.stations), wanted,
                "DELETE FROM ideal_cycle WHERE asset = %s AND product = %s",
                "INSERT INTO ideal_cycle (asset, product, ideal_cycle_s) VALUES (%s, %s, %s) "
                "ON CONFLICT (asset, product) DO UPDATE SET ideal_cycle_s = EXCLUDED.ideal_cycle_s",
                lambda k, v: (*k, v))


def _sync_routes(conn: psycopg.Connection[Any], plant: Plant) -> None:
    """Routes of the file's lines mirror the file; steps are 1-based."""
    wanted: dict[tuple[Any, ...], Any] = {}
    for path, ln in plant.lines.items():
        for sku in ln.routes:
            for step, st in enumerate(ln.route(sku), start=1):
                wanted[(path, sku, step)] = str(st.path)
    _sync_pairs(conn, "SELECT line, product, step, station FROM route_step WHERE line = ANY(%s)",
                list(plant.lines), wanted,
                "DELETE FROM route_step WHERE line = %s AND product = %s AND step = %s",
                "INSERT INTO route_step (line, product, step, station) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (line, product, step) DO UPDATE SET station = EXCLUDED.station",
                lambda k, v: (*k, v))


__all__ = ["LineSummary", "PlantLoadResult", "PlantSummary", "load_plant_into", "plant_summary"]
