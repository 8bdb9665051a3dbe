"""twinline.edge: the edge agent daemon of a line PC.

OPC UA servers (asyncua subscriptions) and MQTT devices (device-native JSON) -> normalise to the
contract (twinline.uns.envelope) -> durable SQLite WAL queue -> MQTT uplink (QoS 1, birth / will) into
the Unified Namespace, with health (status file, Prometheus metrics).

Offers: `run_agent(cfg, tagmap, *, clock, stop)` (agent), `load_config` / `parse_config` / `EdgeConfig`
(config), `load_tagmap` / `parse_tagmap` / `TagMap` (tagmap), `DurableQueue` (queue), `Normaliser`
(normalise), `propose_tagmap` (browse), `read_status` / `format_status` (health), and the exception tree
in `errors`. Modules are imported by name; this package imports nothing heavy on its own.
"""
