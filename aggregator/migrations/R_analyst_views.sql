-- Repeatable migration: re-applied whenever its rendered text changes, e.g. when
-- AGGREGATOR_MIN_GROUP_DEVICES changes. These views are the only thing analysts read (the query
-- command, the dashboard, Grafana; ARCHITECTURE.md principle 11), and {k} is baked in here and nowhere
-- else.
--
-- Suppression happens once, on the released cells: one UTC day x all six dimensions, kept only when
-- it covers at least {k} distinct devices. Every other figure is a SUM of released cells, never a
-- merge of the raw states. So any two answers (a range and the range minus a day, a roll-up and the
-- finer rows under it) differ by a sum of released cells: differencing can never expose a cell under
-- {k}. The price: a cell under {k} is missing from every total, and a device in two cells on one day
-- (two apps, an update mid-day) counts once per cell.
--
-- crash_rates also carries bounded_sessions and bounded_crashes: the cell's sessions and crashes with
-- each device counted at most {bound} times (device_daily, migration 003). Those, not the exact
-- counts, are what the differentially private path releases: one device can change them by {bound} at
-- most, which is what the noise is calibrated to (aggregator/dp.ts).
{create_view} {db}.crash_rates AS
SELECT day, app_id, app_version, device_model, os_version, country,
    active_devices, sessions, crashes, crashed_devices,
    100 * (1 - crashed_devices / active_devices) AS crash_free_devices_pct,
    if(sessions = 0, nan, 1000 * crashes / sessions) AS crashes_per_1000_sessions,
    bounded_sessions, bounded_crashes
FROM
(
    SELECT day, app_id, app_version, device_model, os_version, country,
        uniqExactMerge(devices) AS active_devices,
        uniqExactMerge(sessions) AS sessions,
        uniqExactMerge(crashes) AS crashes,
        uniqExactMerge(crashed_devices) AS crashed_devices
    FROM {db}.daily_agg
    GROUP BY day, app_id, app_version, device_model, os_version, country
) AS cells
ANY LEFT JOIN
(
    SELECT day, app_id, app_version, device_model, os_version, country,
        sum(least(device_sessions, {bound})) AS bounded_sessions,
        sum(least(device_crashes, {bound})) AS bounded_crashes
    FROM
    (
        SELECT day, app_id, app_version, device_model, os_version, country, device,
            uniqExactMerge(sessions) AS device_sessions,
            uniqExactMerge(crashes) AS device_crashes
        FROM {db}.device_daily
        GROUP BY day, app_id, app_version, device_model, os_version, country, device
    )
    GROUP BY day, app_id, app_version, device_model, os_version, country
) AS bounds USING (day, app_id, app_version, device_model, os_version, country)
WHERE active_devices >= {k};

{create_view} {db}.daily_active_devices AS
SELECT day, app_id, app_version, device_model, os_version, country, active_devices
FROM
(
    SELECT day, app_id, app_version, device_model, os_version, country,
        uniqExactMerge(devices) AS active_devices
    FROM {db}.daily_agg
    GROUP BY day, app_id, app_version, device_model, os_version, country
)
WHERE active_devices >= {k};

-- Roll-ups at the grain the dashboards show (deploy/grafana/dashboards, dashboard/): sums of the
-- released cells above (the same inner query, so each reads daily_agg itself, which the cluster DDL
-- turns into the Distributed table). They equal `npm run query -- ... --by day,app_id[,app_version]`.
{create_view} {db}.daily_active_devices_by_app AS
SELECT day, app_id, sum(cell_devices) AS active_devices
FROM
(
    SELECT day, app_id, app_version, device_model, os_version, country,
        uniqExactMerge(devices) AS cell_devices
    FROM {db}.daily_agg
    GROUP BY day, app_id, app_version, device_model, os_version, country
)
WHERE cell_devices >= {k}
GROUP BY day, app_id;

{create_view} {db}.crash_rates_by_app_version AS
SELECT day, app_id, app_version,
    active_devices, sessions, crashes, crashed_devices,
    100 * (1 - crashed_devices / active_devices) AS crash_free_devices_pct,
    if(sessions = 0, nan, 1000 * crashes / sessions) AS crashes_per_1000_sessions
FROM
(
    SELECT day, app_id, app_version,
        sum(cell_devices) AS active_devices,
        sum(cell_sessions) AS sessions,
        sum(cell_crashes) AS crashes,
        sum(cell_crashed_devices) AS crashed_devices
    FROM
    (
        SELECT day, app_id, app_version, device_model, os_version, country,
            uniqExactMerge(devices) AS cell_devices,
            uniqExactMerge(sessions) AS cell_sessions,
            uniqExactMerge(crashes) AS cell_crashes,
            uniqExactMerge(crashed_devices) AS cell_crashed_devices
        FROM {db}.daily_agg
        GROUP BY day, app_id, app_version, device_model, os_version, country
    )
    WHERE cell_devices >= {k}
    GROUP BY day, app_id, app_version
);

-- The release settings, so readers of the views need none of their own: k (the dashboard says what
-- was suppressed), the differential-privacy budget the query command enforces per analyst and UTC
-- day (daily_epsilon), the epsilon a question costs when it names none (default_epsilon), and the
-- per-device, per-day bound on sessions and crashes in a cell (contribution_bound).
{create_view} {db}.release_policy AS
SELECT toUInt32({k}) AS min_group_devices, toFloat64({daily_epsilon}) AS daily_epsilon, toFloat64({default_epsilon}) AS default_epsilon,
    toUInt32({bound}) AS contribution_bound;
