#!/usr/bin/env bash
# `make run`: the whole platform on this machine. Installs what is missing, starts Kafka (KRaft) and Redis in
# .run/dev (kept between runs, so data survives), starts every function in one process, runs a short demo
# against it, and keeps running until Ctrl-C. KEEP_DEPS=1 leaves Kafka and Redis up after Ctrl-C.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/install-system.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci --no-audit --no-fund; fi
bash scripts/kafka.sh fetch
npm run build --silent -w consumer-sdk   # the consumer CLI the demo runs

DIR="$ROOT/.run/dev"
mkdir -p "$DIR"
echo "pioneer: starting Kafka and Redis in $DIR"
export PIONEER_KAFKA_BROKERS PIONEER_REDIS_URL PIONEER_ADMIN_KEY
PIONEER_KAFKA_BROKERS=$(bash scripts/kafka.sh start "$DIR/kafka")
PIONEER_REDIS_URL=$(bash scripts/redis.sh start "$DIR/redis")
[ -f "$DIR/admin-key" ] || node -e "console.log('pk_' + require('node:crypto').randomBytes(32).toString('base64url'))" > "$DIR/admin-key"
chmod 600 "$DIR/admin-key"
PIONEER_ADMIN_KEY=$(cat "$DIR/admin-key")
export PIONEER_WEBHOOK_ALLOW_HTTP=${PIONEER_WEBHOOK_ALLOW_HTTP:-true}
export PIONEER_WEBHOOK_ALLOW_NETWORKS=${PIONEER_WEBHOOK_ALLOW_NETWORKS:-loopback}
export PIONEER_EXPORT_DIR=${PIONEER_EXPORT_DIR:-$DIR/exports}

node --import tsx adapters/local/main.ts > "$DIR/functions.log" 2>&1 &
FUNCTIONS=$!
stop() {
  kill -TERM "$FUNCTIONS" 2>/dev/null && wait "$FUNCTIONS" 2>/dev/null || true
  if [ "${KEEP_DEPS:-}" != 1 ]; then
    bash scripts/kafka.sh stop "$DIR/kafka"
    bash scripts/redis.sh stop "$DIR/redis"
  fi
}
trap stop EXIT
trap 'exit 0' INT TERM

for _ in $(seq 1 600); do
  grep -q 'pioneer: subscriptions listening' "$DIR/functions.log" 2>/dev/null && grep -q 'pioneer: gateway listening' "$DIR/functions.log" && grep -q 'pioneer: ingest listening' "$DIR/functions.log" && break
  kill -0 "$FUNCTIONS" 2>/dev/null || { echo "pioneer: the functions did not start (see $DIR/functions.log)" >&2; exit 1; }
  sleep 0.2
done

cat <<MSG

pioneer: Kafka   $PIONEER_KAFKA_BROKERS
pioneer: Redis   $PIONEER_REDIS_URL
pioneer: admin key in $DIR/admin-key
MSG
grep 'listening on' "$DIR/functions.log"
echo
npx tsx scripts/demo.ts "$DIR"
echo
echo "pioneer: running; Ctrl-C stops it (logs in $DIR/functions.log)"
wait "$FUNCTIONS"
