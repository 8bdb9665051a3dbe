-- twinline store, migration 0001: the plant model and every sample kind, plus dead letters.
-- Written by ingest, read by twin (which never imports ingest): the comments are the contract.
-- Times are timestamptz (UTC); quantities carry their unit in the column name.

CREATE TABLE plant_model (
    version     integer PRIMARY KEY,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL,
    sha256      text NOT NULL,
    body        text NOT NULL
);
COMMENT ON TABLE plant_model IS 'Every loaded plant model YAML (twinline.uns.plant), newest version is current.';

CREATE TABLE asset (
    path            text PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('site', 'area', 'line', 'station')),
    site            text NOT NULL,
    area            text,
    line            text,
    station         text,
    name            text NOT NULL,
    line_type       text,
    position        integer,
    key_process     boolean NOT NULL DEFAULT false,
    digital_control boolean NOT NULL DEFAULT false,
    networked       boolean NOT NULL DEFAULT true,
    active          boolean NOT NULL DEFAULT true,
    attrs           jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE asset IS 'ISA-95 hierarchy site/area/line/station from the plant model; removed assets stay with active=false.';
COMMENT ON COLUMN asset.path IS 'site/area/line/station, the same path as in UNS topics.';
COMMENT ON COLUMN asset.position IS 'Order of the station on its line (1 = first).';

CREATE TABLE product (
    sku         text PRIMARY KEY,
    name        text NOT NULL,
    family      text,
    attrs       jsonb NOT NULL DEFAULT '{}'::jsonb,
    active      boolean NOT NULL DEFAULT true
);
COMMENT ON TABLE product IS 'Products (SKU) from the plant model.';

CREATE TABLE ideal_cycle (
    asset           text NOT NULL REFERENCES asset (path),
    product         text NOT NULL REFERENCES product (sku),
    ideal_cycle_s   double precision NOT NULL CHECK (ideal_cycle_s > 0),
    recipe          text,
    PRIMARY KEY (asset, product)
);
COMMENT ON TABLE ideal_cycle IS 'Ideal (theoretical) cycle time per unit of a product on a station: ISO 22400 PRI, E79 THT.';

CREATE TABLE route_step (
    line        text NOT NULL REFERENCES asset (path),
    product     text NOT NULL REFERENCES product (sku),
    step        integer NOT NULL,
    station     text NOT NULL REFERENCES asset (path),
    PRIMARY KEY (line, product, step)
);
COMMENT ON TABLE route_step IS 'Route of a product through the stations of a line, in order.';

CREATE TABLE state_event (
    ts          timestamptz NOT NULL,
    asset       text NOT NULL,
    state       text NOT NULL CHECK (state IN ('PRD', 'SBY', 'ENG', 'SDT', 'UDT', 'NST')),
    reason      text NOT NULL,
    quality     text NOT NULL DEFAULT 'good',
    source      text NOT NULL,
    seq         bigint NOT NULL
);
COMMENT ON TABLE state_event IS 'SEMI E10 state entries: the station is in (state, reason) from ts until its next row.';

CREATE TABLE count_event (
    ts          timestamptz NOT NULL,
    asset       text NOT NULL,
    product     text,
    good        integer NOT NULL DEFAULT 0 CHECK (good >= 0),
    scrap       integer NOT NULL DEFAULT 0 CHECK (scrap >= 0),
    rework      integer NOT NULL DEFAULT 0 CHECK (rework >= 0),
    quality     text NOT NULL DEFAULT 'good',
    source      text NOT NULL,
    seq         bigint NOT NULL
);
COMMENT ON TABLE count_event IS 'Units completed since the previous row of the station (increments): good, scrap, rework, per product.';

CREATE TABLE process_sample (
    ts          timestamptz NOT NULL,
    asset       text NOT NULL,
    name        text NOT NULL,
    value       double precision NOT NULL,
    unit        text NOT NULL,
    quality     text NOT NULL DEFAULT 'good',
    status_code bigint,
    source      text NOT NULL,
    seq         bigint NOT NULL
);
COMMENT ON TABLE process_sample IS 'Process values; quality keeps the OPC UA status (bad / uncertain are never stored as good).';

CREATE TABLE product_event (
    ts          timestamptz NOT NULL,
    asset       text NOT NULL,
    product     text NOT NULL,
    recipe      text,
    source      text NOT NULL,
    seq         bigint NOT NULL
);
COMMENT ON TABLE product_event IS 'The station switched to a product (SKU) / recipe at ts.';

CREATE TABLE alarm_event (
    ts          timestamptz NOT NULL,
    asset       text NOT NULL,
    code        text NOT NULL,
    active      boolean NOT NULL,
    severity    integer NOT NULL,
    text        text NOT NULL DEFAULT '',
    source      text NOT NULL,
    seq         bigint NOT NULL
);
COMMENT ON TABLE alarm_event IS 'Alarm raised (active) or cleared.';

CREATE TABLE energy_sample (
    ts          timestamptz NOT NULL,
    asset       text NOT NULL,
    energy_kwh  double precision NOT NULL CHECK (energy_kwh >= 0),
    power_kw    double precision,
    quality     text NOT NULL DEFAULT 'good',
    source      text NOT NULL,
    seq         bigint NOT NULL
);
COMMENT ON TABLE energy_sample IS 'Energy used since the previous row of the station (kWh increment).';

CREATE TABLE envelope_ledger (
    source      text NOT NULL,
    seq         bigint NOT NULL,
    topic       text NOT NULL,
    samples     integer NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, seq)
);
COMMENT ON TABLE envelope_ledger IS 'One row per stored envelope, committed with its samples: a re-delivered (source, seq) is recognised here, so sample rows are written with plain COPY.';

CREATE TABLE dead_letter (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic       text NOT NULL,
    payload     bytea NOT NULL,
    field       text NOT NULL DEFAULT '',
    reason      text NOT NULL,
    source      text,
    seq         bigint
);
COMMENT ON TABLE dead_letter IS 'Input that did not fit, with the raw bytes and the reason; never silently dropped.';

CREATE TABLE edge_agent (
    agent       text PRIMARY KEY,
    line        text NOT NULL,
    online      boolean NOT NULL,
    changed_at  timestamptz NOT NULL,
    sources     jsonb NOT NULL DEFAULT '[]'::jsonb,
    stations    jsonb NOT NULL DEFAULT '[]'::jsonb
);
COMMENT ON TABLE edge_agent IS 'Edge agents as announced by their birth / death messages.';

CREATE TABLE ingest_worker (
    worker      text PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL,
    metrics     jsonb NOT NULL DEFAULT '{}'::jsonb
);
COMMENT ON TABLE ingest_worker IS 'Heartbeat and counters of each ingest worker, for twinline ingest status.';
