"""twinline.cli."""
