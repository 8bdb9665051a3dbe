"""twinline.ingest: the write side; owns the database schema.

- ``migrate`` (+ ``migrations/``)  ordered SQL migrations, TimescaleDB or plain PostgreSQL detected
- ``writer`` / ``rows``  the idempotent batch writer (envelope ledger + binary COPY); the one place that
  maps contract objects to rows
- ``service`` / ``subscriber`` / ``validate`` / ``batch`` / ``registry``  ``twinline ingest run``: MQTT 5
  shared subscription, acks after commit, dead letters with reasons
- ``backfill``  history through the same validation and writer
- ``plant_store`` / ``status`` / ``metrics``  plant loading, ``db status``, worker metrics
- ``errors``  the package's exception tree
"""
