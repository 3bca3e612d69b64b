#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts one Kafka broker and one redis-server for the run,
# type-checks, checks for import cycles, runs unit and integration tests, stops the services.
#   KEEP_DEPS=1   keep Kafka and Redis running (in .run/test-deps) for the next run
#   TEST_FILES    run only these test files (space separated)
#   FAST=1        skip the type-check and the import-cycle check (quick iterations on a few files)
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/install-system.sh || exit 1
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || exit 1
fi
bash scripts/kafka.sh fetch || exit 1

if [ "${KEEP_DEPS:-}" = 1 ]; then RUN="$ROOT/.run/test-deps"; else RUN="$ROOT/.run/test-$$"; fi
mkdir -p "$RUN"
cleanup() {
  if [ "${KEEP_DEPS:-}" != 1 ]; then
    bash scripts/kafka.sh stop "$RUN/kafka" >/dev/null 2>&1
    bash scripts/redis.sh stop "$RUN/redis" >/dev/null 2>&1
    rm -rf "$RUN"
  fi
}
trap cleanup EXIT

echo "test: starting Kafka and Redis in $RUN"
PIONEER_TEST_KAFKA_BROKERS=$(bash scripts/kafka.sh start "$RUN/kafka") || exit 1
PIONEER_TEST_REDIS_URL=$(bash scripts/redis.sh start "$RUN/redis") || exit 1
export PIONEER_TEST_KAFKA_BROKERS PIONEER_TEST_REDIS_URL
echo "test: Kafka at $PIONEER_TEST_KAFKA_BROKERS, Redis at $PIONEER_TEST_REDIS_URL"

status=0
if [ "${FAST:-}" != 1 ]; then
  echo "test: type-check"; npx tsc -p tsconfig.json --noEmit || status=1
  echo "test: import cycles"; npx madge --circular --extensions ts --ts-config tsconfig.json platform functions adapters consumer-sdk/src || status=1
fi

if [ -n "${TEST_FILES:-}" ]; then files=$TEST_FILES; else
  files=$(find test consumer-sdk/test -name '*.test.ts' 2>/dev/null | sort)
fi
# shellcheck disable=SC2086
node --import tsx --test --test-concurrency=2 --test-timeout=180000 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$RUN/tap-$$.txt" \
  $files || status=1

pass=$(grep -E '^# pass ' "$RUN/tap-$$.txt" | awk '{print $3}')
fail=$(grep -E '^# fail ' "$RUN/tap-$$.txt" | awk '{print $3}')
[ "$status" -ne 0 ] && [ "${fail:-0}" = 0 ] && fail=1   # a failed type-check or cycle check counts as a failure
echo "${pass:-0} passed, ${fail:-0} failed"
exit $status
