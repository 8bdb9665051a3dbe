"""Topic namespace and E10 state contract."""

from __future__ import annotations

import pytest

from twinline.uns.errors import ContractError
from twinline.uns.states import E10, REASONS, Reason, from_machinery, from_packml, parse_state
from twinline.uns.topics import AssetPath, Channel, data_topic, edge_topic, parse_topic, subscription

pytestmark = pytest.mark.unit


def test_topic_round_trip() -> None:
    topic = data_topic("cq/terminal/nb1/smt-printer", Channel.COUNT)
    assert topic == "twinline/v1/cq/terminal/nb1/smt-printer/count"
    parsed = parse_topic(topic)
    assert parsed.asset == AssetPath("cq", "terminal", "nb1", "smt-printer")
    assert parsed.channel is Channel.COUNT and parsed.agent is None
    status = parse_topic(edge_topic("cq/terminal/nb1", "edge-nb1"))
    assert status.agent == "edge-nb1" and status.channel is None
    assert subscription("ingest") == "$share/ingest/twinline/v1/#"


@pytest.mark.parametrize(("topic", "field"), [
    ("twinline/v2/cq/a/l/s/count", "topic"),
    ("twinline/v1/cq/a/l/s/volume", "topic.channel"),
    ("twinline/v1/cq/a/l/count", "topic"),
    ("other/v1/cq/a/l/s/count", "topic"),
    ("twinline/v1/cq/a/l/+/count", "topic.station"),
    ("twinline/v1/cq/a/l/_edge/#", "topic.agent"),
])
def test_bad_topics(topic: str, field: str) -> None:
    with pytest.raises(ContractError) as err:
        parse_topic(topic)
    assert err.value.field == field


def test_every_state_has_reasons_and_parse_checks_membership() -> None:
    assert set(REASONS) == set(E10)
    assert parse_state("SDT", "setup") == (E10.SDT, Reason.SETUP)
    with pytest.raises(ContractError, match="does not belong"):
        parse_state("PRD", "setup")
    with pytest.raises(ContractError, match="not a SEMI E10"):
        parse_state("RUNNING", "run")


def test_packml_and_machinery_mappings() -> None:
    assert from_packml("Execute") == (E10.PRD, Reason.RUN)
    assert from_packml("Aborted") == (E10.UDT, Reason.FAILURE)
    assert from_machinery("Executing", "Setup") == (E10.SDT, Reason.SETUP)
    assert from_machinery("OutOfService") == (E10.UDT, Reason.FAILURE)
    assert from_machinery("NotAvailable") == (E10.NST, Reason.NON_SCHEDULED)
    for e10, reason in [*__import__("twinline.uns.states", fromlist=["PACKML"]).PACKML.values()]:
        assert reason in REASONS[e10]
    with pytest.raises(ContractError):
        from_packml("Dancing")
