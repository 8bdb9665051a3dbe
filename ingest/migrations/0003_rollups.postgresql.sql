-- twinline store, migration 0003 (plain PostgreSQL): hourly rollups as ordinary views.
-- date_trunc(..., 'UTC') buckets by UTC hour whatever the session time zone, exactly as time_bucket does
-- on TimescaleDB, so both flavors return the same rows.

CREATE VIEW count_hourly AS
SELECT date_trunc('hour', ts, 'UTC') AS bucket,
       asset,
       product,
       sum(good)::bigint AS good,
       sum(scrap)::bigint AS scrap,
       sum(rework)::bigint AS rework,
       count(*) AS events
FROM count_event
GROUP BY 1, asset, product;

CREATE VIEW energy_hourly AS
SELECT date_trunc('hour', ts, 'UTC') AS bucket,
       asset,
       sum(energy_kwh) AS energy_kwh,
       count(*) AS samples
FROM energy_sample
GROUP BY 1, asset;

COMMENT ON VIEW count_hourly IS 'Hourly (UTC hour) sums of count_event per station and product. Same columns and results on both flavors: a real-time continuous aggregate on TimescaleDB, a plain view elsewhere.';
COMMENT ON COLUMN count_hourly.bucket IS 'Start of the UTC hour.';
COMMENT ON COLUMN count_hourly.asset IS 'Station path (asset.path).';
COMMENT ON COLUMN count_hourly.product IS 'SKU the units belong to (NULL when the source did not say).';
COMMENT ON COLUMN count_hourly.good IS 'Good units completed in the hour.';
COMMENT ON COLUMN count_hourly.scrap IS 'Scrapped units in the hour.';
COMMENT ON COLUMN count_hourly.rework IS 'Units sent to rework in the hour.';
COMMENT ON COLUMN count_hourly.events IS 'Number of count_event rows summed.';

COMMENT ON VIEW energy_hourly IS 'Hourly (UTC hour) energy per station from energy_sample increments. Same columns and results on both flavors.';
COMMENT ON COLUMN energy_hourly.bucket IS 'Start of the UTC hour.';
COMMENT ON COLUMN energy_hourly.asset IS 'Station path (asset.path).';
COMMENT ON COLUMN energy_hourly.energy_kwh IS 'Energy used in the hour, kWh (sum of the increments).';
COMMENT ON COLUMN energy_hourly.samples IS 'Number of energy_sample rows summed.';
