"""MQTT broker URLs: `mqtt://user:pass@host:1883` (plain) and `mqtts://...` (TLS, port 8883 by default).

Credentials are percent-decoded (a `@` or `:` in a password is written `%40` / `%3A`). An optional
`?client_id=name` sets the MQTT client id. Neither `str()` nor `repr()` nor any error message ever shows
the password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from twinline.uns.errors import SettingsError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
MASK = "***"


@dataclass(frozen=True, slots=True)
class MqttUrl:
    """A parsed broker address; `password` is excluded from repr and masked in str."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    client_id: str | None = None

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="") + (f":{MASK}" if self.password is not None else "") + "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?client_id={quote(self.client_id, safe='')}" if self.client_id else ""
        return f"{scheme}://{auth}{host}:{self.port}{query}"


def parse_mqtt_url(url: str, setting: str = "mqtt_url") -> MqttUrl:
    """Parse a broker URL; SettingsError names `setting` and never repeats the URL (it may hold a password)."""
    text = url.strip()
    scheme, sep, _ = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        shown = f"{scheme!r}" if sep and "@" not in scheme else "none"
        raise SettingsError(f"{setting}: scheme must be mqtt:// or mqtts:// (got {shown})")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise SettingsError(f"{setting}: port must be a number between 1 and 65535") from None
    if not parts.hostname:
        raise SettingsError(f"{setting}: no broker host name (expected {scheme}://[user:password@]host[:port])")
    if port is None:
        if parts.netloc.endswith(":"):
            raise SettingsError(f"{setting}: port is empty (remove the ':' or give a port)")
        port = DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise SettingsError(f"{setting}: port must be a number between 1 and 65535 (got {port})")
    if parts.path not in ("", "/") or parts.fragment:
        raise SettingsError(f"{setting}: a broker URL has no path (expected {scheme}://host:port)")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise SettingsError(f"{setting}: a password is given without a user name")
    return MqttUrl(parts.hostname, port, username or None, password, scheme == "mqtts",
                   _client_id(parts.query, setting))


def _client_id(query: str, setting: str) -> str | None:
    client_id: str | None = None
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key != "client_id":
            raise SettingsError(f"{setting}: unknown URL option {key!r} (allowed: client_id)")
        if not value:
            raise SettingsError(f"{setting}: client_id is empty")
        client_id = value
    return client_id


__all__ = ["DEFAULT_PORTS", "MqttUrl", "parse_mqtt_url"]
