"""Browse mode: walk a server's Objects folder and propose a tag map (printed as YAML).

Recognises the twinline simulator layout (Objects / <line> / <station> / State, Reason, Product,
GoodCount, ScrapCount, ReworkCount, EnergyTotal, Power, Process/<name>) and OPC UA Machinery's
ItemState; any other numeric variable is proposed as a process value (unit from its EngineeringUnits
property or a `Unit` / `<name>Unit` string variable beside it; empty when unknown - fill it in).
Node ids are written in the `nsu=<namespace uri>;...` form so they survive namespace index changes.
"""

from __future__ import annotations

from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError

from twinline.edge.errors import SourceError
from twinline.uns.topics import AssetPath

KNOWN: dict[str, dict[str, Any]] = {
    "State": {"kind": "state", "field": "state"},
    "Reason": {"kind": "state", "field": "reason"},
    "Product": {"kind": "product"},
    "GoodCount": {"kind": "count", "field": "good"},
    "ScrapCount": {"kind": "count", "field": "scrap"},
    "ReworkCount": {"kind": "count", "field": "rework"},
    "EnergyTotal": {"kind": "energy", "field": "total_kwh"},
    "Power": {"kind": "energy", "field": "power_kw"},
}
_NUMERIC = {ua.VariantType.Double, ua.VariantType.Float, ua.VariantType.Int16, ua.VariantType.Int32,
            ua.VariantType.Int64, ua.VariantType.UInt16, ua.VariantType.UInt32, ua.VariantType.UInt64}


async def propose_tagmap(endpoint: str, line: AssetPath, source: str, *, username: str | None = None,
                         password: str | None = None, max_depth: int = 5, timeout_s: float = 10.0) -> dict[str, Any]:
    """A tag map dict {"version": 1, "opcua": {source: [...]}} for the stations found under Objects."""
    client = Client(endpoint, timeout=timeout_s)
    if username:
        client.set_user(username)
        if password is not None:
            client.set_password(password)
    try:
        await client.connect()
    except (OSError, TimeoutError, UaError) as exc:
        raise SourceError(f"cannot connect to {endpoint}: {exc!r}") from exc
    try:
        uris = await client.get_namespace_array()
        entries: list[dict[str, Any]] = []
        for obj in await client.nodes.objects.get_children():
            if obj.nodeid.NamespaceIndex == 0:
                continue
            await _walk(obj, [], entries, uris, line, max_depth)
        return {"version": 1, "opcua": {source: entries}}
    finally:
        await client.disconnect()


def _node_text(node: Node, uris: list[str]) -> str:
    nid = node.nodeid
    text = nid.to_string()
    rest = text.split(";", 1)[1] if text.startswith("ns=") else text
    return f"nsu={uris[nid.NamespaceIndex]};{rest}"


async def _walk(node: Node, path: list[str], out: list[dict[str, Any]], uris: list[str], line: AssetPath,
                depth: int) -> None:
    name = (await node.read_browse_name()).Name
    cls = await node.read_node_class()
    if cls == ua.NodeClass.Variable:
        entry = await _propose(node, name, path, uris, line)
        if entry is not None:
            out.append(entry)
        return
    if cls != ua.NodeClass.Object or depth <= 0:
        return
    for child in await node.get_children(refs=ObjectIds.HierarchicalReferences):
        await _walk(child, [*path, name], out, uris, line, depth - 1)


async def _propose(node: Node, name: str, path: list[str], uris: list[str], line: AssetPath) -> dict[str, Any] | None:
    # station = the object holding the variable; a `Process` folder in between is skipped
    parents = [p for p in path if p != "Process"]
    if not parents:
        return None
    station = str(AssetPath(line.site, line.area, line.line, parents[-1]))
    entry: dict[str, Any] = {"node": _node_text(node, uris), "station": station}
    if "Process" not in path and name in KNOWN:
        return {**entry, **KNOWN[name]}
    if name == "ItemState":
        return {**entry, "kind": "state", "field": "item_state", "_note": "use instead of State/Reason if preferred"}
    try:
        vtype = await node.read_data_type_as_variant_type()
    except UaError:
        return None
    if vtype not in _NUMERIC or name.lower().endswith("unit"):
        return None
    return {**entry, "kind": "process", "name": name, "unit": await _unit(node, name)}


async def _unit(node: Node, name: str) -> str:
    for child in await node.get_children():
        child_name = (await child.read_browse_name()).Name
        if child_name == "EngineeringUnits":
            value = await child.read_value()
            if isinstance(value, str):
                return value
            text = getattr(getattr(value, "DisplayName", None), "Text", None)
            return str(text or "")
        if child_name in ("Unit", "EngineeringUnit"):
            return str(await child.read_value())
    parent = await node.get_parent()
    if parent is not None:
        for sibling in await parent.get_children():
            if (await sibling.read_browse_name()).Name in (f"{name}Unit", f"{name}_unit", f"{name}.Unit"):
                return str(await sibling.read_value())
    return ""


__all__ = ["propose_tagmap"]
