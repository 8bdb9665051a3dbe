"""twinline.api."""
