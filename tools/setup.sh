#!/usr/bin/env bash
# The first command on a fresh Debian machine (README.md): installs what the project needs and is
# missing, and nothing else; safe to run again. A plain script because it must work before `npm ci`.
#
#   1. Debian packages the local stack and the tests run on: clickhouse-server, clickhouse-client, kcat,
#      Java 17 (only if no Java 17+ is there), maven, openssl, chromium, prometheus (with promtool), postgresql-15 (the key
#      store's engine; looked for in /usr/lib/postgresql/15/bin or STACK_POSTGRES_BINDIR). Installed with apt-get when run
#      as root; otherwise it prints the one `sudo apt-get ...` line to run and exits 1, having changed
#      nothing.
#   2. Node 20.10+ must already be there (not installed here: pick your own way, e.g. nodejs.org).
#   3. `npm ci` when node_modules is missing or does not match package-lock.json
#      (tools/npm/installed-matches-lock.mjs).
#   4. The Kafka broker jars from Maven Central (`npm run stack:fetch`: mvn on stack/pom.xml into
#      .local/kafka/libs; skipped when this version's jars are there), and ZooKeeper's for the ClickHouse
#      cluster (stack/zookeeper-pom.xml into .local/zookeeper/libs).
#
# .ci/run calls this too, so CI and a newcomer's machine are set up the same way.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }

# Where installed programs are looked for: PATH plus the sbin folders a non-root PATH often lacks
# (Debian installs clickhouse-server in /usr/sbin). SETUP_PATH replaces it (tools/setup.test.ts).
search_path="${SETUP_PATH:-$PATH:/usr/local/sbin:/usr/sbin:/sbin}"
have() { (PATH="$search_path" && command -v "$1") >/dev/null 2>&1; }

# The stack's own overrides (stack/README.md, "Ports and settings") count as installed.
java_cmd="${STACK_JAVA:-${JAVA_HOME:+$JAVA_HOME/bin/java}}"
java_cmd="${java_cmd:-java}"
java_major() {
  # `java -version` prints `version "17.0.9"` (or `"1.8.0_392"` for Java 8) on stderr.
  (PATH="$search_path" && "$java_cmd" -version 2>&1) | sed -n 's/.*version "\(1\.\)\{0,1\}\([0-9]*\).*/\2/p' | head -n 1
}

missing=()
[ -n "${STACK_CLICKHOUSE_SERVER:-}" ] || have clickhouse-server || missing+=(clickhouse-server)
have clickhouse-client || missing+=(clickhouse-client)
have kcat || missing+=(kcat)
major="$(java_major || true)"
[ "${major:-0}" -ge 17 ] 2>/dev/null || missing+=(openjdk-17-jre-headless)
[ -n "${STACK_MVN:-}" ] || have mvn || missing+=(maven)
have openssl || missing+=(openssl)   # the secured stack's CA and broker certificate (stack/secure.ts)
have chromium || missing+=(chromium) # the dashboard's browser test (playwright-core drives it)
# `stack:up -- --monitoring` runs Debian's Prometheus (2.42); its promtool checks and unit-tests the alert rules.
{ have prometheus && have promtool; } || missing+=(prometheus)
# The key store's PostgreSQL 15 (stack/postgres.ts) runs from Debian's versioned folder, which is not on PATH.
[ -x "${STACK_POSTGRES_BINDIR:-/usr/lib/postgresql/15/bin}/postgres" ] || missing+=(postgresql-15)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages: ${missing[*]}"
    say "install them with this line, then run tools/setup.sh again:"
    echo "sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # The clickhouse-server package may start its own service on the default ports (8123/9000); the
  # stack never uses it (its own ports and data live under .local/), so whether it starts does not matter.
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

node_version="$(node -p 'process.versions.node' 2>/dev/null || true)"
IFS=. read -r node_major node_minor _ <<<"${node_version:-0.0.0}"
if [ "$node_major" -lt 20 ] || { [ "$node_major" -eq 20 ] && [ "$node_minor" -lt 10 ]; }; then
  say "Node 20.10 or newer is needed (found: ${node_version:-none}); install it (e.g. https://nodejs.org), then run tools/setup.sh again"
  exit 1
fi

if stale="$(node tools/npm/installed-matches-lock.mjs)"; then
  say "npm packages match package-lock.json"
else
  say "$stale: npm ci"
  npm ci --no-audit --no-fund
fi

npm run -s stack:fetch
say "done: npm run demo runs the pipeline, npm test the tests"
