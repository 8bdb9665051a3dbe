"""twinline.uns: the contract every box imports — pure Python, no I/O, no heavy dependencies.

- ``topics``    the Unified Namespace: ``twinline/v1/{site}/{area}/{line}/{station}/{channel}``, edge
                birth / death topics, the ``$share`` subscription
- ``envelope``  the versioned envelope (source, per-source seq, edge time, many samples) and its six
                sample kinds; JSON / MessagePack; decode errors name the field
- ``states``    SEMI E10 states with reasons; PackML and OPC UA Machinery mappings
- ``plant`` / ``calendar``  the plant model (ISA-95 YAML) and its shift calendar
- ``settings`` / ``mqtturl``  one validated settings object per program; broker URLs
- ``errors``    the package's exception tree (ContractError, PlantModelError, SettingsError)
"""
