"""twinline.cli: the composition root — the ``twinline`` command (``main``), one module per verb group,
the embedded fallbacks (``embedded``) and ``demo``; the only package that imports every box."""
