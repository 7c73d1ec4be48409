#!/bin/sh
# One-shot secrets generator of the compose deployment (service `secrets` in ../compose.yaml), run
# before anything else on every `up`. It makes, once, what the services need to authenticate and
# encrypt, each into the named volume of the one service that needs it (mounted at $ROOT/<volume>):
#
#   ca/                 the deployment's CA (ca.key never leaves this volume; nothing else mounts it)
#   kafka/              broker key + certificate (PEM keystore), ca.pem, the JAAS lines of the broker
#                       principal (secrets.properties), the storage format arguments with the SCRAM users
#                       (format.args, a JDK launcher argument file) and the healthcheck's client config
#   ingest/             its Kafka password, its HTTPS key + certificate, the key store password, ca.pem
#   aggregator/         its Kafka password, its ClickHouse password, ca.pem
#   operator/           the operator's Kafka password (super user: topics and ACLs), ca.pem
#   zones/              the zone-<z> Kafka passwords (npm run rights; mounted by no service)
#   clickhouse-tls/     ClickHouse's HTTPS key + certificate, ca.pem
#   clickhouse-users/   users.d XML with the SHA-256 hashes of the aggregator's, the analyst's, the
#                       answer service's and the ledger owner's passwords, and the `default` user removed
#   grafana/            the analyst's ClickHouse password, the Grafana admin password, Grafana's HTTPS
#                       key + certificate, ca.pem
#   answers/            the answer service's: its ClickHouse password (user `answers`), its HTTPS key +
#                       certificate, ca.pem, and `tokens` (name and SHA-256 of each analyst's bearer token)
#   answer-tokens/      the bearer tokens themselves, one file per analyst (mounted by no service: hand
#                       each to its analyst); a first analyst `analyst-1` is made, none is a default
#   ledger/             the ledger owner's (ClickHouse user `ledger_owner`, the one-shot `ledger` that
#                       creates the answer service's own ledger): client.xml for clickhouse-client (user,
#                       password, TLS with the CA), ca.pem
#   keystore/           the PostgreSQL key store's password
#   prometheus/         ca.pem (to scrape ingest over HTTPS)
#
# Idempotent: an existing password, key or certificate is kept (a leaf certificate with less than 30
# days left is re-issued under the same CA); the derived files (JAAS lines, format arguments, users.d
# hashes) are rewritten from the kept passwords. Files are 0600 and owned by the uid of the image that
# reads them. No secret is ever an argument of a command (every password is made by `openssl rand` into
# a file and read back by the shell's own `read`/`printf`) and nothing secret is printed.
#
# Usage: init.sh [ROOT]   (ROOT defaults to /secrets). KAFKA_CLUSTER_ID: the Kafka cluster id (not a
# secret). CLICKHOUSE_USERS_TEMPLATES: folder of the committed users.d XML files to copy beside the
# hashes. SECRETS_INIT_CHOWN=0 skips the chown (tests, which run as an ordinary user:
# tools/compose-secrets.test.ts).
set -eu
umask 077

ROOT=${1:-/secrets}
CHOWN=${SECRETS_INIT_CHOWN:-1}
CLUSTER_ID=${KAFKA_CLUSTER_ID:?KAFKA_CLUSTER_ID must name the Kafka cluster id (not a secret: compose.yaml sets it)}

# uids of the images that read each volume: apache/kafka appuser, distroless nonroot (ingest, aggregator,
# topic plan), clickhouse-server, grafana, postgres (Debian), prometheus (nobody).
UID_KAFKA=1000
UID_APP=65532
UID_CLICKHOUSE=101
UID_GRAFANA=472
UID_POSTGRES=999
UID_PROMETHEUS=65534

KAFKA_ROLES="broker ingest aggregator operator zone-cn zone-ru zone-in zone-row"

say() { printf 'secrets: %s\n' "$*"; }

own() { # own UID FILE...: owner-only files of that uid (a no-op for ownership in tests)
  u=$1
  shift
  chmod 0600 "$@"
  if [ "$CHOWN" = 1 ]; then chown "$u:$u" "$@"; fi
}

dir() { # dir NAME UID: the volume's root, owner-only
  mkdir -p "$ROOT/$1"
  chmod 0700 "$ROOT/$1"
  if [ "$CHOWN" = 1 ]; then chown "$2:$2" "$ROOT/$1"; fi
}

password() { # password FILE UID: 32 random bytes as hex, made once
  if [ ! -s "$1" ]; then
    openssl rand -hex 32 >"$1.tmp"
    mv "$1.tmp" "$1"
    say "made $(basename "$(dirname "$1")")/$(basename "$1")"
  fi
  own "$2" "$1"
}

secret_of() { # secret_of FILE: prints nothing; sets $SECRET to the file's first line (shell builtin read)
  IFS= read -r SECRET <"$1" || true
}

write_file() { # write_file FILE UID: stdin into FILE, atomically, owner-only
  cat >"$1.tmp"
  mv "$1.tmp" "$1"
  own "$2" "$1"
}

cert_valid() { # cert_valid CERT: exists and valid for 30 more days
  [ -s "$1" ] && openssl x509 -checkend 2592000 -noout -in "$1" >/dev/null 2>&1
}

leaf() { # leaf DIR NAME UID SAN: a key + certificate signed by the CA, kept while valid
  d=$1
  n=$2
  if ! cert_valid "$d/$n.pem" || [ ! -s "$d/$n.key" ]; then
    openssl req -newkey rsa:2048 -nodes -keyout "$d/$n.key" -out "$d/$n.csr" -subj "/CN=$n" 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' "$4" >"$d/$n.ext"
    openssl x509 -req -in "$d/$n.csr" -CA "$ROOT/ca/ca.pem" -CAkey "$ROOT/ca/ca.key" -CAcreateserial -out "$d/$n.pem" -days 397 -sha256 -extfile "$d/$n.ext" 2>/dev/null
    rm -f "$d/$n.csr" "$d/$n.ext"
    say "issued $(basename "$d")/$n.pem ($4)"
  fi
  own "$3" "$d/$n.key" "$d/$n.pem"
}

ca_copy() { # ca_copy DIR UID: the CA certificate (public)
  cp "$ROOT/ca/ca.pem" "$1/ca.pem.tmp"
  mv "$1/ca.pem.tmp" "$1/ca.pem"
  chmod 0644 "$1/ca.pem"
  if [ "$CHOWN" = 1 ]; then chown "$2:$2" "$1/ca.pem"; fi
}

# --- the CA ----------------------------------------------------------------------------------------
dir ca 0
if [ ! -s "$ROOT/ca/ca.key" ] || ! cert_valid "$ROOT/ca/ca.pem"; then
  if [ -s "$ROOT/ca/ca.key" ]; then say "the CA certificate expires within 30 days: remaking the CA and every certificate"; fi
  openssl req -x509 -newkey rsa:3072 -nodes -keyout "$ROOT/ca/ca.key" -out "$ROOT/ca/ca.pem" -days 3650 -sha256 -subj "/CN=telemetry-compose-ca" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  # Leaves of an older CA would no longer verify.
  rm -f "$ROOT"/kafka/broker.pem "$ROOT"/ingest/tls.pem "$ROOT"/clickhouse-tls/server.pem "$ROOT"/grafana/tls.pem "$ROOT"/answers/tls.pem
  say "made the CA"
fi
own 0 "$ROOT/ca/ca.key"
chmod 0644 "$ROOT/ca/ca.pem"

# --- passwords -------------------------------------------------------------------------------------
dir zones 0
for r in $KAFKA_ROLES; do
  case $r in zone-*) password "$ROOT/zones/kafka-$r.password" 0 ;; esac
done
dir kafka $UID_KAFKA
password "$ROOT/kafka/kafka-broker.password" $UID_KAFKA
dir ingest $UID_APP
password "$ROOT/ingest/kafka.password" $UID_APP
password "$ROOT/ingest/keystore.password" $UID_APP
dir aggregator $UID_APP
password "$ROOT/aggregator/kafka.password" $UID_APP
password "$ROOT/aggregator/clickhouse.password" $UID_APP
dir operator $UID_APP
password "$ROOT/operator/kafka.password" $UID_APP
dir grafana $UID_GRAFANA
password "$ROOT/grafana/analyst.password" $UID_GRAFANA
password "$ROOT/grafana/admin.password" $UID_GRAFANA
dir answers $UID_APP
password "$ROOT/answers/clickhouse.password" $UID_APP
dir ledger $UID_CLICKHOUSE
password "$ROOT/ledger/clickhouse.password" $UID_CLICKHOUSE
dir answer-tokens 0
# The first analyst's bearer token (random, made once; more: one line each in answers/tokens, see below).
password "$ROOT/answer-tokens/analyst-1.token" 0
dir keystore $UID_POSTGRES
# The key store's own copy of its password (PostgreSQL reads it as uid 999, ingest as 65532).
if [ ! -s "$ROOT/keystore/password" ]; then cp "$ROOT/ingest/keystore.password" "$ROOT/keystore/password"; fi
own $UID_POSTGRES "$ROOT/keystore/password"
dir clickhouse-tls $UID_CLICKHOUSE
dir clickhouse-users $UID_CLICKHOUSE
dir prometheus $UID_PROMETHEUS

# --- certificates ----------------------------------------------------------------------------------
leaf "$ROOT/kafka" broker $UID_KAFKA "DNS:kafka-1,DNS:kafka-2,DNS:kafka-3,DNS:localhost"
leaf "$ROOT/ingest" tls $UID_APP "DNS:ingest-1,DNS:ingest-2,DNS:localhost,IP:127.0.0.1"
leaf "$ROOT/clickhouse-tls" server $UID_CLICKHOUSE "DNS:clickhouse,DNS:localhost,IP:127.0.0.1"
leaf "$ROOT/grafana" tls $UID_GRAFANA "DNS:grafana,DNS:localhost,IP:127.0.0.1"
leaf "$ROOT/answers" tls $UID_APP "DNS:answers,DNS:localhost,IP:127.0.0.1"
for v in kafka:$UID_KAFKA ingest:$UID_APP aggregator:$UID_APP operator:$UID_APP clickhouse-tls:$UID_CLICKHOUSE grafana:$UID_GRAFANA prometheus:$UID_PROMETHEUS answers:$UID_APP ledger:$UID_CLICKHOUSE; do
  ca_copy "$ROOT/${v%%:*}" "${v#*:}"
done
# Kafka's PEM keystore: the broker key followed by its certificate.
cat "$ROOT/kafka/broker.key" "$ROOT/kafka/broker.pem" | write_file "$ROOT/kafka/broker-keystore.pem" $UID_KAFKA

# --- derived files (rewritten from the kept passwords on every run) -----------------------------------
secret_of "$ROOT/kafka/kafka-broker.password"
BROKER=$SECRET
# JAAS of the broker principal, appended to each broker's server.properties by ../kafka/broker.sh:
# SCRAM-SHA-512 on the client/inter-broker listener, PLAIN on the controller listener (KRaft controllers
# cannot check SCRAM: the credentials live in the metadata they serve), both over TLS.
{
  printf 'listener.name.internal.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="%s";\n' "$BROKER"
  printf 'listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="%s" user_broker="%s";\n' "$BROKER" "$BROKER"
} | write_file "$ROOT/kafka/secrets.properties" $UID_KAFKA

# The storage tool's arguments: the SCRAM users go into the KRaft bootstrap metadata when a broker's
# storage is formatted (KRaft brokers cannot create them before they run, and the broker principal
# must exist before the brokers can talk). A JDK launcher argument file (`java @file`), so the
# passwords are never on a command line (ps shows `@/run/telemetry/kafka/format.args`).
{
  printf '"kafka.tools.StorageTool"\n"format"\n"--cluster-id=%s"\n"--config"\n"/opt/kafka/config/server.properties"\n' "$CLUSTER_ID"
  for r in $KAFKA_ROLES; do
    case $r in
      broker) f="$ROOT/kafka/kafka-broker.password" ;;
      zone-*) f="$ROOT/zones/kafka-$r.password" ;;
      *) f="$ROOT/$r/kafka.password" ;;
    esac
    secret_of "$f"
    printf '"--add-scram"\n"SCRAM-SHA-512=[name=%s,password=%s]"\n' "$r" "$SECRET"
  done
} | write_file "$ROOT/kafka/format.args" $UID_KAFKA

# The brokers' healthcheck logs in as the broker principal over TLS.
{
  printf 'security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nssl.truststore.type=PEM\nssl.truststore.location=/run/telemetry/kafka/ca.pem\n'
  printf 'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="%s";\n' "$BROKER"
} | write_file "$ROOT/kafka/client.properties" $UID_KAFKA

# ClickHouse users: SHA-256 hashes only (the passwords stay with the aggregator and Grafana).
# The hash is of the password without its trailing newline: hash the first line only.
line_hash() {
  secret_of "$1"
  printf '%s' "$SECRET" | openssl dgst -sha256 -r | cut -d' ' -f1
}
{
  printf '<!-- Written by deploy/compose/secrets/init.sh: hashes of the generated passwords. -->\n<clickhouse>\n  <users>\n'
  printf '    <default remove="remove"></default>\n'
  printf '    <aggregator><password_sha256_hex>%s</password_sha256_hex></aggregator>\n' "$(line_hash "$ROOT/aggregator/clickhouse.password")"
  printf '    <analyst><password_sha256_hex>%s</password_sha256_hex></analyst>\n' "$(line_hash "$ROOT/grafana/analyst.password")"
  printf '    <answers><password_sha256_hex>%s</password_sha256_hex></answers>\n' "$(line_hash "$ROOT/answers/clickhouse.password")"
  printf '    <ledger_owner><password_sha256_hex>%s</password_sha256_hex></ledger_owner>\n' "$(line_hash "$ROOT/ledger/clickhouse.password")"
  printf '  </users>\n</clickhouse>\n'
} | write_file "$ROOT/clickhouse-users/passwords.xml" $UID_CLICKHOUSE
# The committed users (../clickhouse/users.d: grants, profiles, networks, no password) beside the hashes:
# ClickHouse mounts this one volume as its users.d.
if [ -n "${CLICKHOUSE_USERS_TEMPLATES:-}" ]; then
  for f in "$CLICKHOUSE_USERS_TEMPLATES"/*.xml; do
    write_file "$ROOT/clickhouse-users/$(basename "$f")" $UID_CLICKHOUSE <"$f"
  done
fi
# The ledger one-shot's clickhouse-client configuration (../ledger/ledger-init.sh): the ledger owner's
# password in the file, never on its command line; TLS verified against the deployment's CA only.
secret_of "$ROOT/ledger/clickhouse.password"
{
  printf '<config>\n  <user>ledger_owner</user>\n  <password>%s</password>\n  <secure>true</secure>\n' "$SECRET"
  printf '  <openSSL>\n    <client>\n      <caConfig>/run/telemetry/ledger/ca.pem</caConfig>\n      <loadDefaultCAFile>false</loadDefaultCAFile>\n'
  printf '      <verificationMode>strict</verificationMode>\n      <invalidCertificateHandler><name>RejectCertificateHandler</name></invalidCertificateHandler>\n'
  printf '    </client>\n  </openSSL>\n</config>\n'
} | write_file "$ROOT/ledger/client.xml" $UID_CLICKHOUSE
# The answer service's token list (ANSWERS_TOKENS_FILE): `name sha256hex` per analyst. Made once with the
# first analyst's hash; kept afterwards, so analysts added by the operator (a line each: the name and
# `printf %s "$TOKEN" | sha256sum` of a token made with `openssl rand -hex 32`) survive later starts.
if [ ! -s "$ROOT/answers/tokens" ]; then
  {
    printf '# name sha256hex: one analyst per line (aggregator/answer-service.ts). Their tokens: the answer-tokens volume.\n'
    printf 'analyst-1 %s\n' "$(line_hash "$ROOT/answer-tokens/analyst-1.token")"
  } | write_file "$ROOT/answers/tokens" $UID_APP
  say "made answers/tokens (analyst-1)"
fi
own $UID_APP "$ROOT/answers/tokens"
unset SECRET BROKER

say "ready in $ROOT"
