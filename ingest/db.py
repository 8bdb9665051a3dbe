"""Connecting to the store: one helper that turns connection failures into StoreUnavailable.

The message names the host, port and database so an operator knows what to fix, and never the password
(psycopg's own message may echo the conninfo; we build ours from the parsed parts instead).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import conninfo

from twinline.ingest.errors import StoreUnavailable


def describe_dsn(dsn: str) -> str:
    """`user@host:port/dbname` of a DSN (URL or key=value form), without any password."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    port = str(parts.get("port") or 5432)
    user = parts.get("user")
    who = f"{user}@" if user else ""
    return f"{who}{host}:{port}/{parts.get('dbname') or user or ''}"


def connect(dsn: str, *, autocommit: bool = False, connect_timeout_s: float = 10.0,
            **kwargs: Any) -> psycopg.Connection[tuple[Any, ...]]:
    """Open a psycopg connection; unreachable server / bad DSN / refused login -> StoreUnavailable."""
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=max(1, round(connect_timeout_s)), **kwargs)
    except psycopg.ProgrammingError as exc:  # malformed DSN: say so without echoing it
        raise StoreUnavailable(f"invalid database DSN ({describe_dsn(dsn)})") from exc
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL at {describe_dsn(dsn)}: {_first_line(exc, dsn)}") from exc


def _first_line(exc: BaseException, dsn: str) -> str:
    """The first line of the driver's message, with the password scrubbed should it appear."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    try:
        password = conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text


__all__ = ["connect", "describe_dsn"]
