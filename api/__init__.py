"""twinline.api: the HTTP API, dashboard and reports — not part of this build yet (``twinline api`` says so)."""
