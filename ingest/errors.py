"""The ingest package's exception tree.

    IngestError            base of everything twinline.ingest raises on purpose
    ├── StoreUnavailable   the database cannot be reached (host / database named, never a password)
    ├── MigrationError     the schema cannot be brought to this build's version (checksum drift, flavor clash)
    └── PlantLoadError     a validated plant model could not be written (the previous model stays intact)

psycopg errors are translated into these at the seam (`raise ... from exc`); bad *input* on the stream is a
dead letter with a reason, not an exception.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error raised by twinline.ingest."""


class StoreUnavailable(IngestError):
    """The PostgreSQL / TimescaleDB server cannot be reached or refused the connection."""


class MigrationError(IngestError):
    """The schema migration was refused or failed; the database keeps its last complete migration."""


class PlantLoadError(IngestError):
    """Loading a plant model into the store failed; the transaction was rolled back."""


__all__ = ["IngestError", "MigrationError", "PlantLoadError", "StoreUnavailable"]
