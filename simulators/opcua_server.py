"""The OPC UA server of one simulated line (asyncua), in the OPC UA for Machinery style.

ADDRESS SPACE CONTRACT (the edge agent codes against exactly this):
- namespace URI `urn:twinline:sim:<line id>`; every node id is a string id in that namespace;
- Objects / `<line>` (object, `ns=<idx>;s=<line>`) / `<station>` (object, `ns=<idx>;s=<line>.<station>`),
  one station object per station with `protocol: opcua` (MQTT stations are devices, not on this server);
- under each station, variables `ns=<idx>;s=<line>.<station>.<Var>` with browse name `<Var>`:
  `State` (String, SEMI E10 code), `Reason` (String, E10 reason), `ItemState` (String, OPC 40001-1
  MachineryItemState: Executing / NotExecuting / OutOfService / NotAvailable), `Product` (String SKU, empty
  before the first product), `GoodCount` / `ScrapCount` / `ReworkCount` (UInt64, cumulative since the
  simulation started, warm-up included), `EnergyTotal` (Double, cumulative kWh), `Power` (Double, kW);
- a `Process` object (`s=<line>.<station>.Process`) holding one Double variable per process value,
  `s=<line>.<station>.Process/<name>` with browse name `<name>`; its unit is the String PROPERTY
  `EngineeringUnits` (`s=<line>.<station>.Process/<name>.EngineeringUnits`, e.g. "mJ/cm2"). Until the first
  value a process variable has status BadWaitingForInitialData.
Every write carries SourceTimestamp = simulated event time (UTC, shifted by a device clock skew fault) and
ServerTimestamp = the wall clock. Writes happen in simulated event order, so a changeover's Product (and its
State / Reason) is written before the first count of the new product.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from asyncua import ua
from asyncua.server.server import Server
from asyncua.ua.status_codes import StatusCodes

from twinline.simulators.errors import LiveError
from twinline.uns.plant import Line, Protocol
from twinline.uns.states import E10, Reason

log = logging.getLogger(__name__)

VARS: dict[str, ua.VariantType] = {
    "State": ua.VariantType.String, "Reason": ua.VariantType.String, "ItemState": ua.VariantType.String,
    "Product": ua.VariantType.String, "GoodCount": ua.VariantType.UInt64, "ScrapCount": ua.VariantType.UInt64,
    "ReworkCount": ua.VariantType.UInt64, "EnergyTotal": ua.VariantType.Double, "Power": ua.VariantType.Double,
}


def item_state(state: E10, reason: Reason) -> str:
    """E10 -> OPC 40001-1 MachineryItemState (setup is Executing in operation mode Setup)."""
    if state is E10.PRD or (state is E10.SDT and reason is Reason.SETUP):
        return "Executing"
    if state in (E10.SBY, E10.ENG):
        return "NotExecuting"
    if state is E10.NST:
        return "NotAvailable"
    return "OutOfService"


def _nid(key: str, ns: int) -> ua.NodeId:
    return ua.NodeId(key, ns)  # type: ignore[arg-type]  # asyncua's NewType aliases of str / int


def _dt(ts: datetime) -> ua.DateTime:
    return ts  # type: ignore[return-value]  # ua.DateTime is an alias of datetime


def namespace_uri(line_id: str) -> str:
    return f"urn:twinline:sim:{line_id}"


class OpcUaLine:
    """Owns the asyncua Server of one line; `write(station, var, value, source_ts)` in event order."""

    def __init__(self, line: Line, process_names: dict[str, list[tuple[str, str]]], host: str, port: int,
                 clock: Callable[[], datetime]) -> None:
        self.line = line
        self.process_names = process_names  # station id -> [(name, unit)]
        self.host = host
        self.port = port
        self.clock = clock
        self.server: Server | None = None
        self.ns = 0
        self.current: dict[str, ua.DataValue] = {}  # the latest value of every node, re-written after a restart
        self.frozen: set[str] = set()
        self.stations = [s for s in line.stations if s.protocol is Protocol.OPCUA]

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/twinline/{self.line.id}"

    @property
    def running(self) -> bool:
        return self.server is not None

    def node_id(self, station: str, var: str) -> str:
        return f"{self.line.id}.{station}.{var}"

    async def start(self) -> None:
        server = Server()
        try:
            await server.init()
            server.set_endpoint(self.endpoint)
            server.set_server_name(f"twinline simulator {self.line.path}")
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            self.ns = await server.register_namespace(namespace_uri(self.line.id))
            await self._build(server)
            await server.start()
        except OSError as exc:
            raise LiveError(f"OPC UA server for {self.line.path} cannot listen on {self.endpoint}: {exc}") from exc
        self.server = server
        for key, dv in self.current.items():
            await server.write_attribute_value(_nid(key, self.ns), dv)
        log.info("OPC UA server for %s listening on %s", self.line.path, self.endpoint)

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.stop()
            log.info("OPC UA server for %s stopped", self.line.path)

    async def _build(self, server: Server) -> None:
        ns, line_id = self.ns, self.line.id
        line_obj = await server.nodes.objects.add_object(_nid(line_id, ns), ua.QualifiedName(line_id, ns))
        for st in self.stations:
            obj = await line_obj.add_object(_nid(f"{line_id}.{st.id}", ns), ua.QualifiedName(st.id, ns))
            for var, vtype in VARS.items():
                initial = 0.0 if vtype is ua.VariantType.Double else 0 if vtype is ua.VariantType.UInt64 else ""
                await obj.add_variable(_nid(self.node_id(st.id, var), ns), ua.QualifiedName(var, ns),
                                       ua.Variant(initial, vtype), varianttype=vtype)
            proc = await obj.add_object(_nid(f"{line_id}.{st.id}.Process", ns), ua.QualifiedName("Process", ns))
            for name, unit in self.process_names.get(st.id, []):
                key = self.node_id(st.id, f"Process/{name}")
                node = await proc.add_variable(_nid(key, ns), ua.QualifiedName(name, ns),
                                               ua.Variant(0.0, ua.VariantType.Double),
                                               varianttype=ua.VariantType.Double)
                await node.add_property(_nid(f"{key}.EngineeringUnits", ns), ua.QualifiedName("EngineeringUnits", ns),
                                        ua.Variant(unit, ua.VariantType.String), varianttype=ua.VariantType.String)
                if key not in self.current:
                    await server.write_attribute_value(node.nodeid, ua.DataValue(
                        StatusCode=ua.StatusCode(ua.UInt32(StatusCodes.BadWaitingForInitialData))))

    def value(self, station: str, var: str, value: Any, source_ts: datetime, skew_s: float = 0.0) -> \
            tuple[str, ua.DataValue] | None:
        """Record the new value of a node; returns what to write, or None when the node is frozen."""
        key = self.node_id(station, var)
        if key in self.frozen:
            return None
        vtype = VARS.get(var, ua.VariantType.Double)
        dv = ua.DataValue(Value=ua.Variant(value, vtype), SourceTimestamp=_dt(source_ts + timedelta(seconds=skew_s)),
                          ServerTimestamp=_dt(self.clock()))
        self.current[key] = dv
        return key, dv

    async def write(self, key: str, dv: ua.DataValue) -> None:
        if self.server is not None:
            await self.server.write_attribute_value(_nid(key, self.ns), dv)
