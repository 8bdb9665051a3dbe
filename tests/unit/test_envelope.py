"""The envelope contract: round trips in both encodings, and every malformed input names its field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twinline.uns.envelope import (
    CountSample,
    EdgeStatus,
    EnergySample,
    Envelope,
    ProcessSample,
    StateSample,
    decode,
    decode_status,
    encode,
    encode_status,
)
from twinline.uns.errors import ContractError
from twinline.uns.states import E10, Reason
from twinline.uns.topics import Channel

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _good() -> dict[str, Any]:
    return {"v": 1, "source": "edge-nb1/opcua", "seq": 7, "edge_ts": "2026-12-01T08:00:01Z",
            "samples": [{"type": "count", "ts": "2026-12-01T08:00:00Z", "good": 2, "scrap": 1, "product": "NB-14"}]}


def test_round_trip_json_and_msgpack() -> None:
    env = Envelope(v=1, source="s", seq=1, edge_ts=T0, samples=[
        StateSample(ts=T0, state=E10.UDT, reason=Reason.FAILURE),
        ProcessSample(ts=T0, name="temp", value=245.5, unit="degC", status_code=0),
    ])
    assert decode(encode(env)) == env
    assert decode(encode(env, binary=True)) == env


def test_good_payload_decodes_with_defaults() -> None:
    env = decode(json.dumps(_good()).encode(), Channel.COUNT)
    sample = env.samples[0]
    assert isinstance(sample, CountSample)
    assert (sample.good, sample.scrap, sample.rework, sample.product) == (2, 1, 0, "NB-14")


def _mutate(path: str, value: Any) -> dict[str, Any]:
    doc = _good()
    target: Any = doc
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[int(k)] if k.isdigit() else target[k]
    last = keys[-1]
    if value is _DELETE:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return doc


_DELETE = object()

MALFORMED = [
    ("v", "1", "v"),
    ("source", "", "source"),
    ("source", _DELETE, "source"),
    ("seq", -1, "seq"),
    ("seq", "7", "seq"),
    ("edge_ts", "2026-12-01T08:00:01", "edge_ts"),
    ("edge_ts", "yesterday", "edge_ts"),
    ("samples", [], "samples"),
    ("samples", "x", "samples"),
    ("samples.0.type", "volume", "samples[0]"),
    ("samples.0.ts", "2026-12-01T08:00:00", "samples[0].ts"),
    ("samples.0.good", -1, "samples[0].good"),
    ("samples.0.good", 1.5, "samples[0].good"),
    ("samples.0.good", "2", "samples[0].good"),
    ("samples.0.scrap", None, "samples[0].scrap"),
    ("samples.0.product", "", "samples[0].product"),
    ("samples.0.colour", "red", "samples[0]"),
    ("extra", 1, ""),
]


@pytest.mark.parametrize(("path", "value", "field"), MALFORMED)
def test_malformed_envelopes_name_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(ContractError) as err:
        decode(json.dumps(_mutate(path, value)).encode())
    assert err.value.field.startswith(field)
    assert err.value.reason


def test_version_reason_channel_nan_and_future_are_rejected() -> None:
    cases: list[tuple[dict[str, Any], Channel | None, str]] = [
        ({**_good(), "v": 2}, None, "v"),
        ({**_good(), "samples": [{"type": "state", "ts": "2026-12-01T08:00:00Z", "state": "PRD",
                                  "reason": "failure"}]}, None, "samples[0].reason"),
        ({**_good(), "samples": [{"type": "state", "ts": "2026-12-01T08:00:00Z", "state": "RUN",
                                  "reason": "run"}]}, None, "samples[0].state"),
        (_good(), Channel.STATE, "samples[0].kind"),
    ]
    for doc, channel, field in cases:
        with pytest.raises(ContractError) as err:
            decode(json.dumps(doc).encode(), channel)
        assert err.value.field == field, doc
    nan = encode(Envelope(v=1, source="s", seq=1, edge_ts=T0,
                          samples=[ProcessSample(ts=T0, name="t", value=float("nan"), unit="degC")]), binary=True)
    with pytest.raises(ContractError, match="finite"):
        decode(nan)
    future = encode(Envelope(v=1, source="s", seq=1, edge_ts=T0,
                             samples=[EnergySample(ts=T0 + timedelta(hours=1), energy_kwh=0.5)]))
    with pytest.raises(ContractError, match="future") as err:
        decode(future, now=T0)
    assert err.value.field == "samples[0].ts"
    with pytest.raises(ContractError, match="epoch"):
        decode(future, not_before=T0 + timedelta(days=1))


@pytest.mark.parametrize("payload", [b"", b"{", b"not json", b"\xff\x00\x01", b"[]", b"null"])
def test_garbage_is_a_contract_error(payload: bytes) -> None:
    with pytest.raises(ContractError):
        decode(payload)


def test_edge_status_round_trip() -> None:
    status = EdgeStatus(v=1, agent="edge-nb1", online=True, ts=T0, sources=["opcua"], stations=["cq/t/nb1/smt"])
    assert decode_status(encode_status(status)) == status
    with pytest.raises(ContractError):
        decode_status(b'{"v":1}')


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1,
                max_size=50), st.integers(0, 2**62))
def test_count_round_trip_property(counts: list[tuple[int, int, int]], seq: int) -> None:
    env = Envelope(v=1, source="p", seq=seq, edge_ts=T0,
                   samples=[CountSample(ts=T0 + timedelta(seconds=i), good=g, scrap=s, rework=r)
                            for i, (g, s, r) in enumerate(counts)])
    assert decode(encode(env, binary=seq % 2 == 0), Channel.COUNT) == env
