"""The agent configuration (`edge.yaml`): typed, validated once at start-up, errors name the field.

Parsing is two-phase like the envelope: msgspec checks types and shapes (unknown keys are errors), then
`_check` checks meaning (names, the line path, the broker URL, certificate files, unique source names,
the tag map). Relative paths are relative to the config file; `queue.path` and `health.status_file`
are relative to `state_dir`. Secrets come from `*_file` settings (or the broker URL from
`TWINLINE_MQTT_URL`), never from the command line; `redacted()` is the form to log.

See deploy/edge.yaml for a commented example and `EdgeConfig` below for every field and its default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml

from twinline.edge.errors import ConfigError
from twinline.edge.tagmap import TagMap, load_tagmap, parse_tagmap
from twinline.uns.errors import ContractError, SettingsError
from twinline.uns.mqtturl import MqttUrl, parse_mqtt_url
from twinline.uns.topics import AssetPath, check_name

Pos = Annotated[float, msgspec.Meta(gt=0)]
NonNegF = Annotated[float, msgspec.Meta(ge=0)]
Overflow = Literal["drop_oldest", "reject_new"]


class _S(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class TlsConfig(_S, kw_only=True, frozen=True):
    """TLS towards a broker; `ca_file` empty = the system trust store."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False  # skip host name verification (test rigs only)


class UplinkConfig(_S, kw_only=True, frozen=True):
    """The central broker. `url` falls back to the settings' `mqtt_url` (TWINLINE_MQTT_URL)."""

    url: str | None = None
    client_id: str | None = None  # default twinline-edge-<agent>
    protocol: Literal["3.1.1", "5"] = "5"
    keepalive_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 30
    username: str | None = None
    password_file: str | None = None
    tls: TlsConfig | None = None
    inflight: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 64  # envelopes published and not yet acked
    reconnect_min_s: Pos = 0.5
    reconnect_max_s: Pos = 30.0
    connect_timeout_s: Pos = 10.0


class QueueConfig(_S, kw_only=True, frozen=True):
    """The SQLite WAL queue: bounded at `max_samples` with a named overflow policy."""

    path: str = "queue.db"
    max_samples: Annotated[int, msgspec.Meta(ge=100)] = 2_000_000
    overflow: Overflow = "drop_oldest"
    # normal: a commit survives a killed process (WAL, no fsync per commit); full: also a power cut
    synchronous: Literal["normal", "full"] = "normal"


class BatchConfig(_S, kw_only=True, frozen=True):
    """One envelope = one station + channel, at most `max_samples` samples, at most `max_delay_s` old."""

    max_samples: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    max_delay_s: Pos = 0.2


class HealthConfig(_S, kw_only=True, frozen=True):
    status_file: str = "status.json"
    interval_s: Pos = 1.0
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0  # 0 = no HTTP endpoint
    metrics_host: str = "127.0.0.1"


class SecurityConfig(_S, kw_only=True, frozen=True):
    """OPC UA message security: `None`, or Basic256Sha256 with Sign / SignAndEncrypt and our certificate."""

    policy: Literal["None", "Basic256Sha256"] = "None"
    mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    certificate: str | None = None  # our application certificate (DER or PEM)
    private_key: str | None = None
    server_certificate: str | None = None  # pin the server's certificate (optional)


class OpcUaSourceConfig(_S, tag="opcua", tag_field="type", kw_only=True, frozen=True):
    name: str
    endpoint: str
    security: SecurityConfig = SecurityConfig()
    username: str | None = None
    password_file: str | None = None
    publishing_interval_ms: Pos = 100.0
    sampling_interval_ms: NonNegF = 0.0  # 0 = as fast as the server can (exception based)
    # Server-side queue per monitored item: changes between two publishes are queued, not overwritten.
    # With discard_oldest the newest value always survives an overflow (and cumulative counters keep
    # their totals whatever is dropped); overflows are counted from the status code's overflow bit.
    queue_size: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    discard_oldest: bool = True
    deadband: NonNegF = 0.0  # absolute deadband for process values (0 = every change)
    timeout_s: Pos = 4.0
    keepalive_s: Pos = 1.0  # how often the session is probed; a failed probe re-creates everything
    reconnect_min_s: Pos = 0.5
    reconnect_max_s: Pos = 30.0
    first_counter: Literal["baseline", "count"] = "baseline"


class MqttSourceConfig(_S, tag="mqtt", tag_field="type", kw_only=True, frozen=True):
    name: str
    broker: str
    topic: str
    qos: Literal[0, 1] = 1
    client_id: str | None = None  # default twinline-edge-<agent>-<name>; a persistent session
    password_file: str | None = None
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    reconnect_min_s: Pos = 0.5
    reconnect_max_s: Pos = 30.0
    first_counter: Literal["baseline", "count"] = "baseline"


SourceConfig = OpcUaSourceConfig | MqttSourceConfig


class EdgeConfig(_S, kw_only=True, frozen=True):
    agent: str
    line: str
    state_dir: str = "."
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    uplink: UplinkConfig = UplinkConfig()
    queue: QueueConfig = QueueConfig()
    batching: BatchConfig = BatchConfig()
    health: HealthConfig = HealthConfig()
    sources: Annotated[list[SourceConfig], msgspec.Meta(min_length=1)]
    tagmap: str | None = None  # a tag map file (relative to this file); or `tags:` inline
    tags: dict[str, Any] | None = None
    # filled in by load_config
    base_dir: str = "."

    @property
    def line_path(self) -> AssetPath:
        return AssetPath.parse(self.line)

    def path(self, value: str) -> Path:
        """A path setting relative to the config file."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def state_path(self, value: str) -> Path:
        """A path setting relative to the state directory."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.path(self.state_dir) / p

    def source_id(self, name: str) -> str:
        """The envelope `source` of one of our sources (ingest dedupes by source + seq)."""
        return f"{self.agent}/{name}"

    def redacted(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self)
        if data["uplink"].get("url"):
            data["uplink"]["url"] = str(parse_mqtt_url(data["uplink"]["url"]))
        for src in data["sources"]:
            if src.get("broker"):
                src["broker"] = str(parse_mqtt_url(src["broker"]))
        return data


_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def translate(exc: msgspec.MsgspecError, source: str = "") -> ConfigError:
    """A msgspec error as ConfigError with the YAML path of the field."""
    text = str(exc)
    m = _PATH.search(text)
    if not m:
        return ConfigError("", text, source)
    field = m.group("path").lstrip(".")
    reason = text[: m.start()]
    missing = re.match(r"^Object missing required field `([^`]+)`$", reason)
    if missing:
        field = f"{field}.{missing.group(1)}" if field else missing.group(1)
    return ConfigError(field, reason, source)


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("", f"cannot read {path} ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path} is not valid YAML ({exc})") from exc


def load_config(path: Path, *, mqtt_url: str | None = None) -> tuple[EdgeConfig, TagMap]:
    """Read and validate `edge.yaml` and its tag map; `mqtt_url` is the settings' fallback broker."""
    data = read_yaml(path)
    return parse_config(data, base_dir=path.resolve().parent, source=str(path), mqtt_url=mqtt_url)


def parse_config(data: Any, *, base_dir: Path, source: str = "<config>",
                 mqtt_url: str | None = None) -> tuple[EdgeConfig, TagMap]:
    if not isinstance(data, dict):
        raise ConfigError("", "expected a mapping at the top of the file", source)
    try:
        cfg = msgspec.convert({**data, "base_dir": str(base_dir)}, EdgeConfig)
    except msgspec.ValidationError as exc:
        raise translate(exc, source) from None
    if cfg.uplink.url is None and mqtt_url:
        cfg = msgspec.structs.replace(cfg, uplink=msgspec.structs.replace(cfg.uplink, url=mqtt_url))
    _check(cfg, source)
    if cfg.tagmap is not None and cfg.tags is not None:
        raise ConfigError("tags", "give either `tagmap` (a file) or inline `tags`, not both", source)
    if cfg.tagmap is not None:
        tagmap = load_tagmap(cfg.path(cfg.tagmap))
    elif cfg.tags is not None:
        tagmap = parse_tagmap(cfg.tags, source=f"{source} (tags)", field_prefix="tags.")
    else:
        raise ConfigError("tagmap", "no tag map: give `tagmap: <file>` or inline `tags:`", source)
    _check_tags(cfg, tagmap, source)
    return cfg, tagmap


def _check(cfg: EdgeConfig, source: str) -> None:
    def need(ok: bool, field: str, reason: str) -> None:
        if not ok:
            raise ConfigError(field, reason, source)

    try:
        check_name(cfg.agent, "agent")
        line = AssetPath.parse(cfg.line, "line")
    except ContractError as exc:
        raise ConfigError(exc.field, exc.reason, source) from None
    need(not line.station, "line", f"{cfg.line!r} must be site/area/line (no station)")
    need(cfg.uplink.url is not None, "uplink.url", "no broker: set uplink.url or TWINLINE_MQTT_URL")
    _url(cfg.uplink.url or "", "uplink.url", source)
    need(cfg.uplink.reconnect_min_s <= cfg.uplink.reconnect_max_s, "uplink.reconnect_max_s",
         "must be >= reconnect_min_s")
    _file(cfg, cfg.uplink.password_file, "uplink.password_file", source)
    if cfg.uplink.tls is not None:
        for attr in ("ca_file", "cert_file", "key_file"):
            _file(cfg, getattr(cfg.uplink.tls, attr), f"uplink.tls.{attr}", source)
    names: set[str] = set()
    for i, src in enumerate(cfg.sources):
        where = f"sources[{i}]"
        try:
            check_name(src.name, f"{where}.name")
        except ContractError as exc:
            raise ConfigError(exc.field, exc.reason, source) from None
        need(src.name not in names, f"{where}.name", f"duplicate source name {src.name!r}")
        names.add(src.name)
        _file(cfg, src.password_file, f"{where}.password_file", source)
        if isinstance(src, OpcUaSourceConfig):
            need(src.endpoint.startswith("opc.tcp://"), f"{where}.endpoint", "must start with opc.tcp://")
            sec = src.security
            if sec.policy != "None":
                need(bool(sec.certificate), f"{where}.security.certificate", f"required for {sec.policy}")
                need(bool(sec.private_key), f"{where}.security.private_key", f"required for {sec.policy}")
            for attr in ("certificate", "private_key", "server_certificate"):
                _file(cfg, getattr(sec, attr), f"{where}.security.{attr}", source)
            need(src.password_file is None or src.username is not None, f"{where}.username",
                 "password_file is given without a username")
        else:
            _url(src.broker, f"{where}.broker", source)
            need(bool(src.topic.strip()), f"{where}.topic", "empty topic filter")


def _url(url: str, field: str, source: str) -> MqttUrl:
    try:
        return parse_mqtt_url(url, field)
    except SettingsError as exc:
        raise ConfigError(field, str(exc).split(": ", 1)[-1], source) from None


def _file(cfg: EdgeConfig, value: str | None, field: str, source: str) -> None:
    if value is not None and not cfg.path(value).is_file():
        raise ConfigError(field, f"{cfg.path(value)} does not exist", source)


def _check_tags(cfg: EdgeConfig, tagmap: TagMap, source: str) -> None:
    kinds = {s.name: s for s in cfg.sources}
    for name in tagmap.opcua:
        if not isinstance(kinds.get(name), OpcUaSourceConfig):
            raise ConfigError(f"tags.opcua.{name}", "no OPC UA source of this name in `sources`", source)
    for name in tagmap.mqtt:
        if not isinstance(kinds.get(name), MqttSourceConfig):
            raise ConfigError(f"tags.mqtt.{name}", "no MQTT source of this name in `sources`", source)
    for src in cfg.sources:
        if src.name not in tagmap.opcua and src.name not in tagmap.mqtt:
            kind = "opcua" if isinstance(src, OpcUaSourceConfig) else "mqtt"
            raise ConfigError(f"tags.{kind}.{src.name}", "no tags for this source", source)
    line = cfg.line_path
    for station in tagmap.stations():
        if station.line_path != line.line_path:
            raise ConfigError("tags", f"station {station} is not on this agent's line {cfg.line}", source)


def read_secret(cfg: EdgeConfig, path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return cfg.path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError("", f"cannot read secret file {cfg.path(path)} ({exc.strerror})") from exc


__all__ = ["BatchConfig", "EdgeConfig", "HealthConfig", "MqttSourceConfig", "OpcUaSourceConfig", "QueueConfig",
           "SecurityConfig", "SourceConfig", "TlsConfig", "UplinkConfig", "load_config", "parse_config",
           "read_secret"]
