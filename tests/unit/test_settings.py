"""Settings: toml < env < *_FILE precedence, validation, secret masking; MQTT broker URLs."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest

from twinline.uns.errors import SettingsError
from twinline.uns.mqtturl import MqttUrl, parse_mqtt_url, tls_context
from twinline.uns.settings import Settings, load_settings, mask_dsn

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-Pa55"

TOML = f"""
dsn = "postgresql://twin:{SECRET}@db.example:5432/twinline"
mqtt_url = "mqtt://edge:{SECRET}@broker.example:1883"
plant = "plants/cq.yaml"
data_dir = "/var/lib/twinline"
log_level = "debug"

[api]
host = "0.0.0.0"
port = 8080

[ingest]
group = "ingest-a"
batch_rows = 2000
flush_s = 0.25
"""


def write(tmp_path: Path, text: str, name: str = "twinline.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_env(tmp_path: Path) -> None:
    s = load_settings(None, {}, cwd=tmp_path)
    assert s == Settings()
    assert s.dsn is None and s.mqtt_url is None and s.plant is None and s.mqtt is None
    assert s.data_dir == Path(".twinline") and s.log_level == "INFO" and s.api_port == 8000
    assert s.config_path is None


def test_toml_values(tmp_path: Path) -> None:
    cfg = write(tmp_path, TOML)
    s = load_settings(cfg, {})
    assert s.dsn == f"postgresql://twin:{SECRET}@db.example:5432/twinline"
    assert s.plant == tmp_path / "plants" / "cq.yaml"  # relative to the toml file
    assert s.data_dir == Path("/var/lib/twinline")
    assert s.log_level == "DEBUG"
    assert (s.api_host, s.api_port) == ("0.0.0.0", 8080)
    assert (s.ingest_group, s.ingest_batch_rows, s.ingest_flush_s) == ("ingest-a", 2000, 0.25)
    assert s.config_path == cfg
    assert s.mqtt == MqttUrl("broker.example", 1883, "edge", SECRET, False)


def test_config_location_argument_env_then_cwd(tmp_path: Path) -> None:
    a = write(tmp_path, 'log_level = "ERROR"', "a.toml")
    b = write(tmp_path, 'log_level = "WARNING"', "b.toml")
    write(tmp_path, 'log_level = "CRITICAL"')
    env = {"TWINLINE_CONFIG": str(b)}
    assert load_settings(a, env, cwd=tmp_path).log_level == "ERROR"
    assert load_settings(None, env, cwd=tmp_path).log_level == "WARNING"
    assert load_settings(None, {}, cwd=tmp_path).log_level == "CRITICAL"
    assert load_settings(None, {"TWINLINE_CONFIG": "b.toml"}, cwd=tmp_path).log_level == "WARNING"


def test_env_overrides_toml_and_file_overrides_env(tmp_path: Path) -> None:
    cfg = write(tmp_path, TOML)
    secret_file = write(tmp_path, "postgresql://file:pw@filehost/db\n", "dsn.secret")
    env = {
        "TWINLINE_DSN": "postgresql://env:pw@envhost/db",
        "TWINLINE_MQTT_URL": "mqtts://envbroker",
        "TWINLINE_PLANT": "other.yaml",
        "TWINLINE_DATA_DIR": "/data",
        "TWINLINE_API_PORT": "9000",
    }
    s = load_settings(cfg, env)
    assert s.dsn == "postgresql://env:pw@envhost/db"
    assert s.mqtt == MqttUrl("envbroker", 8883, tls=True)
    assert s.plant == Path("other.yaml") and s.data_dir == Path("/data") and s.api_port == 9000
    s = load_settings(cfg, {**env, "TWINLINE_DSN_FILE": str(secret_file)})
    assert s.dsn == "postgresql://file:pw@filehost/db"  # trailing newline stripped
    assert s.api_host == "0.0.0.0"  # untouched toml value survives


def test_empty_env_counts_as_unset(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, TOML), {"TWINLINE_DSN": "", "TWINLINE_API_PORT": " "})
    assert s.dsn is not None and s.api_port == 8080


def test_redacted_masks_passwords(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, TOML), {})
    shown = s.redacted()
    assert shown["dsn"] == "postgresql://twin:***@db.example:5432/twinline"
    assert shown["mqtt_url"] == "mqtt://edge:***@broker.example:1883"
    assert shown["api_port"] == 8080 and shown["plant"] == str(tmp_path / "plants" / "cq.yaml")
    assert SECRET not in str(shown) and SECRET not in repr(s)


@pytest.mark.parametrize(("dsn", "masked"), [
    ("postgresql://u:p%40ss@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("postgresql://h1,h2/db?user=u&password=pw&sslmode=require",
     "postgresql://h1,h2/db?user=u&password=***&sslmode=require"),
    ("host=db user=u password=pw dbname=x", "host=db user=u password=*** dbname=x"),
    ("host=db password='p w' dbname=x", "host=db password=*** dbname=x"),
])
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


def test_unknown_toml_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"dns .*unknown setting"):
        load_settings(write(tmp_path, 'dns = "x"'), {})
    with pytest.raises(SettingsError, match=r"api\.prot .*unknown setting"):
        load_settings(write(tmp_path, "[api]\nprot = 1"), {})
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings(write(tmp_path, "[edge]\nqueue = 1"), {})


@pytest.mark.parametrize(("toml", "env", "words"), [
    ("[api]\nport = 70000", {}, "api.port"),
    ("[api]\nport = 80.5", {}, "api.port"),
    ("", {"TWINLINE_API_PORT": "http"}, "TWINLINE_API_PORT"),
    ('log_level = "loud"', {}, "log_level"),
    ("[ingest]\nflush_s = -1", {}, "ingest.flush_s"),
    ('[ingest]\ngroup = "a/b"', {}, "ingest.group"),
    ("api = 3", {}, "[api]"),
    ("dsn = 5", {}, "dsn"),
    ("log_level = ", {}, "not valid TOML"),
])
def test_invalid_values_name_the_setting(tmp_path: Path, toml: str, env: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(words)):
        load_settings(write(tmp_path, toml), env)


@pytest.mark.parametrize("bad", [f"mysql://u:{SECRET}@h/db", f"u:{SECRET}@h", f"http://u:{SECRET}@h/db"])
def test_bad_dsn_never_echoes_secret(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SettingsError, match="TWINLINE_DSN") as info:
        load_settings(None, {"TWINLINE_DSN": bad}, cwd=tmp_path)
    assert SECRET not in str(info.value)


def test_bad_mqtt_url_from_file_never_echoes_secret(tmp_path: Path) -> None:
    secret = write(tmp_path, f"amqp://u:{SECRET}@h", "mqtt.secret")
    with pytest.raises(SettingsError, match="TWINLINE_MQTT_URL_FILE") as info:
        load_settings(None, {"TWINLINE_MQTT_URL_FILE": str(secret)}, cwd=tmp_path)
    assert SECRET not in str(info.value)


def test_missing_config_and_secret_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", {})
    with pytest.raises(SettingsError, match="TWINLINE_CONFIG"):
        load_settings(None, {"TWINLINE_CONFIG": str(tmp_path / "nope.toml")}, cwd=tmp_path)
    with pytest.raises(SettingsError, match="TWINLINE_DSN_FILE: cannot read"):
        load_settings(None, {"TWINLINE_DSN_FILE": str(tmp_path / "none")}, cwd=tmp_path)
    empty = write(tmp_path, "\n", "empty.secret")
    with pytest.raises(SettingsError, match="is empty"):
        load_settings(None, {"TWINLINE_DSN_FILE": str(empty)}, cwd=tmp_path)


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_settings(None, {}, cwd=tmp_path)
    with pytest.raises(AttributeError):
        s.api_port = 1  # type: ignore[misc]


# --------------------------------------------------------------------------- MQTT URLs

@pytest.mark.parametrize(("url", "expected"), [
    ("mqtt://broker", MqttUrl("broker", 1883)),
    ("mqtt://broker:1884", MqttUrl("broker", 1884)),
    ("mqtts://broker", MqttUrl("broker", 8883, tls=True)),
    ("MQTTS://broker:443/", MqttUrl("broker", 443, tls=True)),
    ("mqtt://user:pass@host:1883", MqttUrl("host", 1883, "user", "pass")),
    ("mqtt://us%40er:p%40ss%3Aw%2Fd@host", MqttUrl("host", 1883, "us@er", "p@ss:w/d")),
    ("mqtt://user@host", MqttUrl("host", 1883, "user", None)),
    ("mqtt://[::1]:1883", MqttUrl("::1", 1883)),
    ("mqtt://h?client_id=edge-7", MqttUrl("h", 1883, client_id="edge-7")),
    ("mqtts://u:p@h:8884?ca_file=/etc/twinline/ca.pem", MqttUrl("h", 8884, "u", "p", True,
                                                                ca_file="/etc/twinline/ca.pem")),
    ("mqtts://h?client_id=c1&ca_file=%2Fpki%2Fplant%20ca.pem", MqttUrl("h", 8883, tls=True, client_id="c1",
                                                                       ca_file="/pki/plant ca.pem")),
])
def test_parse_mqtt_url(url: str, expected: MqttUrl) -> None:
    assert parse_mqtt_url(url) == expected


def test_mqtt_url_str_and_repr_hide_password() -> None:
    url = parse_mqtt_url(f"mqtts://edge:{SECRET}@broker:8883?client_id=a1")
    assert str(url) == "mqtts://edge:***@broker:8883?client_id=a1"
    assert SECRET not in repr(url) and url.password == SECRET
    assert str(parse_mqtt_url("mqtt://broker")) == "mqtt://broker:1883"
    assert str(parse_mqtt_url("mqtt://u@[::1]")) == "mqtt://u@[::1]:1883"


def test_mqtt_url_with_ca_file_round_trips_through_str() -> None:
    url = parse_mqtt_url(f"mqtts://edge:{SECRET}@broker?client_id=a1&ca_file=/pki/plant%20ca.pem")
    assert str(url) == "mqtts://edge:***@broker:8883?client_id=a1&ca_file=/pki/plant%20ca.pem"
    assert parse_mqtt_url(str(url).replace("***", SECRET)) == url


def test_tls_context_checks_certificate_and_host_name(tmp_path: Path) -> None:
    context = tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert not tls_context(check_hostname=False).check_hostname
    with pytest.raises(FileNotFoundError):
        tls_context(str(tmp_path / "missing-ca.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ssl.SSLError):
        tls_context(str(tmp_path / "junk.pem"))


@pytest.mark.parametrize(("url", "words"), [
    (f"http://u:{SECRET}@broker", "mqtt:// or mqtts://"),
    (f"u:{SECRET}@broker:1883", "scheme"),
    ("ws://broker", "'ws'"),
    (f"mqtt://u:{SECRET}@broker:99999", "port"),
    (f"mqtt://u:{SECRET}@broker:port", "port"),
    (f"mqtt://u:{SECRET}@broker:0", "port"),
    ("mqtt://broker:", "port is empty"),
    (f"mqtt://u:{SECRET}@", "host"),
    ("mqtt://broker/topic", "no path"),
    (f"mqtt://:{SECRET}@broker", "without a user name"),
    ("mqtt://broker?qos=1", "unknown URL option 'qos'"),
    ("mqtt://broker?ca_file=/ca.pem", "ca_file is a TLS option (use mqtts://)"),
    (f"mqtts://u:{SECRET}@broker?ca_file=", "ca_file is empty"),
])
def test_bad_mqtt_urls(url: str, words: str) -> None:
    with pytest.raises(SettingsError, match="mqtt_url") as info:
        parse_mqtt_url(url)
    assert words in str(info.value)
    assert SECRET not in str(info.value)
