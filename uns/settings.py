"""Program settings: `twinline.toml` overridden by environment, validated once into one frozen object.

Where the file comes from: the `config_path` argument (the CLI's `--config`), else `TWINLINE_CONFIG`,
else `./twinline.toml` when it exists, else no file (defaults). Precedence, lowest first:
defaults < toml < `TWINLINE_<NAME>` < `TWINLINE_<NAME>_FILE` (the value read from that file, for
secrets mounted by Docker / Kubernetes). Names: `dsn`, `mqtt_url`, `plant`, `data_dir`, `log_level`
at the top of the toml; `[api] host, port` and `[ingest] group, batch_rows, flush_s` in sections;
their environment names are `TWINLINE_DSN`, `TWINLINE_API_PORT`, `TWINLINE_INGEST_GROUP`, ...
Relative paths in the toml are relative to the toml file. Unknown keys in the toml are errors; an
empty environment variable counts as unset. Errors are SettingsError naming the setting and where it
came from, never a secret's value; `Settings.redacted()` is the form to log or print.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twinline.uns.errors import ContractError, SettingsError
from twinline.uns.mqtturl import MASK, MqttUrl, parse_mqtt_url
from twinline.uns.topics import check_name

ENV_PREFIX = "TWINLINE_"
CONFIG_ENV = "TWINLINE_CONFIG"
DEFAULT_CONFIG = "twinline.toml"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SECRETS = frozenset({"dsn", "mqtt_url"})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a twinline program is configured with; build it with `load_settings`."""

    dsn: str | None = field(default=None, repr=False)
    mqtt_url: str | None = field(default=None, repr=False)
    plant: Path | None = None
    data_dir: Path = Path(".twinline")
    log_level: str = "INFO"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ingest_group: str = "twinline-ingest"
    ingest_batch_rows: int = 5000
    ingest_flush_s: float = 0.5
    config_path: Path | None = None

    @property
    def mqtt(self) -> MqttUrl | None:
        """The broker URL parsed (it was validated at load)."""
        return parse_mqtt_url(self.mqtt_url) if self.mqtt_url else None

    def redacted(self) -> dict[str, str | int | float | None]:
        """Printable settings: passwords in the DSN and the broker URL replaced by ***."""
        out: dict[str, str | int | float | None] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or isinstance(value, int | float):
                out[f.name] = value
            elif f.name == "dsn":
                out[f.name] = mask_dsn(value)
            elif f.name == "mqtt_url":
                out[f.name] = str(parse_mqtt_url(value))
            else:
                out[f.name] = str(value)
        return out

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in self.redacted().items())})"


def mask_dsn(dsn: str) -> str:
    """Replace the password of a PostgreSQL URL or key=value conninfo by ***."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        userinfo, at, hosts = parts.netloc.rpartition("@")
        netloc = parts.netloc
        if at and ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{hosts}"
        query = re.sub(r"(^|&)(password=)[^&]*", rf"\1\2{MASK}", parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", rf"\g<1>{MASK}", dsn)


# --------------------------------------------------------------------------- loading

# setting -> (toml key, converter); the environment name is TWINLINE_ + setting upper-cased
_Convert = Callable[[Any, str, "Path | None"], Any]


def _text(value: Any, name: str, base: Path | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"{name}: expected non-empty text")
    return value.strip()


def _dsn(value: Any, name: str, base: Path | None) -> str:
    text = _text(value, name, base)
    if "://" in text:
        if urlsplit(text).scheme not in ("postgresql", "postgres"):
            raise SettingsError(f"{name}: a DSN URL must start with postgresql:// (or postgres://)")
    elif "=" not in text:
        raise SettingsError(f"{name}: expected postgresql://user:password@host:port/dbname or key=value conninfo")
    return text


def _mqtt(value: Any, name: str, base: Path | None) -> str:
    text = _text(value, name, base)
    parse_mqtt_url(text, name)
    return text


def _path(value: Any, name: str, base: Path | None) -> Path:
    path = Path(_text(value, name, base)).expanduser()
    return base / path if base is not None and not path.is_absolute() else path


def _level(value: Any, name: str, base: Path | None) -> str:
    level = _text(value, name, base).upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"{name}: {value!r} is not a log level ({', '.join(LOG_LEVELS)})")
    return level


def _int(low: int, high: int) -> _Convert:
    def convert(value: Any, name: str, base: Path | None) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SettingsError(f"{name}: expected a whole number between {low} and {high}, got {value!r}")
        return value
    return convert


def _positive(value: Any, name: str, base: Path | None) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise SettingsError(f"{name}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise SettingsError(f"{name}: expected a positive number, got {value!r}")
    return float(value)


def _group(value: Any, name: str, base: Path | None) -> str:
    try:
        return check_name(_text(value, name, base), name)
    except ContractError as exc:
        raise SettingsError(f"{name}: {exc.reason}") from None


_SPEC: dict[str, tuple[str, _Convert]] = {
    "dsn": ("dsn", _dsn),
    "mqtt_url": ("mqtt_url", _mqtt),
    "plant": ("plant", _path),
    "data_dir": ("data_dir", _path),
    "log_level": ("log_level", _level),
    "api_host": ("api.host", _text),
    "api_port": ("api.port", _int(1, 65535)),
    "ingest_group": ("ingest.group", _group),
    "ingest_batch_rows": ("ingest.batch_rows", _int(1, 10_000_000)),
    "ingest_flush_s": ("ingest.flush_s", _positive),
}


def load_settings(config_path: Path | None, env: Mapping[str, str], *, cwd: Path | None = None) -> Settings:
    """Build the settings of one program from the config file and the environment passed in."""
    here = cwd if cwd is not None else Path.cwd()
    path = _config_file(config_path, env, here)
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_from_toml(path))
    for setting, (_, convert) in _SPEC.items():
        env_name = ENV_PREFIX + setting.upper()
        if env.get(env_name, "").strip():
            values[setting] = convert(env[env_name], f"{setting} (from {env_name})", None)
        file_var = env_name + "_FILE"
        if env.get(file_var, "").strip():
            secret = _read_secret(Path(env[file_var].strip()), file_var)
            values[setting] = convert(secret, f"{setting} (from {file_var})", None)
    return Settings(**values, config_path=path)


def _config_file(config_path: Path | None, env: Mapping[str, str], here: Path) -> Path | None:
    if config_path is not None:
        where = "--config"
        path = Path(config_path)
    elif env.get(CONFIG_ENV, "").strip():
        where = CONFIG_ENV
        path = Path(env[CONFIG_ENV].strip())
    else:
        default = here / DEFAULT_CONFIG
        return default if default.is_file() else None
    path = path.expanduser()
    path = path if path.is_absolute() else here / path
    if not path.is_file():
        raise SettingsError(f"config file {path} (from {where}) does not exist")
    return path


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise SettingsError(f"config file {path}: cannot read it ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: not valid TOML ({exc})") from exc
    by_key = {key: setting for setting, (key, _) in _SPEC.items()}
    sections = {key.split(".")[0] for key in by_key if "." in key}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in sections:
            if not isinstance(value, dict):
                raise SettingsError(f"{key} in {path}: expected a [{key}] table")
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    values: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in by_key:
            raise SettingsError(f"{key} in {path}: unknown setting (known: {', '.join(by_key)})")
        setting = by_key[key]
        values[setting] = _SPEC[setting][1](value, f"{key} (in {path})", path.parent)
    return values


def _read_secret(path: Path, var: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"{var}: cannot read {path} ({exc.strerror})") from exc
    except UnicodeDecodeError:
        raise SettingsError(f"{var}: {path} is not UTF-8 text") from None
    if not text:
        raise SettingsError(f"{var}: {path} is empty")
    return text


__all__ = ["CONFIG_ENV", "ENV_PREFIX", "LOG_LEVELS", "Settings", "SettingsError", "load_settings", "mask_dsn"]
