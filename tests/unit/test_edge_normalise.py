"""Normaliser: counters -> increments with reset detection, product attribution, state pairs, quality."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from twinline.edge.normalise import Normaliser, Reading
from twinline.edge.tagmap import Tag
from twinline.uns.envelope import CountSample, EnergySample, ProcessSample, ProductSample, Quality, StateSample
from twinline.uns.states import E10, Reason
from twinline.uns.topics import AssetPath

pytestmark = pytest.mark.unit
ST = AssetPath("s", "a", "l", "st1")
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def tag(kind: str, field: str | None = None, **kw: object) -> Tag:
    return Tag(key=f"{ST}|{kind}.{field}", station=ST, kind=kind, field=field, **kw)  # type: ignore[arg-type]


GOOD, PRODUCT, STATE, REASON = tag("count", "good"), tag("product"), tag("state", "state"), tag("state", "reason")


def t(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def samples(n: Normaliser, *readings: Reading) -> list[object]:
    return [s for _, _, s in n.process(list(readings), t(10_000)).samples]


def test_cumulative_counter_becomes_increments_with_reset_and_product() -> None:
    kv: dict[str, str] = {}
    n = Normaliser("a/src", kv, first_counter="baseline")
    assert samples(n, Reading(GOOD, 100, t(1))) == []  # first sight: baseline
    out = samples(n, Reading(GOOD, 103, t(3)), Reading(PRODUCT, "SKU-B", t(2)))
    assert out == [ProductSample(ts=t(2), product="SKU-B"), CountSample(ts=t(3), good=3, product="SKU-B")]
    assert samples(n, Reading(GOOD, 2, t(4))) == [CountSample(ts=t(4), good=2, product="SKU-B")]  # device reset
    # a restart with the persisted kv neither double-counts nor loses
    n2 = Normaliser("a/src", dict(kv))
    assert samples(n2, Reading(GOOD, 2, t(5))) == []
    assert samples(n2, Reading(GOOD, 5, t(6))) == [CountSample(ts=t(6), good=3, product="SKU-B")]


def test_a_unit_completed_at_the_instant_of_a_product_change_belongs_to_the_old_product() -> None:
    n = Normaliser("a/src", {}, first_counter="count")
    assert samples(n, Reading(PRODUCT, "A", t(0))) == [ProductSample(ts=t(0), product="A")]
    out = samples(n, Reading(PRODUCT, "B", t(1)), Reading(GOOD, 1, t(1)))
    assert out == [CountSample(ts=t(1), good=1, product="A"), ProductSample(ts=t(1), product="B")]


def test_state_waits_for_its_reason_and_repeats_are_suppressed() -> None:
    n = Normaliser("a/src", {})
    assert samples(n, Reading(STATE, "PRD", t(1)), Reading(REASON, "run", t(1))) == [
        StateSample(ts=t(1), state="PRD", reason="run")]  # type: ignore[arg-type]
    assert samples(n, Reading(STATE, "UDT", t(2))) == []  # (UDT, run) is not a pair: wait
    assert samples(n, Reading(REASON, "failure", t(2))) == [
        StateSample(ts=t(2), state="UDT", reason="failure")]  # type: ignore[arg-type]
    assert samples(n, Reading(STATE, "UDT", t(2)), Reading(REASON, "failure", t(2))) == []


def test_status_map_and_bad_quality() -> None:
    status = tag("state", "status", status_map={"RUN": (E10.PRD, Reason.RUN)})
    n = Normaliser("a/src", {})
    out = samples(n, Reading(status, "RUN", t(1), Quality.UNCERTAIN))
    assert out == [StateSample(ts=t(1), state="PRD", reason="run", quality=Quality.UNCERTAIN)]  # type: ignore[arg-type]
    res = n.process([Reading(status, "WHAT", t(2)), Reading(GOOD, 5, t(2), Quality.BAD)], t(3))
    assert res.rejected == 1 and res.bad == 1 and res.samples == []


def test_process_conversion_keeps_quality_and_status_code() -> None:
    temp = tag("process", None, name="temp", unit="degC", scale=5 / 9, offset=-160 / 9)
    n = Normaliser("a/src", {})
    out = samples(n, Reading(temp, 212.0, t(1), Quality.BAD, 0x80000000))
    assert isinstance(out[0], ProcessSample)
    assert abs(out[0].value - 100.0) < 1e-9 and out[0].quality is Quality.BAD and out[0].status_code == 0x80000000
    assert samples(n, Reading(temp, 212.0, t(1))) == []  # the same value at the same time (re-read)


def test_energy_increments_carry_power() -> None:
    n = Normaliser("a/src", {}, first_counter="count")
    power, total = tag("energy", "power_kw"), tag("energy", "total_kwh")
    out = samples(n, Reading(power, 2.5, t(1)), Reading(total, 1.5, t(2)))
    assert out == [EnergySample(ts=t(2), energy_kwh=1.5, power_kw=2.5)]
