"""twinline.uns: the contract every box imports (topics, envelope, E10 states, plant model)."""
