#!/usr/bin/env bash
# The pipeline benchmark (bench/pipeline.ts): starts a Kafka broker and a redis-server of its own for the run,
# measures raw Kafka and raw Redis and the pipeline against them, prints a table, writes
# bench/results/pipeline[-quick].json and .svg, and stops both. docs/benchmarks.md explains the figures.
#   scripts/bench.sh            the full run (about 12 minutes)
#   scripts/bench.sh --quick    a short smoke run (about 2 minutes)
#   BENCH_PROFILE=1             also CPU-profile the route and the gateway (bench/results/profiles/)
#   BENCH_RATES, BENCH_PHASE_SECONDS, BENCH_BURST_EVENTS, ...   see the top of bench/pipeline.ts
#   scripts/bench.sh --sse      2,000 SSE readers on one gateway (bench/sse-readers.ts)
#   scripts/bench.sh --cluster  the single pair against a Redis Cluster and three brokers (bench/cluster.ts)
#   scripts/bench.sh --cold     reads older than the hot window against a raw consume, and the tiers' memory (bench/cold-read.ts)
#   scripts/bench.sh --snapshot a snapshot export of a state topic against a raw consume (bench/snapshot.ts)
#   scripts/bench.sh --insights the insights function against a raw consume, a 90-day series' latency, bytes per campaign-day (bench/insights.ts)
#   scripts/bench.sh --delivery-rate  webhooks to 100 local endpoints and 100 SSE readers: events per CPU second (bench/delivery-rate.ts)
#   scripts/bench.sh --kafka-clients [--quick]  raw consume and the route's CPU per event with each Kafka client (bench/kafka-clients.ts)
#   scripts/bench.sh --route-variants [--quick] the route's CPU per event with filters on data and with transforms, against the ordinary mix (bench/route-variants.ts)
#   KAFKA_HEAP                  the broker's heap (default here 1g)
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/install-system.sh || exit 1
bash scripts/npm-deps.sh || exit 1
bash scripts/kafka.sh fetch || exit 1

RUN="$ROOT/.run/bench-$$"
mkdir -p "$RUN"
cleanup() {
  bash scripts/kafka.sh stop "$RUN/kafka" >/dev/null 2>&1
  bash scripts/redis.sh stop "$RUN/redis" >/dev/null 2>&1
  [ -d "$RUN/kafka-cluster" ] && bash scripts/kafka.sh stop "$RUN/kafka-cluster" >/dev/null 2>&1
  [ -d "$RUN/redis-cluster" ] && bash scripts/redis.sh stop "$RUN/redis-cluster" >/dev/null 2>&1
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: starting Kafka and Redis in $RUN" >&2
PIONEER_KAFKA_BROKERS=$(KAFKA_HEAP=${KAFKA_HEAP:-1g} bash scripts/kafka.sh start "$RUN/kafka") || exit 1
PIONEER_REDIS_URL=$(bash scripts/redis.sh start "$RUN/redis") || exit 1
export PIONEER_KAFKA_BROKERS PIONEER_REDIS_URL
export BENCH_KAFKA_PID BENCH_REDIS_PID BENCH_RUN_DIR="$RUN/pipeline"
BENCH_KAFKA_PID=$(cat "$RUN/kafka/kafka.pid")
BENCH_REDIS_PID=$(cat "$RUN/redis/redis.pid")
echo "bench: Kafka at $PIONEER_KAFKA_BROKERS, Redis at $PIONEER_REDIS_URL" >&2

[ "${1:-}" = --sse ] && { shift; node --import tsx bench/sse-readers.ts "$@"; exit; }
[ "${1:-}" = --cold ] && { shift; node --import tsx bench/cold-read.ts "$@"; exit; }   # the cold tier (docs/benchmarks.md)   # 2,000 SSE readers on one gateway (docs/benchmarks.md)
[ "${1:-}" = --snapshot ] && { shift; node --import tsx bench/snapshot.ts "$@"; exit; }   # snapshot exports against a raw consume (docs/benchmarks.md)
[ "${1:-}" = --kafka-clients ] && { shift; node --import tsx bench/kafka-clients.ts "$@"; exit; }   # kafkajs against @platformatic/kafka (docs/benchmarks.md)
[ "${1:-}" = --route-variants ] && { shift; node --import tsx bench/route-variants.ts "$@"; exit; }   # the route with filters on data and transforms (docs/benchmarks.md)
[ "${1:-}" = --insights ] && { shift; node --import tsx bench/insights.ts "$@"; exit; }   # insights throughput, series latency, bytes per campaign-day (docs/benchmarks.md)
[ "${1:-}" = --delivery-rate ] && { shift; node --import tsx bench/delivery-rate.ts "$@"; exit; }   # webhooks and SSE: events per CPU second of deliver and gateway (docs/benchmarks.md)
if [ "${1:-}" = --cluster ]; then
  shift
  echo "bench: starting a Redis Cluster and three Kafka brokers in $RUN" >&2
  BENCH_CLUSTER_NODES=$(bash scripts/redis.sh start-cluster "$RUN/redis-cluster") || exit 1
  BENCH_CLUSTER_BROKERS=$(bash scripts/kafka.sh start-cluster "$RUN/kafka-cluster") || exit 1
  BENCH_SINGLE_REDIS_URL=$PIONEER_REDIS_URL BENCH_SINGLE_BROKERS=$PIONEER_KAFKA_BROKERS \
    BENCH_CLUSTER_NODES=$BENCH_CLUSTER_NODES BENCH_CLUSTER_BROKERS=$BENCH_CLUSTER_BROKERS node --import tsx bench/cluster.ts "$@"
  exit
fi
node --import tsx bench/pipeline.ts "$@"
