#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts one Kafka broker and one redis-server for the run,
# type-checks, checks for import cycles, runs unit and integration tests, stops the services.
#   KEEP_DEPS=1   keep Kafka and Redis running (in .run/test-deps) for the next run
#   TEST_FILES    run only these test files (space separated)
#   FAST=1        skip the type-check and the import-cycle check (quick iterations on a few files)
#   CLUSTER=0|1   the cluster pass: CLUSTER_FILES again against a Redis Cluster (3 masters, 3 replicas) and three
#                 Kafka brokers. On by default for the whole suite, off when TEST_FILES names files (CLUSTER=1
#                 runs it then too, on CLUSTER_FILES, or on TEST_FILES when CLUSTER_FILES is unset). Files under
#                 test/cluster/ kill and restart cluster nodes: only the cluster pass runs them, after the others
#                 and one at a time
#   KAFKA_CLIENTS=0|1  the second-client pass: KAFKA_CLIENT_FILES (the Kafka-facing files) again with the functions on
#                 @platformatic/kafka (PIONEER_KAFKA_CLIENT=platformatic). On by default for the whole suite, off when
#                 TEST_FILES names files (KAFKA_CLIENTS=1 runs it then too, on TEST_FILES unless KAFKA_CLIENT_FILES is set)
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/install-system.sh || exit 1
bash scripts/npm-deps.sh || exit 1
bash scripts/kafka.sh fetch || exit 1

if [ "${KEEP_DEPS:-}" = 1 ]; then RUN="$ROOT/.run/test-deps"; else RUN="$ROOT/.run/test-$$"; fi
mkdir -p "$RUN"
cleanup() {
  if [ "${KEEP_DEPS:-}" != 1 ]; then
    bash scripts/kafka.sh stop "$RUN/kafka" >/dev/null 2>&1
    bash scripts/redis.sh stop "$RUN/redis" >/dev/null 2>&1
    [ -d "$RUN/kafka-cluster" ] && bash scripts/kafka.sh stop "$RUN/kafka-cluster" >/dev/null 2>&1
    [ -d "$RUN/redis-cluster" ] && bash scripts/redis.sh stop "$RUN/redis-cluster" >/dev/null 2>&1
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
  files=$(find test consumer-sdk/test -path test/cluster -prune -o -name '*.test.ts' -print 2>/dev/null | sort)   # test/cluster: the cluster pass
fi
run_tests() { # TAP file, test files... (TEST_CONCURRENCY: files run at once, 2 by default)
  local tap=$1; shift
  # shellcheck disable=SC2086
  node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-timeout=180000 \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" \
    "$@"
}
# shellcheck disable=SC2086
run_tests "$RUN/tap-$$.txt" $files || status=1

# The Kafka-facing files (kill -9 of the broker and of the route, rebalance, ordering, dead letters, rewinds, TLS/SASL
# settings) with the second Kafka client; the rest of the suite runs on the default
KAFKA_CLIENT_FILES_DEFAULT="test/integration/adapters.test.ts test/integration/kafka-restart.test.ts test/integration/order-once.test.ts
  test/integration/route-dead-letters.test.ts test/integration/redis-crash.test.ts test/integration/graceful-shutdown.test.ts
  test/unit/kafka-security.test.ts test/integration/kafka-sasl.test.ts"
clients=${KAFKA_CLIENTS:-}
[ -z "$clients" ] && { [ -n "${TEST_FILES:-}" ] && clients=0 || clients=1; }
if [ "$clients" = 1 ]; then
  echo "test: the Kafka-facing files with PIONEER_KAFKA_CLIENT=platformatic"
  # shellcheck disable=SC2086
  PIONEER_TEST_KAFKA_CLIENT=platformatic run_tests "$RUN/tap-platformatic-$$.txt" ${KAFKA_CLIENT_FILES:-${TEST_FILES:-$KAFKA_CLIENT_FILES_DEFAULT}} || status=1
fi

# The functions whose Redis and Kafka calls a cluster changes, on the cluster pair
CLUSTER_FILES_DEFAULT="test/integration/kafka-redis.test.ts test/integration/stream-readers.test.ts test/integration/core-path.test.ts
  test/integration/order-once.test.ts test/integration/gateway.test.ts test/integration/gateway-limits.test.ts test/integration/ingest.test.ts
  test/integration/export-replay.test.ts test/integration/route-dead-letters.test.ts test/integration/subscriptions-api.test.ts
  test/integration/filter-limits.test.ts test/integration/tiers.test.ts test/integration/insights.test.ts test/integration/insights-crash.test.ts
  test/integration/transform-lookups.test.ts test/integration/subscription-changes.test.ts test/integration/insights-retention.test.ts test/cluster/failover.test.ts test/cluster/replication.test.ts test/cluster/cold-failover.test.ts"
cluster=${CLUSTER:-}
[ -z "$cluster" ] && { [ -n "${TEST_FILES:-}" ] && cluster=0 || cluster=1; }
if [ "$cluster" = 1 ]; then
  cfiles=${CLUSTER_FILES:-${TEST_FILES:-$CLUSTER_FILES_DEFAULT}}
  if [ "${KEEP_DEPS:-}" != 1 ]; then bash scripts/kafka.sh stop "$RUN/kafka" >/dev/null 2>&1; fi   # memory for three brokers
  echo "test: starting a Redis Cluster and three Kafka brokers in $RUN"
  if nodes=$(bash scripts/redis.sh start-cluster "$RUN/redis-cluster") && cbrokers=$(bash scripts/kafka.sh start-cluster "$RUN/kafka-cluster"); then
    echo "test: the cluster pass: Redis Cluster at $nodes, Kafka at $cbrokers"
    # files that kill cluster nodes (test/cluster/) run after the others, one at a time, so no other file sees their faults
    shared=""; faults=""
    for f in $cfiles; do case "$f" in test/cluster/*) faults="$faults $f" ;; *) shared="$shared $f" ;; esac; done
    # the clusters' directories, for tests that kill and restart a node with the scripts' kill9-node/start-broker...
    export PIONEER_TEST_REDIS_CLUSTER_DIR="$RUN/redis-cluster" PIONEER_TEST_KAFKA_CLUSTER_DIR="$RUN/kafka-cluster" \
      PIONEER_TEST_REDIS_CLUSTER_NODES=$nodes PIONEER_TEST_KAFKA_BROKERS=$cbrokers PIONEER_TEST_REDIS_URL=''
    # shellcheck disable=SC2086
    if [ -n "$shared" ]; then run_tests "$RUN/tap-cluster-$$.txt" $shared || status=1; fi
    # shellcheck disable=SC2086
    if [ -n "$faults" ]; then TEST_CONCURRENCY=1 run_tests "$RUN/tap-cluster-faults-$$.txt" $faults || status=1; fi
  else
    echo "test: the clusters did not start"; status=1
  fi
  if [ "${KEEP_DEPS:-}" != 1 ]; then
    bash scripts/kafka.sh stop "$RUN/kafka-cluster" >/dev/null 2>&1
    bash scripts/redis.sh stop "$RUN/redis-cluster" >/dev/null 2>&1
  fi
fi

count() { cat "$RUN"/tap-*$$.txt 2>/dev/null | grep -E "^# $1 " | awk '{s += $3} END {print s + 0}'; }
pass=$(count pass)
fail=$(count fail)
[ "$status" -ne 0 ] && [ "${fail:-0}" = 0 ] && fail=1   # a failed type-check, cycle check or cluster start counts as a failure
echo "${pass:-0} passed, ${fail:-0} failed"
exit $status
