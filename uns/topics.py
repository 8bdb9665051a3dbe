"""The Unified Namespace topic tree: `twinline/v1/{site}/{area}/{line}/{station}/{channel}`.

Edge agents announce themselves on `twinline/v1/{site}/{area}/{line}/_edge/{agent}` (retained birth,
MQTT will as death), the way Sparkplug uses NBIRTH / NDEATH.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from twinline.uns.errors import ContractError

ROOT = "twinline"
VERSION = "v1"
PREFIX = f"{ROOT}/{VERSION}"
EDGE_SEGMENT = "_edge"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Channel(StrEnum):
    """The six sample channels; each topic carries samples of exactly one kind."""

    STATE = "state"
    COUNT = "count"
    PROCESS = "process"
    PRODUCT = "product"
    ALARM = "alarm"
    ENERGY = "energy"


def check_name(value: str, field: str) -> str:
    """An ISA-95 path segment: letters, digits, `_ . -`, at most 64 characters, no MQTT wildcards."""
    if not _NAME.match(value):
        raise ContractError(field, f"{value!r} is not a valid name (letters, digits, _ . -; 1-64 chars; "
                                   "must not start with a symbol)")
    return value


@dataclass(frozen=True, slots=True)
class AssetPath:
    """site/area/line/station; the station part is empty for a line-level path."""

    site: str
    area: str
    line: str
    station: str = ""

    def __str__(self) -> str:
        parts = [self.site, self.area, self.line] + ([self.station] if self.station else [])
        return "/".join(parts)

    @property
    def line_path(self) -> str:
        return f"{self.site}/{self.area}/{self.line}"

    @classmethod
    def parse(cls, text: str, field: str = "asset") -> AssetPath:
        parts = text.strip("/").split("/")
        if len(parts) not in (3, 4):
            raise ContractError(field, f"{text!r} is not site/area/line[/station]")
        for i, p in enumerate(parts):
            check_name(p, f"{field}[{i}]")
        return cls(*parts)


def data_topic(asset: AssetPath | str, channel: Channel | str) -> str:
    """Topic of one station's channel."""
    path = asset if isinstance(asset, AssetPath) else AssetPath.parse(asset)
    if not path.station:
        raise ContractError("asset", f"{path} is a line, data topics need a station")
    return f"{PREFIX}/{path}/{Channel(channel).value}"


def edge_topic(line: AssetPath | str, agent: str) -> str:
    """Birth / death topic of an edge agent on a line."""
    path = line if isinstance(line, AssetPath) else AssetPath.parse(line)
    return f"{PREFIX}/{path.line_path}/{EDGE_SEGMENT}/{check_name(agent, 'agent')}"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """A parsed topic: either a data topic (channel set) or an edge status topic (agent set)."""

    asset: AssetPath
    channel: Channel | None = None
    agent: str | None = None


def parse_topic(topic: str) -> ParsedTopic:
    """Parse a UNS topic; ContractError(field='topic') says what is wrong."""
    parts = topic.split("/")
    if len(parts) != 7 or parts[0] != ROOT:
        raise ContractError("topic", f"{topic!r} is not {PREFIX}/site/area/line/station/channel")
    if parts[1] != VERSION:
        raise ContractError("topic", f"unsupported namespace version {parts[1]!r} (this build speaks {VERSION})")
    site, area, line, station, last = parts[2:]
    for i, p in enumerate((site, area, line)):
        check_name(p, f"topic[{i + 2}]")
    if station == EDGE_SEGMENT:
        return ParsedTopic(AssetPath(site, area, line), agent=check_name(last, "topic.agent"))
    check_name(station, "topic.station")
    try:
        channel = Channel(last)
    except ValueError:
        raise ContractError("topic.channel", f"{last!r} is not a channel ({', '.join(Channel)})") from None
    return ParsedTopic(AssetPath(site, area, line, station), channel=channel)


def subscription(group: str | None = None) -> str:
    """Everything under the namespace; with a group, the MQTT 5 shared subscription `$share/group/...`."""
    base = f"{PREFIX}/#"
    return f"$share/{check_name(group, 'group')}/{base}" if group else base
