"""twinline.simulators."""
