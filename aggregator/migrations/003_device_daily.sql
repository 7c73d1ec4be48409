-- Per device and day, per cell: how many sessions and crashes it had (uniqExact states of event keys,
-- so replays change nothing, as in daily_agg). It exists to bound what one device can add to the
-- session and crash counts released with differential privacy (aggregator/private-query.ts): the
-- released views take least(count, bound) per device before summing a cell
-- (AGGREGATOR_DP_CONTRIBUTION_BOUND, in R_analyst_views.sql), so one phone that crashes a thousand
-- times counts the bound at most. `device` is sipHash64 of the daily
-- token (it changes every day, policy 1.1.4), no finer key than daily_agg's states already hold.
-- Only session_start and crash events are kept; rows exist from this migration on (a replay of the
-- events topic fills earlier days within its retention).
CREATE TABLE IF NOT EXISTS {db}.device_daily
(
    day Date,
    app_id String,
    app_version String,
    device_model String,
    os_version String,
    country String,
    device UInt64,
    sessions AggregateFunction(uniqExact, FixedString(16)),
    crashes AggregateFunction(uniqExact, FixedString(16))
)
ENGINE = AggregatingMergeTree()
PARTITION BY day
ORDER BY (app_id, day, app_version, device_model, os_version, country, device);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.device_daily_mv TO {db}.device_daily AS
SELECT
    day,
    app_id,
    app_version,
    device_model,
    os_version,
    country,
    sipHash64(daily_token) AS device,
    uniqExactStateIf(event_key, kind = 'session_start') AS sessions,
    uniqExactStateIf(event_key, kind = 'crash') AS crashes
FROM {db}.facts_in
WHERE kind IN ('session_start', 'crash')
GROUP BY day, app_id, app_version, device_model, os_version, country, device;
