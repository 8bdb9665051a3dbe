-- twinline store, migration 0002 (plain PostgreSQL): storage layout of the event tables.
-- Event rows arrive roughly in time order, so a BRIN index on ts is tiny and prunes time ranges well;
-- the btree on (asset, ts) serves "one station over a period", the twin's main read.

CREATE INDEX state_event_ts_brin ON state_event USING brin (ts);
CREATE INDEX count_event_ts_brin ON count_event USING brin (ts);
CREATE INDEX process_sample_ts_brin ON process_sample USING brin (ts);
CREATE INDEX product_event_ts_brin ON product_event USING brin (ts);
CREATE INDEX alarm_event_ts_brin ON alarm_event USING brin (ts);
CREATE INDEX energy_sample_ts_brin ON energy_sample USING brin (ts);

CREATE INDEX state_event_asset_ts ON state_event (asset, ts);
CREATE INDEX count_event_asset_ts ON count_event (asset, ts);
CREATE INDEX process_sample_asset_ts ON process_sample (asset, ts);
CREATE INDEX product_event_asset_ts ON product_event (asset, ts);
CREATE INDEX alarm_event_asset_ts ON alarm_event (asset, ts);
CREATE INDEX energy_sample_asset_ts ON energy_sample (asset, ts);
