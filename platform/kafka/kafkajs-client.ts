/** The platform's Kafka client (types.ts) on kafkajs: a consumer group's eachBatch, an idempotent producer, admin calls. */
import { Partitioners, type Admin, type Consumer, type Kafka } from 'kafkajs';
import type { ConsumedRecord, GroupConsumer, GroupConsumerOptions, KafkaAdmin, KafkaClient, RecordProducer } from './types.ts';

/**
 * Subscribes to `topic`, asking again for up to 30 s while the broker asked does not know it yet: on a cluster a
 * topic created a moment ago (by another broker's controller) is not in every broker's metadata at once.
 */
async function subscribeWhenKnown(consumer: Consumer, topic: string, fromBeginning: boolean | undefined): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await consumer.subscribe({ topic, fromBeginning });
      return;
    } catch (err) {
      const type = (err as { type?: string }).type;
      if ((type !== 'UNKNOWN_TOPIC_OR_PARTITION' && type !== 'LEADER_NOT_AVAILABLE') || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

function groupConsumer(kafka: Kafka, opts: GroupConsumerOptions): GroupConsumer {
  const consumer: Consumer = kafka.consumer({
    groupId: opts.groupId,
    sessionTimeout: opts.sessionTimeoutMs,
    heartbeatInterval: opts.heartbeatIntervalMs,
    rebalanceTimeout: opts.rebalanceTimeoutMs,
    maxBytesPerPartition: opts.maxBytesPerPartition,
    allowAutoTopicCreation: true,
    retry: { initialRetryTime: 200, retries: 10, maxRetryTime: 5000 },
  });
  return {
    async run(eachBatch) {
      await consumer.connect();
      for (const topic of opts.topics) await subscribeWhenKnown(consumer, topic, opts.fromBeginning);
      await consumer.run({
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently,
        eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, heartbeat, isRunning, isStale }) => {
          if (batch.messages.length === 0 || !isRunning() || isStale()) return;
          const records: ConsumedRecord[] = batch.messages.map((m) => ({
            offset: m.offset,
            key: m.key ?? null,
            value: m.value ?? null,
            headers: (m.headers ?? {}) as ConsumedRecord['headers'],
            timestamp: m.timestamp,
          }));
          await eachBatch(
            { topic: batch.topic, partition: batch.partition, records },
            {
              isActive: () => isRunning() && !isStale(),
              async commit(next) {
                // kafkajs commits the offset after the one resolved
                resolveOffset(String(BigInt(next) - 1n));
                await commitOffsetsIfNecessary();
              },
              seek: (offset) => consumer.seek({ topic: batch.topic, partition: batch.partition, offset }),
              heartbeat,
            },
          );
        },
      });
    },
    stop: () => consumer.disconnect(),
  };
}

function producer(kafka: Kafka, idempotent: boolean): RecordProducer {
  const p = kafka.producer({
    idempotent,
    maxInFlightRequests: 5,
    allowAutoTopicCreation: true,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  return {
    connect: () => p.connect(),
    disconnect: () => p.disconnect(),
    async send({ topic, messages, acks = -1, timeout }) {
      const answers = await p.send({ topic, acks, ...(timeout !== undefined ? { timeout } : {}), messages });
      return answers.map((a) => ({ partition: a.partition, baseOffset: a.baseOffset ?? '-1' }));
    },
  };
}

function admin(kafka: Kafka, retries?: number): KafkaAdmin {
  const a: Admin = kafka.admin(retries === undefined ? undefined : { retry: { retries } });
  return {
    connect: () => a.connect(),
    disconnect: () => a.disconnect(),
    listTopics: () => a.listTopics(),
    brokerCount: async () => (await a.describeCluster()).brokers.length,
    async createTopics(topics) {
      // kafkajs's own waitForLeaders asks the broker it created the topics on, which on a cluster may not have
      // the new topics' metadata yet and answers UNKNOWN_TOPIC_OR_PARTITION; callers wait with partitionLeaders
      await a.createTopics({ waitForLeaders: false, topics });
    },
    async partitionLeaders(topics) {
      const wanted = new Set(topics);
      const found = new Map<string, number[]>();
      try {
        // every topic's metadata rather than these topics': a broker that does not know them yet would answer
        // that with an error (logged by kafkajs) instead of leaving them out
        for (const t of (await a.fetchTopicMetadata()).topics) if (wanted.has(t.name)) found.set(t.name, t.partitions.map((p) => p.leader));
      } catch (err) {
        const type = (err as { type?: string }).type;
        if (type !== 'UNKNOWN_TOPIC_OR_PARTITION' && type !== 'LEADER_NOT_AVAILABLE') throw err;
      }
      return found;
    },
    fetchTopicOffsets: async (topic) => (await a.fetchTopicOffsets(topic)).map(({ partition, low, high }) => ({ partition, low, high })),
    fetchTopicOffsetsByTimestamp: async (topic, timestamp) => (await a.fetchTopicOffsetsByTimestamp(topic, timestamp)).map(({ partition, offset }) => ({ partition, offset })),
  };
}

export function kafkajsClient(kafka: Kafka): KafkaClient {
  return {
    kind: 'kafkajs',
    consumer: (opts) => groupConsumer(kafka, opts),
    producer: (opts) => producer(kafka, opts?.idempotent ?? true),
    admin: (opts) => admin(kafka, opts?.retries),
  };
}
