"""twinline.twin: the read side and the pure KPI engine.

Pure engine (no I/O, no clock; frames and explicit parameters in, frozen results out):

- ``timemodel``  ISO 22400 time elements from E10 state intervals and the calendar (KPI.md 1)
- ``episodes``   failure episodes and downtime events (KPI.md 2, 3)
- ``iso22400``   station KPIs: A, E, QR, OEE, NEE, ratios, MTBF/MTTR, FPY (KPI.md 2)
- ``e10``        SEMI E10 metrics and E79 OEE (KPI.md 3)
- ``lines``      line OEE and line yield (KPI.md 4)
- ``changeover`` SMED changeovers, matrix, mix-adjusted reduction (KPI.md 5)
- ``plan``       plan KPIs, energy and carbon, maturity banding (KPI.md 6-8)
- ``losses``     loss tree, top reasons, bottleneck (KPI.md 2)
- ``errors``     the package's exception tree

Read side: ``store`` (the SQL read model over ingest's schema: state intervals, sums per window or shift,
stale-telemetry gaps, rollup refresh), ``service`` (``compute``: KPIs of a station, line, area or site for a
period or per shift), ``planread`` (``plan_kpis``: baseline vs current), ``linetypes`` (wafer, panel and
laptop figures), ``results`` (the frozen result types), ``live`` (``LiveTwin`` and ``render``).
"""
