"""twinline.twin."""
