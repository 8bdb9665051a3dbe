"""`twinline kpi`: KPIs of an asset and period for engineers, before the API exists.

Times are ISO 8601 with an offset (`2026-03-02T08:00:00+08:00`) or a date (`2026-03-02`) meaning the
plant-local day. The plant model is the newest one stored in the database. Output: a text table by
default, or exact values as JSON (the whole result) or CSV (one row per period and station); unknown
values print as "unknown" (JSON null). `--baseline-from/--baseline-to` add the plan KPIs of the line
(KPI.md 6) with the `--from/--to` period as the current one.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from twinline.cli.errors import CliError

if TYPE_CHECKING:
    from twinline.twin.results import KpiResult
    from twinline.uns.plant import Plant

_COLUMNS = ("availability", "effectiveness", "quality_ratio", "oee", "nee", "setup_rate", "technical_efficiency",
            "throughput_rate_per_h", "scrap_ratio", "rework_ratio", "energy_per_good_unit_kwh", "mtbf_s", "mttr_s")
_LABELS = {
    "en": {"asset": "asset", "period": "period", "station": "station", "line": "line", "unknown": "unknown",
           "covered": "covered", "pq": "PQ", "gq": "GQ", "line_oee": "line OEE", "line_yield": "line yield",
           "A": "A", "E": "E", "QR": "QR", "OEE": "OEE", "changeovers": "changeovers", "plan": "plan KPIs",
           "dq": "data quality", "nodata": "nodata", "no_entry": "no entry", "bad": "bad quality",
           "stale": "stale", "intervals": "intervals", "after": "after as_of"},
    "zh-CN": {"asset": "资产", "period": "时段", "station": "工位", "line": "产线", "unknown": "未知",
              "covered": "数据覆盖", "pq": "产量", "gq": "良品", "line_oee": "产线OEE", "line_yield": "产线良率",
              "A": "可用率", "E": "性能", "QR": "质量率", "OEE": "OEE", "changeovers": "换型次数",
              "plan": "规划指标", "dq": "数据质量", "nodata": "无数据", "no_entry": "无记录", "bad": "质量不良",
              "stale": "数据中断", "intervals": "段", "after": "截止时间之后"},
}


def parse_time(text: str, plant: Plant, *, end: bool = False, option: str = "--from") -> datetime:
    """ISO 8601 with offset -> UTC; a bare date -> the plant-local midnight (of the next day when ``end``)."""
    value = text.strip()
    try:
        day = date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        day = None
    if day is not None:
        local = datetime.combine(day + timedelta(days=1 if end else 0), datetime.min.time(), tzinfo=plant.timezone)
        return local.astimezone(UTC)
    try:
        ts = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CliError(f"{option} {text!r} is not an ISO 8601 time with offset or a date (YYYY-MM-DD)", 2) from exc
    if ts.tzinfo is None:
        raise CliError(f"{option} {text!r} has no UTC offset (write e.g. 2026-03-02T08:00:00+08:00)", 2)
    return ts.astimezone(UTC)


def _fmt(value: Any, unknown: str) -> str:
    if value is None:
        return unknown
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _text(result: KpiResult, lang: str) -> str:
    t = _LABELS[lang]
    out = [f"{t['asset']}: {result.asset} ({result.kind}); {t['period']}: {result.t0.isoformat()} .. "
           f"{result.t1.isoformat()}; as of {result.as_of.isoformat()}",
           "settings: " + ", ".join(f"{k}={v}" for k, v in result.settings.items())]
    for period in (result.whole, *result.shifts):
        out.append(f"[{period.label}] {period.t0.isoformat()} .. {period.t1.isoformat()}")
        rows = [(t["station"], t["A"], t["E"], t["QR"], t["OEE"], t["pq"], t["gq"], t["covered"], t["changeovers"])]
        for path, st in period.stations.items():
            rows.append((path, _fmt(st.iso.availability, t["unknown"]), _fmt(st.iso.effectiveness, t["unknown"]),
                         _fmt(st.iso.quality_ratio, t["unknown"]), _fmt(st.iso.oee, t["unknown"]),
                         str(st.iso.counts.pq), str(st.iso.counts.gq),
                         _fmt(st.quality.covered_fraction, t["unknown"]), str(len(st.changeovers))))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        out += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        for path, st in period.stations.items():
            q = st.quality
            if q.nodata_s or q.no_entry_s or q.bad_quality_s or q.stale_s or q.after_as_of_s:
                out.append(f"  {t['dq']} {path}: {t['covered']} {_fmt(q.covered_fraction, t['unknown'])}, "
                           f"{t['nodata']} {q.nodata_s:.0f} s ({t['no_entry']} {q.no_entry_s:.0f} s, {t['bad']} "
                           f"{q.bad_quality_s:.0f} s, {t['stale']} {q.stale_s:.0f} s in {len(q.stale_intervals)} "
                           f"{t['intervals']}, {t['after']} {q.after_as_of_s:.0f} s)")
        for path, ln in period.lines.items():
            out.append(f"  {t['line']} {path}: {t['line_oee']} {_fmt(ln.oee.oee, t['unknown'])}, "
                       f"{t['line_yield']} {_fmt(ln.line_yield.line_yield, t['unknown'])}, "
                       f"bottleneck {ln.bottleneck.station or t['unknown']}")
    return "\n".join(out)


def _csv(result: KpiResult) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("period", "t0", "t1", "station", *_COLUMNS, "pq", "gq", "sq", "rq", "pbt_s", "apt_s",
                     "nodata_s", "covered_fraction", "stale_s"))
    for period in (result.whole, *result.shifts):
        for path, st in period.stations.items():
            values = [getattr(st.iso, c) for c in _COLUMNS]
            writer.writerow((period.label, period.t0.isoformat(), period.t1.isoformat(), path,
                             *("unknown" if v is None else repr(v) for v in values),
                             st.iso.counts.pq, st.iso.counts.gq, st.iso.counts.sq, st.iso.counts.rq,
                             repr(st.elements.pbt_s), repr(st.elements.apt_s), repr(st.elements.nodata_s),
                             "unknown" if st.quality.covered_fraction is None else repr(st.quality.covered_fraction),
                             repr(st.quality.stale_s)))
    return buf.getvalue()


def kpi(
    asset: Annotated[str, typer.Option("--asset", help="Asset path: site, site/area, site/area/line or a station.",
                                       show_default=False)],
    t_from: Annotated[str, typer.Option("--from", help="Start: ISO 8601 with offset, or a date (plant-local day).",
                                        show_default=False)],
    t_to: Annotated[str, typer.Option("--to", help="End (exclusive); a date means the end of that local day.",
                                      show_default=False)],
    shift: Annotated[bool, typer.Option("--shift", help="Also per shift instance.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Exact values as JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Exact values as CSV (one row per period and station).")]
    = False,
    lang: Annotated[str, typer.Option("--lang", help="Labels of the text table: en or zh-CN.")] = "en",
    baseline_from: Annotated[str | None, typer.Option("--baseline-from", help="Plan KPIs: baseline start.",
                                                      show_default=False)] = None,
    baseline_to: Annotated[str | None, typer.Option("--baseline-to", help="Plan KPIs: baseline end.",
                                                    show_default=False)] = None,
    dsn: Annotated[str | None, typer.Option("--dsn", help="PostgreSQL DSN (default: settings / TWINLINE_DSN).",
                                            show_default=False)] = None,
    config: Annotated[Path | None, typer.Option("--config", help="twinline.toml.", show_default=False)] = None,
) -> None:
    """Print the KPIs of an asset for a period (text table, --json or --csv)."""
    from twinline.cli.db_cmd import resolve_dsn
    from twinline.twin import planread, service, store
    from twinline.twin.errors import InputError, NoPlantModel, StoreError, StoreUnavailable, UnknownAsset
    from twinline.twin.results import as_plain
    from twinline.uns.errors import PlantModelError
    from twinline.uns.plant import parse_plant

    if as_json and as_csv:
        raise CliError("choose one of --json and --csv", 2)
    if lang not in _LABELS:
        raise CliError(f"--lang must be en or zh-CN, not {lang!r}", 2)
    if (baseline_from is None) != (baseline_to is None):
        raise CliError("give both --baseline-from and --baseline-to, or neither", 2)
    target = resolve_dsn(dsn, config)
    try:
        with store.connect(target) as conn:
            head = store.plant_body(conn)
            if head is None:
                raise NoPlantModel("no plant model in the store: run `twinline plant load FILE` first")
            plant = parse_plant(head[1], f"plant model version {head[0]}")
            t0 = parse_time(t_from, plant, option="--from")
            t1 = parse_time(t_to, plant, end=True, option="--to")
            as_of = datetime.now(UTC)  # the CLI is the program's top: the one place the wall clock is read
            result = service.compute(conn, plant, asset, t0, t1, as_of=as_of, per_shift=shift)
            plan = None
            if baseline_from is not None and baseline_to is not None:
                b0 = parse_time(baseline_from, plant, option="--baseline-from")
                b1 = parse_time(baseline_to, plant, end=True, option="--baseline-to")
                plan = planread.plan_kpis(conn, plant, asset, baseline=(b0, b1), current=(t0, t1), as_of=as_of)
    except StoreUnavailable as exc:
        raise CliError(f"database unreachable: {exc}", 2) from exc
    except UnknownAsset as exc:
        raise CliError(f"unknown asset {exc}", 2) from exc
    except (InputError, PlantModelError) as exc:
        raise CliError(" ".join(str(exc).split()), 2) from exc
    except StoreError as exc:
        raise CliError(" ".join(str(exc).split()), 1) from exc
    if as_json:
        data = as_plain(result)
        if plan is not None:
            data["plan"] = as_plain(plan)
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif as_csv:
        typer.echo(_csv(result), nl=False)
    else:
        typer.echo(_text(result, lang))
        if plan is not None:
            typer.echo(f"{_LABELS[lang]['plan']}: " + json.dumps(as_plain(plan), ensure_ascii=False))


def print_line_summary(dsn: str, plant: Plant, line: str, t0: datetime, t1: datetime, *, as_of: datetime,
                       lang: str = "en") -> None:
    """Print a short KPI summary of one line (used by `twinline demo`); errors as CliError."""
    from twinline.twin import service, store
    from twinline.twin.errors import StoreUnavailable, TwinError

    t = _LABELS.get(lang, _LABELS["en"])
    try:
        with store.connect(dsn) as conn:
            result = service.compute(conn, plant, line, t0, t1, as_of=as_of)
    except StoreUnavailable as exc:
        raise CliError(f"database unreachable: {exc}", 2) from exc
    except TwinError as exc:
        raise CliError(" ".join(str(exc).split()), 1) from exc
    lk = result.whole.lines[line.strip("/")]
    typer.echo(f"  {t['line']} {lk.line} ({lk.line_type}): {t['line_oee']} {_fmt(lk.oee.oee, t['unknown'])}, "
               f"{t['line_yield']} {_fmt(lk.line_yield.line_yield, t['unknown'])}, "
               f"bottleneck {lk.bottleneck.station or t['unknown']}")
    for path, oee in lk.station_oee.items():
        st = result.whole.stations[path]
        typer.echo(f"    {path.rsplit('/', 1)[-1]:<14} {t['OEE']} {_fmt(oee, t['unknown']):>8}  "
                   f"{t['A']} {_fmt(st.iso.availability, t['unknown']):>8}  {t['gq']} {st.iso.counts.gq:>7}  "
                   f"{t['changeovers']} {len(st.changeovers)}")
