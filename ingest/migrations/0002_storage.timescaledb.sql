-- twinline store, migration 0002 (TimescaleDB): the six event tables become hypertables.
-- 1-day chunks; compressed (columnstore) after 7 days, segmented by asset and ordered by ts so a
-- station's history decompresses alone; process samples (the bulk) are dropped after 400 days.
-- dead_letter and envelope_ledger stay plain tables (keyed lookups, not time-series reads).

SELECT create_hypertable('state_event', by_range('ts', INTERVAL '1 day'));
SELECT create_hypertable('count_event', by_range('ts', INTERVAL '1 day'));
SELECT create_hypertable('process_sample', by_range('ts', INTERVAL '1 day'));
SELECT create_hypertable('product_event', by_range('ts', INTERVAL '1 day'));
SELECT create_hypertable('alarm_event', by_range('ts', INTERVAL '1 day'));
SELECT create_hypertable('energy_sample', by_range('ts', INTERVAL '1 day'));

CREATE INDEX state_event_asset_ts ON state_event (asset, ts);
CREATE INDEX count_event_asset_ts ON count_event (asset, ts);
CREATE INDEX process_sample_asset_ts ON process_sample (asset, ts);
CREATE INDEX product_event_asset_ts ON product_event (asset, ts);
CREATE INDEX alarm_event_asset_ts ON alarm_event (asset, ts);
CREATE INDEX energy_sample_asset_ts ON energy_sample (asset, ts);

ALTER TABLE state_event SET (timescaledb.compress, timescaledb.compress_segmentby = 'asset',
                             timescaledb.compress_orderby = 'ts');
ALTER TABLE count_event SET (timescaledb.compress, timescaledb.compress_segmentby = 'asset',
                             timescaledb.compress_orderby = 'ts');
ALTER TABLE process_sample SET (timescaledb.compress, timescaledb.compress_segmentby = 'asset',
                                timescaledb.compress_orderby = 'ts');
ALTER TABLE product_event SET (timescaledb.compress, timescaledb.compress_segmentby = 'asset',
                               timescaledb.compress_orderby = 'ts');
ALTER TABLE alarm_event SET (timescaledb.compress, timescaledb.compress_segmentby = 'asset',
                             timescaledb.compress_orderby = 'ts');
ALTER TABLE energy_sample SET (timescaledb.compress, timescaledb.compress_segmentby = 'asset',
                               timescaledb.compress_orderby = 'ts');

SELECT add_compression_policy('state_event', INTERVAL '7 days');
SELECT add_compression_policy('count_event', INTERVAL '7 days');
SELECT add_compression_policy('process_sample', INTERVAL '7 days');
SELECT add_compression_policy('product_event', INTERVAL '7 days');
SELECT add_compression_policy('alarm_event', INTERVAL '7 days');
SELECT add_compression_policy('energy_sample', INTERVAL '7 days');

SELECT add_retention_policy('process_sample', INTERVAL '400 days');
