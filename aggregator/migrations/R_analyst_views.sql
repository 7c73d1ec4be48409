-- Repeatable migration: re-applied whenever its rendered text changes, e.g. when
-- AGGREGATOR_MIN_GROUP_DEVICES changes. The k-anonymity threshold {k} is baked into the views at
-- migration time: groups covering fewer than {k} distinct devices are left out, so a rare
-- model x country x version combination cannot single anyone out. Rows are the finest grain (one UTC
-- day x all dimensions); for roll-ups use `npm run query`, which merges the states exactly and applies
-- the threshold to the rolled-up groups instead.
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

{create_view} {db}.crash_rates AS
SELECT day, app_id, app_version, device_model, os_version, country,
    active_devices, sessions, crashes, crashed_devices,
    100 * (1 - crashed_devices / active_devices) AS crash_free_devices_pct,
    if(sessions = 0, nan, 1000 * crashes / sessions) AS crashes_per_1000_sessions
FROM
(
    SELECT day, app_id, app_version, device_model, os_version, country,
        uniqExactMerge(devices) AS active_devices,
        uniqExactMerge(sessions) AS sessions,
        uniqExactMerge(crashes) AS crashes,
        uniqExactMerge(crashed_devices) AS crashed_devices
    FROM {db}.daily_agg
    GROUP BY day, app_id, app_version, device_model, os_version, country
)
WHERE active_devices >= {k};

-- Roll-ups at the grain the Grafana analytics dashboard shows (deploy/grafana/dashboards). Summing the
-- finest-grain rows above would be wrong twice: a device seen under two versions (or models, OS
-- versions, countries) in a day would count twice, and the groups under {k} would vanish before the
-- sum. So these merge the uniqExact states at their own grain (set union: exact), and the threshold is
-- applied to the rolled-up groups, as `npm run query -- ... --by day,app_id[,app_version]` does.
{create_view} {db}.daily_active_devices_by_app AS
SELECT day, app_id, active_devices
FROM
(
    SELECT day, app_id,
        uniqExactMerge(devices) AS active_devices
    FROM {db}.daily_agg
    GROUP BY day, app_id
)
WHERE active_devices >= {k};

{create_view} {db}.crash_rates_by_app_version AS
SELECT day, app_id, app_version,
    active_devices, sessions, crashes, crashed_devices,
    100 * (1 - crashed_devices / active_devices) AS crash_free_devices_pct,
    if(sessions = 0, nan, 1000 * crashes / sessions) AS crashes_per_1000_sessions
FROM
(
    SELECT day, app_id, app_version,
        uniqExactMerge(devices) AS active_devices,
        uniqExactMerge(sessions) AS sessions,
        uniqExactMerge(crashes) AS crashes,
        uniqExactMerge(crashed_devices) AS crashed_devices
    FROM {db}.daily_agg
    GROUP BY day, app_id, app_version
)
WHERE active_devices >= {k};
