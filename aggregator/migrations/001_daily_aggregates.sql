-- Raw fact rows arrive here and are never stored: the Null engine keeps nothing, it only feeds the
-- materialized view below. Only non-personal columns exist (policy 1.1.4): grouping dimensions, the
-- event kind and two 16-byte keyed hashes (daily token, event key).
CREATE TABLE IF NOT EXISTS {db}.facts_in
(
    day Date,
    app_id String,
    app_version String,
    device_model String,
    os_version String,
    country String,
    kind String,
    daily_token FixedString(16),
    event_key FixedString(16)
)
ENGINE = Null;

-- One row of exact distinct-count states per UTC day x dimensions. A uniqExact state is the set of the
-- keys it has seen, and merging two states is set union: inserting the same facts twice (a replay after
-- a crash, a retried insert, a rebalance) leaves every count unchanged. That, not bookkeeping, is what
-- makes the aggregator exact across restarts (aggregator/DESIGN.md). One partition per day, so
-- retention drops whole days.
CREATE TABLE IF NOT EXISTS {db}.daily_agg
(
    day Date,
    app_id String,
    app_version String,
    device_model String,
    os_version String,
    country String,
    devices AggregateFunction(uniqExact, FixedString(16)),
    sessions AggregateFunction(uniqExact, FixedString(16)),
    crashes AggregateFunction(uniqExact, FixedString(16)),
    crashed_devices AggregateFunction(uniqExact, FixedString(16))
)
ENGINE = AggregatingMergeTree()
PARTITION BY day
ORDER BY (app_id, day, app_version, device_model, os_version, country);

-- uniqExactStateIf (State, then If) keeps the column type AggregateFunction(uniqExact, FixedString(16))
-- on 18.16 and on 26.x alike; uniqExactIfState would carry the If in the type on 18.16.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.daily_agg_mv TO {db}.daily_agg AS
SELECT
    day,
    app_id,
    app_version,
    device_model,
    os_version,
    country,
    uniqExactState(daily_token) AS devices,
    uniqExactStateIf(event_key, kind = 'session_start') AS sessions,
    uniqExactStateIf(event_key, kind = 'crash') AS crashes,
    uniqExactStateIf(daily_token, kind = 'crash') AS crashed_devices
FROM {db}.facts_in
GROUP BY day, app_id, app_version, device_model, os_version, country;
