"""twinline.ingest."""
