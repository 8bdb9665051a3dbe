"""twinline.edge."""
