"""MQTT broker URLs: `mqtt://user:pass@host:1883` (plain) and `mqtts://...` (TLS, port 8883 by default).

Credentials are percent-decoded (a `@` or `:` in a password is written `%40` / `%3A`). URL options:
`?client_id=name` sets the MQTT client id; `?ca_file=/path/ca.pem` (mqtts:// only) is the PEM file of the
certificate authorities the broker's certificate is checked against, e.g. a plant's private CA. Without
`ca_file` a TLS client trusts the system store (OpenSSL also honours `SSL_CERT_FILE` / `SSL_CERT_DIR`).

`tls_context()` is the TLS client policy meant for every twinline MQTT client (used by the edge uplink,
ingest and the live twin): the broker's certificate must chain to a trusted CA and, unless a test rig
turns it off, match the host name; TLS 1.2 or newer (the `ssl.create_default_context` defaults). It reads
the CA / certificate files when called (nothing at import). Neither `str()` nor `repr()` nor any error
message ever shows the password.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from twinline.uns.errors import SettingsError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
MASK = "***"
_OPTIONS = ("client_id", "ca_file")


@dataclass(frozen=True, slots=True)
class MqttUrl:
    """A parsed broker address; `password` is excluded from repr and masked in str."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    client_id: str | None = None
    ca_file: str | None = None  # PEM bundle of trusted CAs (TLS only); None = the system trust store

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="") + (f":{MASK}" if self.password is not None else "") + "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        options = []
        if self.client_id:
            options.append(f"client_id={quote(self.client_id, safe='')}")
        if self.ca_file:
            options.append(f"ca_file={quote(self.ca_file, safe='/')}")
        query = "?" + "&".join(options) if options else ""
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
    options = _options(parts.query, setting)
    if "ca_file" in options and scheme != "mqtts":
        raise SettingsError(f"{setting}: ca_file is a TLS option (use mqtts://)")
    return MqttUrl(parts.hostname, port, username or None, password, scheme == "mqtts",
                   options.get("client_id"), options.get("ca_file"))


def _options(query: str, setting: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in _OPTIONS:
            raise SettingsError(f"{setting}: unknown URL option {key!r} (allowed: {', '.join(_OPTIONS)})")
        if not value:
            raise SettingsError(f"{setting}: {key} is empty")
        options[key] = value
    return options


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the handshake fails: paho-mqtt 2.x drops such a socket without closing it."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except OSError:  # ssl.SSLError, timeouts, resets: close the descriptor, then let the error rise
            self.close()
            raise


def tls_context(ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None, *,
                check_hostname: bool = True) -> ssl.SSLContext:
    """A client TLS context for a broker: trust `ca_file` (PEM) or, when None, the system store; an optional
    client certificate; `check_hostname=False` only for test rigs. OSError / ssl.SSLError for unreadable files."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    context.check_hostname = check_hostname
    context.sslsocket_class = _ClosingSSLSocket
    return context


__all__ = ["DEFAULT_PORTS", "MqttUrl", "parse_mqtt_url", "tls_context"]
