"""The twin's SQL read model over ingest's tables (ingest/migrations/*.sql); twin never imports ingest.

Everything is aggregated where the data lies and only small results move into polars:

- ``state_intervals``: state entries of the window plus the entry in force at ``t0`` (the last one before
  it), sent as one CSV text and turned into intervals in polars (ordered by ts, seq, source; each ends
  where the station's next entry starts). The open last interval ends at ``min(t1, as_of)``; rows
  at or after ``as_of`` (the clock passed in) are ignored. Time before a station's first entry and time
  after ``as_of`` have no interval: the pure engine classifies "no interval" as nodata (twin.timemodel),
  so it is reported and never counted. Rows of quality bad or uncertain get quality ``nodata`` (their
  original quality stays in ``source_quality``). An interval keeps its true start (possibly before
  ``t0``) so failure episodes that began earlier are not counted again; the engine clips.
- ``stale_gaps``: where a station's telemetry went silent. Its telemetry instants are the ts of every row
  of that station in state_event, count_event, process_sample, energy_sample, product_event and
  alarm_event. Wherever two consecutive instants are more than ``stale_after_s`` (plant setting) apart,
  and after the last instant up to ``min(t1, as_of)``, the time from (previous instant + stale_after_s)
  to the next instant is STALE. Why: the edge agents publish energy and counts continuously while a
  station is scheduled, so a silence longer than the limit means the link (edge agent down, network cut,
  frozen device), not the machine, and the last state must not be carried on forever. The gaps are found
  in SQL in one query (per station the instants of the window from the (asset, ts) indexes, plus the last
  instant before ``t0`` so a silence spanning ``t0`` is seen, ``lag()`` over them, only gaps longer than
  the limit returned); twin.service overlays them on the state intervals (``_intervals.mark_stale``:
  quality ``stale``, excluded from every time element like nodata, reported apart).
- ``counts`` / ``energy``: ``GROUP BY`` sums per window (one window, or every shift of a period in one
  query). Whole UTC hours inside a window are read from the hourly rollups ``count_hourly`` /
  ``energy_hourly``; the partial hours at the edges from the raw ``count_event`` / ``energy_sample``.
  On TimescaleDB the rollups are real-time continuous aggregates: a row arriving late into an hour that
  was already materialised is not visible until that hour is refreshed, and the background refresh jobs
  cannot be relied on. So ``prepare_rollups`` refreshes the window's hours itself (autocommit, retried
  when busy) before they are read; when it cannot (the connection is inside a transaction) the whole
  window is read from the raw rows. Results are identical either way, on both flavors, late rows
  included (bench/kpi.py measures both paths).
- ``good_units`` (raw good-count rows for changeovers), ``product_changes``, ``process_by_product``,
  ``telemetry_items`` and ``plant_body``.

psycopg errors are translated here into twin.errors (StoreUnavailable, StoreError).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import polars as pl
import psycopg
from psycopg import errors as pg_errors

from .errors import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

Flavor = Literal["postgresql", "timescaledb"]
RollupMode = Literal["refresh", "raw"]
Window = tuple[datetime, datetime]
TS: pl.DataType = pl.Datetime("us", "UTC")
_S: pl.DataType = pl.String()
_I: pl.DataType = pl.Int64()
_F: pl.DataType = pl.Float64()
_ROLLUPS = ("count_hourly", "energy_hourly")
_BUSY = (pg_errors.LockNotAvailable, pg_errors.ObjectInUse, pg_errors.DeadlockDetected)
_HOUR = timedelta(hours=1)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn psycopg errors raised inside into twin.errors, saying what was being read."""
    try:
        yield
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"{what}: database unreachable: {_first_line(exc)}") from exc
    except pg_errors.UndefinedTable as exc:
        raise StoreError(f"{what}: the store has no schema (run `twinline db migrate`): {_first_line(exc)}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"{what}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _utc(ts: datetime, field: str) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise StoreError(f"{field}: {ts!r} is naive; twinline times are timezone-aware UTC")
    return ts.astimezone(UTC)


def _us(ts: datetime) -> int:
    return (_utc(ts, "ts") - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def floor_hour(ts: datetime) -> datetime:
    """Start of the UTC hour containing ``ts``."""
    return _utc(ts, "ts").replace(minute=0, second=0, microsecond=0)


def ceil_hour(ts: datetime) -> datetime:
    """Smallest whole UTC hour at or after ``ts``."""
    low = floor_hour(ts)
    return low if low == _utc(ts, "ts") else low + _HOUR


def effective_end(t0: datetime, t1: datetime, as_of: datetime) -> datetime:
    """``min(t1, as_of)`` but never before ``t0``: the end of the part of ``[t0, t1)`` that has happened."""
    return max(_utc(t0, "t0"), min(_utc(t1, "t1"), _utc(as_of, "as_of")))


# --------------------------------------------------------------------------- flavor and rollups


@dataclass(frozen=True)
class RollupPlan:
    """How counts and energy are read: flavor, and whether whole hours come from the hourly rollups."""

    flavor: Flavor
    use_hourly: bool


def store_flavor(conn: psycopg.Connection[Any]) -> Flavor:
    """The flavor recorded by ``twinline db migrate`` in store_info."""
    with translated("reading the store flavor"):
        row = conn.execute("SELECT flavor FROM store_info").fetchone()
    if row is None or row[0] not in ("postgresql", "timescaledb"):
        raise StoreError("the store is not migrated (store_info has no flavor): run `twinline db migrate`")
    return "timescaledb" if row[0] == "timescaledb" else "postgresql"


def prepare_rollups(conn: psycopg.Connection[Any], start: datetime | None, end: datetime, *,
                    mode: RollupMode = "refresh", attempts: int = 6) -> RollupPlan:
    """Decide how to read ``[start, end)`` and, on TimescaleDB, refresh its hours first (module docstring).

    ``start`` None means from the beginning of the data. ``mode="raw"`` never reads the rollups on
    TimescaleDB. Must run before other reads of a non-autocommit connection (refreshing needs autocommit
    outside a transaction); inside an open transaction the plan falls back to raw reads.
    """
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if not idle:
        flavor = store_flavor(conn)
        return RollupPlan(flavor, flavor == "postgresql")
    previous = conn.autocommit
    conn.autocommit = True
    try:
        flavor = store_flavor(conn)
        if flavor == "postgresql":
            return RollupPlan(flavor, True)
        if mode == "raw":
            return RollupPlan(flavor, False)
        lo = None if start is None else floor_hour(start)
        hi = ceil_hour(end)
        if lo is not None and hi <= lo:
            return RollupPlan(flavor, True)
        for view in _ROLLUPS:
            _refresh(conn, view, lo, hi, attempts)
        return RollupPlan(flavor, True)
    finally:
        conn.autocommit = previous


def _refresh(conn: psycopg.Connection[Any], view: str, lo: datetime | None, hi: datetime, attempts: int) -> None:
    """CALL refresh_continuous_aggregate, retried with backoff while a policy job or reader holds it."""
    for attempt in range(1, attempts + 1):
        with translated(f"refreshing {view}"):
            try:
                conn.execute("CALL refresh_continuous_aggregate(%s, %s::timestamptz, %s::timestamptz)",
                             (view, lo, hi))
                return
            except _BUSY as exc:
                if attempt == attempts:
                    raise
                log.info("refresh of %s [%s, %s) busy (%s), retry %d", view, lo, hi, type(exc).__name__, attempt)
        time.sleep(min(0.1 * 2 ** (attempt - 1), 2.0))


# --------------------------------------------------------------------------- states

def _csv_field(column: str) -> str:
    return f"""('"' || replace({column}, '"', '""') || '"')"""


_STATES_SQL = """
WITH a AS (SELECT unnest(%(assets)s::text[]) AS asset),
prior AS (
    SELECT a.asset, p.ts, p.state, p.reason, p.quality, p.seq, p.source
    FROM a CROSS JOIN LATERAL (
        SELECT e.ts, e.state, e.reason, e.quality, e.seq, e.source FROM state_event e
        WHERE e.asset = a.asset
          AND e.ts = (SELECT max(m.ts) FROM state_event m WHERE m.asset = a.asset AND m.ts < %(t0)s)
        ORDER BY e.seq DESC, e.source DESC LIMIT 1) p
),
inside AS (
    SELECT asset, ts, state, reason, quality, seq, source FROM state_event
    WHERE asset = ANY(%(assets)s) AND ts >= %(t0)s AND ts < %(te)s
)
SELECT string_agg(concat_ws(',', {asset}, (extract(epoch FROM ts) * 1000000)::bigint, seq, {source}, {state},
                            {reason}, {quality}), E'\\n')
FROM (SELECT * FROM prior UNION ALL SELECT * FROM inside) r
""".format(**{c: _csv_field(c) for c in ("asset", "source", "state", "reason", "quality")})
# The rows travel unordered as one CSV text (epoch microseconds: one value, not 260k row messages) and polars
# orders them and finds each interval's end: 3x faster than ORDER BY + lead() in SQL (a disk sort at 90 days)
# followed by row-by-row fetching.

_STATE_SCHEMA: dict[str, pl.DataType] = {"station": _S, "start": TS, "end": TS, "state": _S, "reason": _S,
                                         "quality": _S, "source_quality": _S}


def state_intervals(conn: psycopg.Connection[Any], stations: Sequence[str], t0: datetime, t1: datetime, *,
                    as_of: datetime) -> pl.DataFrame:
    """State intervals of ``stations`` over ``[t0, t1)`` (module docstring for the rules).

    Columns: station, start, end (UTC), state, reason, quality (good | nodata), source_quality (as
    stored). Zero-length intervals (two entries with the same timestamp) are dropped.
    """
    a, te = _utc(t0, "t0"), effective_end(t0, t1, as_of)
    if te <= a or not stations:
        return pl.DataFrame(schema=_STATE_SCHEMA)
    with translated("reading state intervals"):
        row = conn.execute(_STATES_SQL, {"assets": list(stations), "t0": a, "te": te}).fetchone()
    if row is None or not row[0]:
        return pl.DataFrame(schema=_STATE_SCHEMA)
    raw = pl.read_csv(str(row[0]).encode(), has_header=False,  # "" is an empty string, an unquoted empty a NULL
                      schema={"station": _S, "s": _I, "seq": _I, "source": _S, "state": _S, "reason": _S,
                              "source_quality": _S})
    # entries of one station at the same instant: the last by (seq, source) holds, the others last 0 s
    ordered = raw.sort("station", "s", "seq", "source").with_columns(
        pl.when(pl.col("station") == pl.col("station").shift(-1)).then(pl.col("s").shift(-1))
        .otherwise(pl.lit(_us(te))).alias("e"))
    return ordered.filter(pl.col("e") > pl.col("s")).select(
        "station", pl.col("s").cast(TS).alias("start"), pl.col("e").cast(TS).alias("end"), "state", "reason",
        pl.when(pl.col("source_quality") == "good").then(pl.lit("good")).otherwise(pl.lit("nodata")).alias("quality"),
        "source_quality")


# --------------------------------------------------------------------------- stale telemetry

_TELEMETRY = ("state_event", "count_event", "process_sample", "energy_sample", "product_event", "alarm_event")
_STALE_SQL = """
WITH a AS (SELECT unnest(%(assets)s::text[]) AS asset)
SELECT a.asset, (extract(epoch FROM g.prev) * 1000000)::bigint, (extract(epoch FROM g.next) * 1000000)::bigint
FROM a CROSS JOIN LATERAL (
    SELECT prev, ts AS next FROM (
        SELECT ts, lag(ts) OVER (ORDER BY ts) AS prev FROM (
            SELECT greatest({prior}) AS ts
            UNION ALL
            {inside}
            UNION ALL
            SELECT %(te)s::timestamptz
        ) u WHERE ts IS NOT NULL
    ) x
    WHERE ts - prev > %(limit)s::interval
) g
""".format(
    prior=", ".join(f"(SELECT t.ts FROM {t} t WHERE t.asset = a.asset AND t.ts < %(t0)s ORDER BY t.ts DESC LIMIT 1)"
                    for t in _TELEMETRY),
    inside="\n            UNION ALL\n            ".join(
        f"SELECT t.ts FROM {t} t WHERE t.asset = a.asset AND t.ts >= %(t0)s AND t.ts < %(te)s" for t in _TELEMETRY))
# Per station (LATERAL) the instants come from the (asset, ts) indexes; only gaps longer than the limit leave
# the database. The last instant before t0 (any table) is included so a silence spanning t0 is seen, and te
# closes the last silence. greatest() ignores NULLs (tables without a row before t0).
STALE_SCHEMA: dict[str, pl.DataType] = {"station": _S, "start": TS, "end": TS, "last_seen": TS}


def stale_gaps(conn: psycopg.Connection[Any], stations: Sequence[str], t0: datetime, t1: datetime, *,
               as_of: datetime, stale_after_s: float) -> pl.DataFrame:
    """Stale stretches of ``stations`` inside ``[t0, min(t1, as_of))`` (module docstring for the rule).

    Columns: station, start (last instant + ``stale_after_s``), end (next instant, or ``min(t1, as_of)``),
    last_seen (the last instant before the silence). ``start`` may lie before ``t0`` (a silence spanning
    ``t0``). One query for all stations; only gaps longer than the limit leave the database.
    """
    if not stale_after_s > 0:
        raise StoreError(f"stale_after_s must be positive, got {stale_after_s!r}")
    a, te = _utc(t0, "t0"), effective_end(t0, t1, as_of)
    if te <= a or not stations:
        return pl.DataFrame(schema=STALE_SCHEMA)
    limit = timedelta(seconds=stale_after_s)
    with translated("reading telemetry gaps"):
        rows = conn.execute(_STALE_SQL, {"assets": list(stations), "t0": a, "te": te, "limit": limit}).fetchall()
    step = limit // timedelta(microseconds=1)
    frame = pl.DataFrame(rows, schema={"station": _S, "prev": _I, "next": _I}, orient="row")
    return frame.select("station", (pl.col("prev") + step).cast(TS).alias("start"),
                        pl.col("next").cast(TS).alias("end"), pl.col("prev").cast(TS).alias("last_seen")
                        ).sort("station", "start")


# --------------------------------------------------------------------------- counts and energy


def _segments(windows: Sequence[Window], as_of: datetime, use_hourly: bool
              ) -> tuple[list[int], list[bool], list[datetime], list[datetime]]:
    """Per window k: whole-hour segment (hourly=True) and raw edge segments, cut at ``as_of``."""
    ks: list[int] = []
    hourly: list[bool] = []
    lo: list[datetime] = []
    hi: list[datetime] = []

    def add(k: int, h: bool, x: datetime, y: datetime) -> None:
        if y > x:
            ks.append(k)
            hourly.append(h)
            lo.append(x)
            hi.append(y)

    for k, (w0, w1) in enumerate(windows):
        a, b = _utc(w0, f"windows[{k}].start"), effective_end(w0, w1, as_of)
        hs, he = ceil_hour(a), floor_hour(b)
        if use_hourly and hs < he:
            add(k, False, a, hs)
            add(k, True, hs, he)
            add(k, False, he, b)
        else:
            add(k, False, a, b)
    return ks, hourly, lo, hi


# Each segment is its own index range scan (OFFSET 0 keeps the planner from flattening the LATERAL into one
# join that reads every row of the stations and filters afterwards: 2.1 s instead of 0.03 s for 14 shifts).
_COUNTS_SQL = """
WITH seg AS (SELECT * FROM unnest(%(k)s::int[], %(hourly)s::bool[], %(a)s::timestamptz[], %(b)s::timestamptz[])
             AS s(k, hourly, a, b))
SELECT k, asset, product, sum(good)::bigint, sum(scrap)::bigint, sum(rework)::bigint, sum(events)::bigint
FROM (
    SELECT s.k, x.asset, x.product, x.good, x.scrap, x.rework, x.events
    FROM (SELECT * FROM seg WHERE hourly) s CROSS JOIN LATERAL (
        SELECT c.asset, c.product, c.good, c.scrap, c.rework, c.events FROM count_hourly c
        WHERE c.asset = ANY(%(assets)s) AND c.bucket >= s.a AND c.bucket < s.b OFFSET 0) x
    UNION ALL
    SELECT s.k, x.asset, x.product, x.good, x.scrap, x.rework, 1
    FROM (SELECT * FROM seg WHERE NOT hourly) s CROSS JOIN LATERAL (
        SELECT c.asset, c.product, c.good, c.scrap, c.rework FROM count_event c
        WHERE c.asset = ANY(%(assets)s) AND c.ts >= s.a AND c.ts < s.b OFFSET 0) x
) u
GROUP BY k, asset, product
ORDER BY k, asset, product
"""

_ENERGY_SQL = """
WITH seg AS (SELECT * FROM unnest(%(k)s::int[], %(hourly)s::bool[], %(a)s::timestamptz[], %(b)s::timestamptz[])
             AS s(k, hourly, a, b))
SELECT k, asset, sum(energy_kwh), sum(samples)::bigint
FROM (
    SELECT s.k, x.asset, x.energy_kwh, x.samples
    FROM (SELECT * FROM seg WHERE hourly) s CROSS JOIN LATERAL (
        SELECT c.asset, c.energy_kwh, c.samples FROM energy_hourly c
        WHERE c.asset = ANY(%(assets)s) AND c.bucket >= s.a AND c.bucket < s.b OFFSET 0) x
    UNION ALL
    SELECT s.k, x.asset, x.energy_kwh, 1
    FROM (SELECT * FROM seg WHERE NOT hourly) s CROSS JOIN LATERAL (
        SELECT c.asset, c.energy_kwh FROM energy_sample c
        WHERE c.asset = ANY(%(assets)s) AND c.ts >= s.a AND c.ts < s.b OFFSET 0) x
) u
GROUP BY k, asset
ORDER BY k, asset
"""

COUNT_SCHEMA: dict[str, pl.DataType] = {"window": _I, "station": _S, "product": _S, "good": _I,
                "scrap": _I, "rework": _I, "events": _I}
ENERGY_SCHEMA: dict[str, pl.DataType] = {"window": _I, "station": _S, "energy_kwh": _F, "samples": _I}


def counts(conn: psycopg.Connection[Any], stations: Sequence[str], windows: Sequence[Window], *,
           as_of: datetime, plan: RollupPlan) -> pl.DataFrame:
    """Count sums per (window index, station, product) in one query; windows cut at ``as_of``.

    Columns: window, station, product (null when the source did not say), good, scrap, rework, events.
    Floating point never enters: sums are exact integers.
    """
    ks, hourly, lo, hi = _segments(windows, as_of, plan.use_hourly)
    if not ks or not stations:
        return pl.DataFrame(schema=COUNT_SCHEMA)
    with translated("reading counts"):
        rows = conn.execute(_COUNTS_SQL, {"k": ks, "hourly": hourly, "a": lo, "b": hi,
                                          "assets": list(stations)}).fetchall()
    return pl.DataFrame(rows, schema=COUNT_SCHEMA, orient="row")


def energy(conn: psycopg.Connection[Any], stations: Sequence[str], windows: Sequence[Window], *,
           as_of: datetime, plan: RollupPlan) -> pl.DataFrame:
    """Energy sums (kWh) per (window index, station) in one query, the same way as ``counts``."""
    ks, hourly, lo, hi = _segments(windows, as_of, plan.use_hourly)
    if not ks or not stations:
        return pl.DataFrame(schema=ENERGY_SCHEMA)
    with translated("reading energy"):
        rows = conn.execute(_ENERGY_SQL, {"k": ks, "hourly": hourly, "a": lo, "b": hi,
                                          "assets": list(stations)}).fetchall()
    return pl.DataFrame(rows, schema=ENERGY_SCHEMA, orient="row")


# --------------------------------------------------------------------------- raw reads for changeovers


_GOOD_SQL = """
WITH a AS (SELECT unnest(%(assets)s::text[]) AS asset)
SELECT a.asset, p.ts, p.product, p.good FROM a CROSS JOIN LATERAL (
    SELECT c.ts, c.product, c.good FROM count_event c
    WHERE c.asset = a.asset AND c.good > 0 AND c.ts < %(t0)s ORDER BY c.ts DESC LIMIT 1) p
UNION ALL
SELECT asset, ts, product, good FROM count_event
WHERE asset = ANY(%(assets)s) AND good > 0 AND ts >= %(t0)s AND ts < %(te)s
ORDER BY 1, 2
"""
GOOD_SCHEMA: dict[str, pl.DataType] = {"station": _S, "ts": TS, "product": _S, "good": _I}


def good_units(conn: psycopg.Connection[Any], stations: Sequence[str], t0: datetime, t1: datetime, *,
               as_of: datetime) -> pl.DataFrame:
    """Raw good-count rows of the window plus each station's last good row before ``t0`` (changeovers).

    Columns: station, ts, product, good. Only rows with good > 0 matter to the changeover definition
    (KPI.md 5: last good unit of A to first good unit of B), so only those leave the database.
    """
    a, te = _utc(t0, "t0"), effective_end(t0, t1, as_of)
    if te <= a or not stations:
        return pl.DataFrame(schema=GOOD_SCHEMA)
    with translated("reading good units"):
        rows = conn.execute(_GOOD_SQL, {"assets": list(stations), "t0": a, "te": te}).fetchall()
    return pl.DataFrame(rows, schema=GOOD_SCHEMA, orient="row")


_PRODUCTS_SQL = """
WITH a AS (SELECT unnest(%(assets)s::text[]) AS asset)
SELECT a.asset, p.ts, p.product, p.recipe FROM a CROSS JOIN LATERAL (
    SELECT e.ts, e.product, e.recipe FROM product_event e
    WHERE e.asset = a.asset AND e.ts < %(t0)s ORDER BY e.ts DESC LIMIT 1) p
UNION ALL
SELECT asset, ts, product, recipe FROM product_event
WHERE asset = ANY(%(assets)s) AND ts >= %(t0)s AND ts < %(te)s
ORDER BY 1, 2
"""
PRODUCT_SCHEMA: dict[str, pl.DataType] = {"station": _S, "ts": TS, "product": _S, "recipe": _S}


def product_changes(conn: psycopg.Connection[Any], stations: Sequence[str], t0: datetime, t1: datetime, *,
                    as_of: datetime) -> pl.DataFrame:
    """Product switches in the window plus the product in force at ``t0``: station, ts, product, recipe."""
    a, te = _utc(t0, "t0"), effective_end(t0, t1, as_of)
    if not stations:
        return pl.DataFrame(schema=PRODUCT_SCHEMA)
    with translated("reading product changes"):
        rows = conn.execute(_PRODUCTS_SQL, {"assets": list(stations), "t0": a, "te": te}).fetchall()
    return pl.DataFrame(rows, schema=PRODUCT_SCHEMA, orient="row")


_PROCESS_SQL = """
SELECT s.asset, coalesce(p.product, ''), count(*), sum(s.value)
FROM process_sample s LEFT JOIN LATERAL (
    SELECT e.product FROM product_event e WHERE e.asset = s.asset AND e.ts <= s.ts ORDER BY e.ts DESC LIMIT 1) p
    ON true
WHERE s.asset = ANY(%(assets)s) AND s.name = %(name)s AND s.quality = 'good' AND s.ts >= %(t0)s AND s.ts < %(te)s
GROUP BY 1, 2 ORDER BY 1, 2
"""
PROCESS_SCHEMA: dict[str, pl.DataType] = {"station": _S, "product": _S, "samples": _I, "total": _F}


def process_by_product(conn: psycopg.Connection[Any], stations: Sequence[str], name: str, t0: datetime,
                       t1: datetime, *, as_of: datetime) -> pl.DataFrame:
    """Good-quality samples of process value ``name`` per station and product in force: samples, total.

    The product of a sample is the station's product_event in force at its timestamp ('' when none).
    """
    a, te = _utc(t0, "t0"), effective_end(t0, t1, as_of)
    if te <= a or not stations:
        return pl.DataFrame(schema=PROCESS_SCHEMA)
    with translated(f"reading process value {name}"):
        rows = conn.execute(_PROCESS_SQL, {"assets": list(stations), "name": name, "t0": a, "te": te}).fetchall()
    return pl.DataFrame(rows, schema=PROCESS_SCHEMA, orient="row")


_PRESENCE_SQL = """
SELECT asset, 'state' FROM state_event WHERE asset = ANY(%(assets)s) AND ts >= %(t0)s AND ts < %(te)s GROUP BY asset
UNION ALL
SELECT asset, 'count' FROM count_event WHERE asset = ANY(%(assets)s) AND ts >= %(t0)s AND ts < %(te)s GROUP BY asset
UNION ALL
SELECT asset, 'energy' FROM energy_sample WHERE asset = ANY(%(assets)s) AND ts >= %(t0)s AND ts < %(te)s
GROUP BY asset
UNION ALL
SELECT asset, 'product' FROM product_event WHERE asset = ANY(%(assets)s) AND ts >= %(t0)s AND ts < %(te)s
GROUP BY asset
UNION ALL
SELECT asset, 'process:' || name FROM process_sample
WHERE asset = ANY(%(assets)s) AND ts >= %(t0)s AND ts < %(te)s GROUP BY asset, name
"""


def telemetry_items(conn: psycopg.Connection[Any], stations: Sequence[str], t0: datetime, t1: datetime, *,
                    as_of: datetime) -> frozenset[tuple[str, str]]:
    """(station, item) pairs that delivered data in the window; items as in the plant's required_data.

    Items: state, count, energy, product, process:<name>.
    """
    a, te = _utc(t0, "t0"), effective_end(t0, t1, as_of)
    if te <= a or not stations:
        return frozenset()
    with translated("reading telemetry presence"):
        rows = conn.execute(_PRESENCE_SQL, {"assets": list(stations), "t0": a, "te": te}).fetchall()
    return frozenset((str(r[0]), str(r[1])) for r in rows)


def plant_body(conn: psycopg.Connection[Any]) -> tuple[int, str] | None:
    """(version, YAML text) of the newest plant model in the store, or None when none was loaded."""
    with translated("reading the plant model"):
        row = conn.execute("SELECT version, body FROM plant_model ORDER BY version DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def connect(dsn: str, *, autocommit: bool = True, connect_timeout_s: float = 10.0) -> psycopg.Connection[Any]:
    """Open a connection for the read side; failures become StoreUnavailable (no password in the message)."""
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=max(1, round(connect_timeout_s)))
    except psycopg.ProgrammingError as exc:
        raise StoreUnavailable("invalid database DSN") from exc
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL: {_scrub(_first_line(exc), dsn)}") from exc


def _scrub(text: str, dsn: str) -> str:
    try:
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        password = None
    return text.replace(str(password), "***") if password else text


__all__ = ["COUNT_SCHEMA", "ENERGY_SCHEMA", "GOOD_SCHEMA", "PROCESS_SCHEMA", "PRODUCT_SCHEMA", "STALE_SCHEMA",
           "Flavor", "RollupMode", "RollupPlan", "Window", "ceil_hour", "connect", "counts", "effective_end",
           "energy", "floor_hour", "good_units", "plant_body", "prepare_rollups", "process_by_product",
           "product_changes", "stale_gaps", "state_intervals", "store_flavor", "telemetry_items", "translated"]
