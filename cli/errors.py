"""CLI errors: a user's mistake or an unavailable service, shown as one line, never a traceback."""

from __future__ import annotations


class CliError(Exception):
    """Printed as `twinline: <message>` with `exit_code` (2 = usage / not available, 1 = failed)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
