"""Live mode: the line model against a scaled real-time clock, feeding an OPC UA server and MQTT devices.

`serve_line(...)` returns a LiveLine; `async with` starts the OPC UA server (and the MQTT client when a
broker URL is given) and a pacing task that advances SimPy to `start + (wall - wall0) * speed` every few
milliseconds (own pacing in the asyncio loop instead of simpy.rt, so the adapters run in the same thread,
in event order, without locks). Adapter writes are applied tick by tick in simulated event order; if the
adapters are slower than the clock the simulation lags (it never queues without bound). `truth` is the
ground truth of the running model. Fault hooks (faults.py) act on `skew_s`, the OPC UA server and the
MQTT client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from asyncua import ua

from twinline.simulators.engine import LineModel
from twinline.simulators.errors import LiveError, SimConfigError
from twinline.simulators.mqtt_devices import MqttDevices, device_status
from twinline.simulators.opcua_server import OpcUaLine, item_state
from twinline.simulators.truth import Truth
from twinline.uns.mqtturl import parse_mqtt_url
from twinline.uns.plant import Plant, Protocol
from twinline.uns.states import E10, Reason

log = logging.getLogger(__name__)
_TICK_S = 0.02


def system_clock() -> datetime:
    """The wall clock, for programs' top levels (domain code gets a clock passed in)."""
    return datetime.now(UTC)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LiveLine:
    """A running simulated line; use as `async with serve_line(...) as live:`."""

    def __init__(self, plant: Plant, line_path: str, *, speed: float, seed: int, port: int, mqtt_url: str | None,
                 start: datetime, clock: Callable[[], datetime], host: str, mqtt_prefix: str,
                 client_id: str | None, warmup_s: float = 0.0) -> None:
        if speed <= 0:
            raise SimConfigError("speed", f"must be positive, got {speed}")
        self.speed = speed
        self.clock = clock
        # warm-up: the line runs silently (truth only) from start - warmup_s, so it is full of WIP at `start`
        self.model = LineModel(plant, line_path, start - timedelta(seconds=warmup_s), seed)
        self.model.run_until(warmup_s)
        self.line = self.model.line
        self.start: datetime = self.model.t0
        self.skew_s: dict[str, float] = {}
        self._host = host
        self._port = port
        names = {s.station.id: [(p.name, p.unit) for p in s.p.process] for s in self.model.stations}
        self.opcua = OpcUaLine(self.line, names, host, port, clock)
        self.mqtt: MqttDevices | None = None
        if mqtt_url is not None:
            cid = client_id or f"twinline-sim-{self.line.id}-{seed}"
            self.mqtt = MqttDevices(parse_mqtt_url(mqtt_url), self.line.id, cid, prefix=mqtt_prefix)
        self._ids = [s.station.id for s in self.model.stations]
        self._opc_st = {i for i, s in enumerate(self.model.stations) if s.station.protocol is Protocol.OPCUA}
        self._mq = {i for i, s in enumerate(self.model.stations) if s.station.protocol is Protocol.MQTT}
        self._dev: dict[int, dict[str, Any]] = {i: {"device": self._ids[i], "t_ms": 0, "status": "OFF", "pass_total": 0,
                                                    "fail_total": 0, "rework_total": 0, "sku": None,
                                                    "kwh_total": 0.0, "temp_c": None} for i in self._mq}
        self._energy = [0.0 for _ in self._ids]
        self._writes: list[tuple[str, ua.DataValue]] = []
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ public
    @property
    def truth(self) -> Truth:
        return self.model.truth

    @property
    def endpoint(self) -> str:
        return str(self.opcua.endpoint)

    @property
    def port(self) -> int:
        return int(self.opcua.port)

    def sim_time(self) -> datetime:
        return self.start + timedelta(seconds=float(self.model.env.now))

    async def __aenter__(self) -> LiveLine:
        await self.start_adapters()
        self._task = asyncio.get_running_loop().create_task(self._pace(), name=f"sim-pace-{self.line.id}")
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def start_adapters(self) -> None:
        for attempt in range(5):
            self.opcua.port = self._port or _free_port(self._host)
            try:
                await self.opcua.start()
                break
            except LiveError:
                if self._port or attempt == 4:
                    raise
        if self.mqtt is not None:
            self.mqtt.start()
        now = float(self.model.env.now)
        for s in self.model.stations:  # the initial values of every station, stamped with the start time
            self._energy[s.i] = self.truth.energy_kwh[s.i]
            if s.i in self._mq:  # devices start from the warm-up's totals, as the OPC UA counters do
                self._dev[s.i].update(pass_total=s.good, fail_total=s.scrap, rework_total=s.rework, sku=s.sku,
                                      kwh_total=round(self._energy[s.i], 6))
            self.on_state(s.i, now, s.disp[0], s.disp[1], s.power)
            if s.i in self._opc_st:
                for var, value in (("GoodCount", s.good), ("ScrapCount", s.scrap), ("ReworkCount", s.rework),
                                   ("EnergyTotal", self._energy[s.i])):
                    self._opc(s.i, now, var, value)
                self._opc(s.i, now, "Product", s.sku or "")
        self.model.add_observer(self)
        await self._apply()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.opcua.stop()
        if self.mqtt is not None:
            self.mqtt.stop()

    async def run_forever(self) -> None:
        """Wait until the pacing task ends (it ends only on error or cancellation)."""
        if self._task is not None:
            await self._task

    # ------------------------------------------------------------------ pacing
    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        env = self.model.env
        wall0, sim0 = loop.time(), env.now
        while True:
            target = sim0 + (loop.time() - wall0) * self.speed
            self.model.run_until(target)
            await self._apply()
            gap = (env.peek() - target) / self.speed
            await asyncio.sleep(min(max(gap, 0.001), _TICK_S))

    async def _apply(self) -> None:
        writes, self._writes = self._writes, []
        for key, dv in writes:
            await self.opcua.write(key, dv)

    def _ts(self, t: float) -> datetime:
        return self.truth.ts(t)  # the truth's own rounding to microseconds, so both say the same instant

    def _opc(self, st: int, t: float, var: str, value: Any) -> None:
        sid = self._ids[st]
        item = self.opcua.value(sid, var, value, self._ts(t), self.skew_s.get(sid, 0.0))
        if item is not None:
            self._writes.append(item)

    def _device(self, st: int, t: float, **changes: Any) -> None:
        doc = self._dev[st]
        doc.update(changes)
        sid = self._ids[st]
        doc["t_ms"] = round((self._ts(t).timestamp() + self.skew_s.get(sid, 0.0)) * 1000)
        if self.mqtt is not None:
            self.mqtt.publish(self.mqtt.telemetry_topic(sid), doc)

    # ------------------------------------------------------------------ Observer
    def on_state(self, st: int, t: float, state: E10, reason: Reason, power_kw: float) -> None:
        if st in self._opc_st:
            self._opc(st, t, "State", state.value)
            self._opc(st, t, "Reason", reason.value)
            self._opc(st, t, "ItemState", item_state(state, reason))
            self._opc(st, t, "Power", float(power_kw))
        elif st in self._mq:
            self._device(st, t, status=device_status(state, reason))

    def on_count(self, st: int, t: float, product: str, good: int, scrap: int, rework: int) -> None:
        s = self.model.stations[st]
        if st in self._opc_st:
            if good:
                self._opc(st, t, "GoodCount", s.good)
            if scrap:
                self._opc(st, t, "ScrapCount", s.scrap)
            if rework:
                self._opc(st, t, "ReworkCount", s.rework)
        elif st in self._mq:
            self._device(st, t, pass_total=s.good, fail_total=s.scrap, rework_total=s.rework)

    def on_product(self, st: int, t: float, product: str) -> None:
        if st in self._opc_st:
            self._opc(st, t, "Product", product)
        elif st in self._mq:
            self._device(st, t, sku=product)

    def on_process(self, st: int, t: float, name: str, value: float, unit: str) -> None:
        if st in self._opc_st:
            self._opc(st, t, f"Process/{name}", float(value))
        elif st in self._mq and name == "temp_c":
            self._device(st, t, temp_c=round(value, 2))

    def on_energy(self, st: int, t: float, kwh: float, power_kw: float) -> None:
        self._energy[st] += kwh
        if st in self._opc_st:
            self._opc(st, t, "EnergyTotal", self._energy[st])
        elif st in self._mq:
            self._device(st, t, kwh_total=round(self._energy[st], 6))

    def on_alarm(self, st: int, t: float, code: str, active: bool, severity: int, text: str) -> None:
        if st in self._mq and self.mqtt is not None:
            sid = self._ids[st]
            t_ms = round((self._ts(t).timestamp() + self.skew_s.get(sid, 0.0)) * 1000)
            self.mqtt.publish(self.mqtt.alarm_topic(sid), {"device": sid, "t_ms": t_ms, "code": code,
                                                           "active": active, "severity": severity, "text": text})


def serve_line(plant: Plant, line_path: str, *, speed: float = 60.0, seed: int = 0, port: int = 0,
               mqtt_url: str | None = None, start: datetime, clock: Callable[[], datetime] = system_clock,
               host: str = "127.0.0.1", mqtt_prefix: str = "factory", client_id: str | None = None,
               warmup_s: float = 0.0) -> LiveLine:
    """A live line (not started): `async with serve_line(...) as live:` runs it until the block ends.

    `start` is the simulated time at wall-clock start (aware); `port` 0 picks a free port; `mqtt_url` None
    means no MQTT devices; `clock` gives the OPC UA ServerTimestamp; `warmup_s` runs the line silently for
    that long before `start` so it starts full of work (the truth then begins at start - warmup_s).
    """
    if start.tzinfo is None:
        raise SimConfigError("start", "naive datetime (no time zone)")
    return LiveLine(plant, line_path, speed=speed, seed=seed, port=port, mqtt_url=mqtt_url, start=start, clock=clock,
                    host=host, mqtt_prefix=mqtt_prefix, client_id=client_id, warmup_s=warmup_s)
