#!/usr/bin/env bash
# `make run`: the whole platform on this machine. Installs what is missing, starts Kafka (KRaft) and Redis in
# .run/dev (kept between runs, so data survives), starts every function in one process behind one front door
# (the whole API on PIONEER_FRONT_DOOR_PORT, default 8080), runs a short demo against it, and keeps running until
# Ctrl-C. KEEP_DEPS=1 leaves Kafka and Redis up after Ctrl-C.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/install-system.sh
bash scripts/npm-deps.sh
bash scripts/kafka.sh fetch
npm run build --silent -w consumer-sdk   # the consumer CLI the demo runs

DIR="$ROOT/.run/dev"
mkdir -p "$DIR"
echo "pioneer: starting Kafka and Redis in $DIR"
export PIONEER_KAFKA_BROKERS PIONEER_REDIS_URL PIONEER_ADMIN_KEY PIONEER_SECRET_KEYS
PIONEER_KAFKA_BROKERS=$(bash scripts/kafka.sh start "$DIR/kafka")
PIONEER_REDIS_URL=$(bash scripts/redis.sh start "$DIR/redis")
[ -f "$DIR/admin-key" ] || node -e "console.log('pk_' + require('node:crypto').randomBytes(32).toString('base64url'))" > "$DIR/admin-key"
chmod 600 "$DIR/admin-key"
PIONEER_ADMIN_KEY=$(cat "$DIR/admin-key")
# the key webhook secrets are sealed with in Redis: kept with the data it opens (docs/operations.md)
if [ ! -s "$DIR/secret-keys" ]; then (umask 077 && npm run -s secret-key > "$DIR/secret-keys.new") && mv "$DIR/secret-keys.new" "$DIR/secret-keys"; fi
chmod 600 "$DIR/secret-keys"
PIONEER_SECRET_KEYS=$(cat "$DIR/secret-keys")
export PIONEER_WEBHOOK_ALLOW_HTTP=${PIONEER_WEBHOOK_ALLOW_HTTP:-true}
export PIONEER_WEBHOOK_ALLOW_NETWORKS=${PIONEER_WEBHOOK_ALLOW_NETWORKS:-loopback}
export PIONEER_EXPORT_DIR=${PIONEER_EXPORT_DIR:-$DIR/exports}

node --import tsx adapters/local/main.ts > "$DIR/functions.log" 2>&1 &
FUNCTIONS=$!
# On Ctrl-C, SIGTERM or an error: say each step, since stopping Kafka alone can take up to half a minute. The steps
# ignore another Ctrl-C (a terminal sends it to all of them), so that it cannot leave Kafka or Redis half stopped.
stop() {
  trap '' INT
  echo
  if kill -0 "$FUNCTIONS" 2>/dev/null; then
    echo "pioneer: stopping the functions (finishing in-flight work; their log: $DIR/functions.log)…"
    kill -TERM "$FUNCTIONS" 2>/dev/null || true
    while kill -0 "$FUNCTIONS" 2>/dev/null; do wait "$FUNCTIONS" 2>/dev/null || true; done
  fi
  if [ "${KEEP_DEPS:-}" != 1 ]; then
    echo "pioneer: stopping Kafka (up to 30 s)…"
    bash scripts/kafka.sh stop "$DIR/kafka" || echo "pioneer: Kafka did not stop cleanly (its files: $DIR/kafka)"
    echo "pioneer: stopping Redis…"
    bash scripts/redis.sh stop "$DIR/redis" || echo "pioneer: Redis did not stop cleanly (its files: $DIR/redis)"
    echo "pioneer: stopped (the data stays in $DIR)"
  else
    echo "pioneer: stopped; Kafka ($PIONEER_KAFKA_BROKERS) and Redis ($PIONEER_REDIS_URL) keep running (KEEP_DEPS=1)"
  fi
}
trap stop EXIT
trap 'exit 0' INT TERM

for _ in $(seq 1 600); do
  grep -q 'pioneer: the API ' "$DIR/functions.log" 2>/dev/null && break
  kill -0 "$FUNCTIONS" 2>/dev/null || { echo "pioneer: the functions did not start (see $DIR/functions.log)" >&2; exit 1; }
  sleep 0.2
done

API=$(sed -n 's/^pioneer: the API .* on \(http:[^ ]*\)$/\1/p' "$DIR/functions.log" | head -n 1)
cat <<MSG

pioneer: the API  $API   (every path of openapi.yaml; /healthz /readyz /metrics of every function)
pioneer: portal   $API/portal   (sign in with the admin key, or the demo tenant's key in $DIR/demo-tenant.json)
pioneer: Kafka    $PIONEER_KAFKA_BROKERS
pioneer: Redis    $PIONEER_REDIS_URL
pioneer: admin key in $DIR/admin-key
pioneer: webhook secret keys in $DIR/secret-keys
pioneer: each function on its own port too (what a deployment scrapes and probes):
MSG
sed -n 's/^pioneer: \([a-z]*\) listening on /  \1 /p' "$DIR/functions.log"
echo
npx tsx scripts/demo.ts "$DIR" "$API"
echo
echo "pioneer: running; Ctrl-C stops it (logs in $DIR/functions.log)"
wait "$FUNCTIONS"
