-- The same split as stack/clickhouse-users.ts, in SQL access control, for a ClickHouse server
-- that has it (20.x and later; SQL SECURITY on views from 24.2). The local stack runs 18.16, which has
-- none of this, and chdb has no users at all, so this file is documentation checked by the parser
-- (tools/security/clickhouse-grants.test.ts), not run by a test. Apply it as an admin with
-- access_management = 1, replacing each <...> with the SHA-256 hex of a generated password.
--
-- Differences from 18.16 that matter:
-- * A view can run with its definer's rights (SQL SECURITY DEFINER), so the analyst is granted the
--   released views in `analytics` and nothing else: no Distributed proxies, no views_reader user. The
--   aggregator's migrations re-create the views (CREATE OR REPLACE VIEW), which resets their SQL SECURITY
--   to the creator's default: run the ALTERs below after each views migration, or give the aggregator's
--   profile default_normal_view_sql_security = 'DEFINER' (deploy/compose/clickhouse/users.d/analyst.xml).
-- * Grants are per table, not per database: the aggregator gets exactly the tables it writes and reads.
-- * The system database is no longer open to everyone: the analyst gets none of it.

-- The analyst's profile: readonly = 0, because the analyst must append to the privacy ledger (every
-- `--exact` answer is a ledger row) and ClickHouse refuses any INSERT under readonly = 1 or 2 whatever
-- the grants. What readonly = 1 held is held instead by the grants below (INSERT on the ledger table
-- only) and by CONST constraints on readonly, allow_ddl, the limits and log_queries. Written to the
-- 24.8 documentation, not run against it (see the header: the local server is 18.16).
CREATE SETTINGS PROFILE IF NOT EXISTS analyst_limits SETTINGS readonly = 0 CONST, allow_ddl = 0 CONST, max_memory_usage = 1000000000 CONST, max_execution_time = 30 CONST, max_result_rows = 100000 CONST, result_overflow_mode = 'throw' CONST, log_queries = 1 CONST;

-- The aggregator: the analytics database only (facts_in, daily_agg, the views, schema_migrations), plus
-- system.parts for the retention sweep. No access to personal_row.
CREATE USER IF NOT EXISTS aggregator IDENTIFIED WITH sha256_hash BY '<sha256 hex of the aggregator password>' HOST LOCAL;
-- ALTER DELETE also covers DROP PARTITION (the retention sweep).
GRANT CREATE DATABASE, CREATE TABLE, CREATE VIEW, DROP TABLE, DROP VIEW, INSERT, SELECT, ALTER DELETE ON analytics.* TO aggregator;
GRANT SELECT(database, table, partition_id, active) ON system.parts TO aggregator;

-- The owner the views run as: may read the aggregate table, logs in nowhere.
CREATE USER IF NOT EXISTS analytics_views_definer IDENTIFIED WITH no_password HOST NONE;
GRANT SELECT ON analytics.daily_agg TO analytics_views_definer;
ALTER TABLE analytics.daily_active_devices MODIFY SQL SECURITY DEFINER DEFINER = analytics_views_definer;
ALTER TABLE analytics.crash_rates MODIFY SQL SECURITY DEFINER DEFINER = analytics_views_definer;
ALTER TABLE analytics.daily_active_devices_by_app MODIFY SQL SECURITY DEFINER DEFINER = analytics_views_definer;
ALTER TABLE analytics.crash_rates_by_app_version MODIFY SQL SECURITY DEFINER DEFINER = analytics_views_definer;
ALTER TABLE analytics.release_policy MODIFY SQL SECURITY DEFINER DEFINER = analytics_views_definer;

-- The analyst role: the released views only (aggregator/migrations/R_analyst_views.sql: cells of one day
-- x all dimensions with >= k devices, and sums of them; release_policy holds k), reading only, with limits;
-- its one write is the ledger.
-- `npm run query`, the dashboard (ANALYST_* settings) and Grafana's data source all log in as this user.
CREATE USER IF NOT EXISTS analyst IDENTIFIED WITH sha256_hash BY '<sha256 hex of the analyst password>' SETTINGS PROFILE 'analyst_limits';
GRANT SELECT ON analytics.daily_active_devices TO analyst;
GRANT SELECT ON analytics.crash_rates TO analyst;
GRANT SELECT ON analytics.daily_active_devices_by_app TO analyst;
GRANT SELECT ON analytics.crash_rates_by_app_version TO analyst;
GRANT SELECT ON analytics.release_policy TO analyst;
-- The privacy ledger (aggregator/private-query.ts): read and append, never ALTER or delete its rows. The
-- analyst's only INSERT grant: with readonly = 0 this is what keeps it from writing anything else. This is
-- the analyst's ledger only: the answer service keeps its own in analytics_ledger (below), where the
-- analyst has no grant.
GRANT SELECT, INSERT ON analytics.privacy_ledger TO analyst;

-- The answer service's own privacy ledger (ANSWERS_LEDGER_DATABASE=analytics_ledger in deploy/k8s/answers.yaml):
-- not analytics.privacy_ledger, where the analyst may INSERT (its --exact rows above) and, since an INSERT
-- cannot be limited to rows of one's own name, could write rows under a token holder's name: spend their
-- budget, or plant the answer their repeated question returns (the earliest row for name + question).
-- Nobody but the answer service gets a grant on analytics_ledger. The table is the aggregator's migration
-- aggregator/migrations/002_privacy_ledger.sql with {db} = analytics_ledger, word for word:
-- tools/manifest-check.ts answersLedgerProblems compares these two statements with
-- stack/clickhouse-users.ts ledgerTableSql, which reads that migration (compose runs the migration file
-- itself: deploy/compose/ledger/ledger-init.sh).
CREATE DATABASE IF NOT EXISTS analytics_ledger;
CREATE TABLE IF NOT EXISTS analytics_ledger.privacy_ledger
(
    day Date,
    at DateTime,
    analyst String,
    request String,
    mode String,
    epsilon Float64,
    answer String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (analyst, day, request, at);

-- The answer service (aggregator/answer-service.ts; deploy/k8s/answers.yaml, compose's users.d/answers.xml):
-- the people's path to noisy answers. The released views, and its own privacy ledger (above) read and
-- appended to (each charge is written before the answer leaves), nothing else: no ALTER or DELETE of ledger
-- rows, no DDL, no table functions, no KILL QUERY, nothing on analytics.privacy_ledger. An INSERT needs
-- readonly = 0, so its limits are constraints (CONST).
CREATE SETTINGS PROFILE IF NOT EXISTS answers_limits SETTINGS readonly = 0 CONST, allow_ddl = 0 CONST, max_memory_usage = 1000000000 CONST, max_execution_time = 30 CONST, max_result_rows = 100000 CONST, result_overflow_mode = 'throw' CONST;
CREATE USER IF NOT EXISTS answers IDENTIFIED WITH sha256_hash BY '<sha256 hex of the answers password>' SETTINGS PROFILE 'answers_limits';
GRANT SELECT ON analytics.daily_active_devices TO answers;
GRANT SELECT ON analytics.crash_rates TO answers;
GRANT SELECT ON analytics.daily_active_devices_by_app TO answers;
GRANT SELECT ON analytics.crash_rates_by_app_version TO answers;
GRANT SELECT ON analytics.release_policy TO answers;
GRANT SELECT, INSERT ON analytics_ledger.privacy_ledger TO answers;

-- The personal table: bookkeeping of data-subject requests (policy 5.2). Granted to nobody above; a
-- zone's rights-request service would get its own user with SELECT, INSERT on it.
CREATE DATABASE IF NOT EXISTS personal_row;
REVOKE ALL ON personal_row.* FROM aggregator, analyst, answers;

-- The default user: no network access (operators use named admin users).
ALTER USER default HOST NONE;
