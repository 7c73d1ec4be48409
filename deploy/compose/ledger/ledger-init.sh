#!/bin/sh
# One-shot of ../compose.yaml (service `ledger`): creates the answer service's own privacy ledger,
# LEDGER_DATABASE.privacy_ledger, before the answer service starts, on every `up` (idempotent: IF NOT
# EXISTS). The table is the aggregator's migration aggregator/migrations/002_privacy_ledger.sql itself,
# mounted read-only, with `{db}` the ledger database (as stack/clickhouse-users.ts ledgerTableSql does
# on the local stack), so the two ledgers cannot drift apart.
#
# Why a database of its own: the analyst user writes analytics.privacy_ledger (its `--exact` answers are
# logged there), and an INSERT cannot be limited to rows of one's own name, so a ledger shared with the
# answer service would let the analyst spend a token holder's budget or plant the answer their repeated
# question returns. The analyst has no grant on LEDGER_DATABASE (../clickhouse/users.d/analyst.xml;
# tools/manifest-check.ts answersLedgerProblems).
#
# Why not /docker-entrypoint-initdb.d of the ClickHouse service: the image's init runs its scripts through
# a temporary server it pings on the plaintext HTTP port and reaches with clickhouse-client on the
# plaintext native port as the image's `default` user, and this deployment has none of the three
# (../clickhouse/config.d/tls.xml, ../secrets/init.sh); it also runs them on an empty data volume only.
#
# Logs in as `ledger_owner` (../clickhouse/users.d/ledger-owner.xml: CREATE DATABASE and CREATE TABLE on
# the ledger database, nothing else, not even a read of it), over TLS on 9440, verifying the server
# against the deployment's CA; user, password and CA are in client.xml of its own secrets volume
# (written by ../secrets/init.sh), so no secret is on a command line.
set -eu

DB=${LEDGER_DATABASE:-}
case $DB in
  '' | *[!a-z0-9_]*)
    echo "ledger: LEDGER_DATABASE must be a database name of [a-z0-9_] (compose.yaml sets it)" >&2
    exit 2
    ;;
esac
MIGRATION=/etc/telemetry/ledger/002_privacy_ledger.sql
CLIENT="clickhouse-client --config-file /run/telemetry/ledger/client.xml --host clickhouse --port 9440"

$CLIENT --query "CREATE DATABASE IF NOT EXISTS $DB"
# The migration's comment lines dropped, `{db}` replaced: one CREATE TABLE IF NOT EXISTS.
grep -v '^--' "$MIGRATION" | sed "s/{db}/$DB/g" | $CLIENT --multiquery
echo "ledger: $DB.privacy_ledger is there"
