"""Fault injection on a running LiveLine, for edge-agent robustness tests and demos.

- `stop_opcua` / `restart_opcua`: drop the line's OPC UA server and bring it back on the same endpoint
  (the simulation keeps running; after the restart every node gets its latest value again);
- `freeze` / `unfreeze`: an OPC UA variable stops changing (stale value) while the simulation goes on;
- `publish_malformed`: garbage on an MQTT device's telemetry topic (not JSON, wrong types, missing fields,
  empty payload), one message per kind, returns the number published;
- `skew_clock`: a station's device clock runs `offset_s` ahead (negative: behind) — OPC UA SourceTimestamps
  and MQTT `t_ms`; the ground truth keeps true time;
- `alarm_burst`: `n` alarms raised and cleared on a station at the current simulated instant (MQTT alarm topic for
  device stations; always counted in the truth).
"""

from __future__ import annotations

from twinline.simulators.errors import LiveError
from twinline.simulators.live import LiveLine

MALFORMED: dict[str, bytes] = {
    "not_json": b"\x00\xffnot json{",
    "wrong_types": b'{"device": 42, "t_ms": "yesterday", "status": 7, "pass_total": "many"}',
    "missing_fields": b'{"status": "RUN"}',
    "empty": b"",
}


async def stop_opcua(live: LiveLine) -> None:
    await live.opcua.stop()


async def restart_opcua(live: LiveLine) -> None:
    if not live.opcua.running:
        await live.opcua.start()


def freeze(live: LiveLine, station: str, var: str) -> None:
    live.opcua.frozen.add(live.opcua.node_id(_station(live, station), var))


def unfreeze(live: LiveLine, station: str, var: str) -> None:
    live.opcua.frozen.discard(live.opcua.node_id(_station(live, station), var))


def publish_malformed(live: LiveLine, station: str, kinds: tuple[str, ...] = tuple(MALFORMED)) -> int:
    if live.mqtt is None:
        raise LiveError(f"line {live.line.path} has no MQTT client (no broker URL given)")
    topic = live.mqtt.telemetry_topic(_station(live, station))
    for kind in kinds:
        live.mqtt.publish_raw(topic, MALFORMED[kind])
    return len(kinds)


def skew_clock(live: LiveLine, station: str, offset_s: float) -> None:
    live.skew_s[_station(live, station)] = offset_s


def alarm_burst(live: LiveLine, station: str, n: int = 50, severity: int = 800) -> None:
    sid = _station(live, station)
    model_station = next(s for s in live.model.stations if s.station.id == sid)
    for k in range(n):
        code = f"{sid}.BURST{k:03d}"
        model_station.alarm(code, True, severity, f"injected alarm {k}")
        model_station.alarm(code, False, severity, f"injected alarm {k} cleared")


def _station(live: LiveLine, station: str) -> str:
    ids = [s.id for s in live.line.stations]
    if station not in ids:
        raise LiveError(f"{station!r} is not a station of {live.line.path} ({', '.join(ids)})")
    return station
