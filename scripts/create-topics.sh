#!/usr/bin/env bash
# Creates Pioneer's Kafka topics, or brings existing ones up to the settings below (retention, partitions).
# Without Strimzi this does what knative/kafka/topics.yaml does. It uses the kafkajs admin client of the
# project's node_modules (run `npm ci` first); it can run from any machine that reaches the brokers.
#
#   scripts/create-topics.sh --bootstrap-server kafka-0:9092[,kafka-1:9092] [options]
#
#   --source-topic NAME         source topic: ingest writes it, the route reads it  (pioneer.events)
#   --dead-letter-topic NAME    the route's dead-letter topic                       (pioneer.dead-letter)
#   --partitions N              partitions of the source topic: the route's parallelism (12)
#   --dead-letter-partitions N  partitions of the dead-letter topic                 (3)
#   --replication-factor N      replicas of each partition                          (3)
#   --retention-ms MS           retention of both topics: 72 h of outage plus the replay window (604800000 = 7 days)
#   --reference-topics NAMES    the reference tables' topics, comma-separated, compacted: the reference function
#                               reads them (PIONEER_REFERENCE_TOPICS; docs/transforms.md)  (pioneer.reference.accounts)
#   --reference-partitions N    partitions of each reference topic                  (3)
#
# Existing topics are kept: their retention.ms is set to the value above (a reference topic's cleanup.policy to
# compact), and their partitions are raised when fewer than asked (never lowered; adding partitions moves keys,
# see docs/operations.md). Prints one line a topic.
# The same with Kafka's own tools:
#   kafka-topics.sh --bootstrap-server B --create --if-not-exists --topic pioneer.events --partitions 12 \
#     --replication-factor 3 --config retention.ms=604800000 --config min.insync.replicas=2
#   kafka-topics.sh --bootstrap-server B --create --if-not-exists --topic pioneer.dead-letter --partitions 3 \
#     --replication-factor 3 --config retention.ms=604800000 --config min.insync.replicas=2
#   kafka-topics.sh --bootstrap-server B --create --if-not-exists --topic pioneer.reference.accounts --partitions 3 \
#     --replication-factor 3 --config cleanup.policy=compact --config min.insync.replicas=2
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "create-topics.sh: $*" >&2; exit 2; }

bootstrap=""
source_topic=pioneer.events
dead_letter_topic=pioneer.dead-letter
partitions=12
dead_letter_partitions=3
replication=3
retention_ms=604800000
reference_topics=pioneer.reference.accounts
reference_partitions=3

while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || die "$1 needs a value"
  case "$1" in
    --bootstrap-server) bootstrap=$2 ;;
    --source-topic) source_topic=$2 ;;
    --dead-letter-topic) dead_letter_topic=$2 ;;
    --partitions) partitions=$2 ;;
    --dead-letter-partitions) dead_letter_partitions=$2 ;;
    --replication-factor) replication=$2 ;;
    --retention-ms) retention_ms=$2 ;;
    --reference-topics) reference_topics=$2 ;;
    --reference-partitions) reference_partitions=$2 ;;
    *) die "unknown option $1 (see the head of this script)" ;;
  esac
  shift 2
done
[ -n "$bootstrap" ] || die "--bootstrap-server is required"
[[ "$bootstrap" =~ ^[^,[:space:]:]+:[0-9]+(,[^,[:space:]:]+:[0-9]+)*$ ]] || die "--bootstrap-server: expected host:port[,host:port...]"
for n in "$partitions" "$dead_letter_partitions" "$replication" "$retention_ms" "$reference_partitions"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "expected a positive integer, got '$n'"
done
[ -d "$ROOT/node_modules/kafkajs" ] || die "kafkajs not found: run npm ci in $ROOT"

cd "$ROOT"
BOOTSTRAP=$bootstrap REPLICATION=$replication RETENTION_MS=$retention_ms \
TOPICS="$source_topic:$partitions $dead_letter_topic:$dead_letter_partitions" \
COMPACTED=$(for t in ${reference_topics//,/ }; do printf '%s:%s ' "$t" "$reference_partitions"; done) \
node --input-type=module -e '
import { Kafka, logLevel } from "kafkajs";
const env = process.env;
const kafka = new Kafka({ brokers: env.BOOTSTRAP.split(","), clientId: "pioneer-create-topics", logLevel: logLevel.ERROR });
const admin = kafka.admin();
await admin.connect();
try {
  const parse = (list, compacted) => list.split(" ").filter(Boolean).map((t) => { const i = t.lastIndexOf(":"); return { topic: t.slice(0, i), partitions: Number(t.slice(i + 1)), compacted }; });
  const wanted = [...parse(env.TOPICS, false), ...parse(env.COMPACTED, true)];
  const replication = Number(env.REPLICATION);
  const minIsr = { name: "min.insync.replicas", value: String(Math.min(2, replication)) };
  // a reference topic keeps the latest record of each key, whatever its age: compacted, no retention
  const kept = (compacted) => (compacted ? { name: "cleanup.policy", value: "compact" } : { name: "retention.ms", value: env.RETENTION_MS });
  const said = (compacted) => (compacted ? "compacted" : `retention.ms ${env.RETENTION_MS}`);
  const existing = new Set(await admin.listTopics());
  for (const { topic, partitions, compacted } of wanted) {
    if (!existing.has(topic)) {
      const config = compacted ? [kept(true), minIsr] : [kept(false), { name: "cleanup.policy", value: "delete" }, minIsr];
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: partitions, replicationFactor: replication, configEntries: config }] });
      console.log(`created ${topic}: ${partitions} partitions, replication ${replication}, ${said(compacted)}`);
      continue;
    }
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    const have = meta.topics[0].partitions.length;
    if (have < partitions) await admin.createPartitions({ topicPartitions: [{ topic, count: partitions }] });
    // alterConfigs replaces every dynamic setting of the topic: all of them are given again
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: 2, name: topic, configEntries: compacted ? [kept(true), minIsr] : [kept(false), { name: "cleanup.policy", value: "delete" }, minIsr] }] });
    const note = have < partitions ? `partitions raised from ${have} to ${partitions}` : have > partitions ? `kept its ${have} partitions` : `${have} partitions`;
    console.log(`updated ${topic}: ${note}, ${said(compacted)}`);
  }
} finally {
  await admin.disconnect();
}
'
