#!/bin/sh
# Starts one broker of ../compose.yaml (the apache/kafka image's own start script is not used: it takes
# its settings from the environment and formats the storage without SCRAM users).
#   1. /opt/kafka/config/server.properties (0600) = server.properties (committed, no secret) + this
#      node's id and advertised listener + the broker principal's JAAS lines (secrets volume).
#   2. First start only (no meta.properties): format the storage with the SCRAM users of every principal
#      in the KRaft bootstrap metadata. The storage tool takes them only as arguments, so they go
#      through a JDK launcher argument file: `ps` shows `@/run/telemetry/kafka/format.args`, never a
#      password; -XX:-UsePerfData keeps the JVM from copying the arguments into /tmp/hsperfdata_*. The
#      tool echoes what it formats, so its output is shown with every password=... masked.
#   3. exec the broker.
# KAFKA_NODE_ID, KAFKA_ADVERTISED_HOST and KAFKA_PROPERTIES_FILE (in this folder) come from compose; the secrets from ../secrets/init.sh.
set -eu
umask 077
SECRETS=/run/telemetry/kafka
CONF=/opt/kafka/config/server.properties
: "${KAFKA_NODE_ID:?}" "${KAFKA_ADVERTISED_HOST:?}" "${KAFKA_PROPERTIES_FILE:?}"
{
  cat "/etc/telemetry/kafka/$KAFKA_PROPERTIES_FILE"
  printf '\nnode.id=%s\nadvertised.listeners=INTERNAL://%s:9092\n' "$KAFKA_NODE_ID" "$KAFKA_ADVERTISED_HOST"
  cat "$SECRETS/secrets.properties"
} >"$CONF.tmp"
mv "$CONF.tmp" "$CONF"
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  if ! out=$(java -XX:-UsePerfData -cp '/opt/kafka/libs/*' "@$SECRETS/format.args" 2>&1); then
    printf '%s\n' "$out" | sed 's/password=[^],]*/password=***/g' >&2
    echo "kafka-$KAFKA_NODE_ID: formatting the storage failed" >&2
    exit 1
  fi
  echo "kafka-$KAFKA_NODE_ID: storage formatted with the SCRAM users of every principal"
fi
unset out
exec /opt/kafka/bin/kafka-server-start.sh "$CONF"
