/**
 * Stands in for the Kafka trigger (Knative KafkaSource, OpenFaaS kafka-connector) when functions run locally:
 * a kafkajs consumer that hands the function one partition's records at a time, decoded as CloudEvents, in
 * order, and commits a batch's offsets only after the handler resolved. A handler may ask to rewind a partition.
 */
import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import type { Logger } from '../../platform/telemetry/logger.ts';
import type { KafkaTrigger } from '../../platform/runtime/contract.ts';
import { decodeKafkaRecord, headersToStrings } from '../../platform/events/kafka-binding.ts';
import type { InboundEvent } from '../../platform/events/inbound.ts';

export interface KafkaTriggerHost {
  start(): Promise<void>;
  /** Finishes the batch in hand, commits, leaves the group. */
  stop(): Promise<void>;
  consumer: Consumer;
}

export function hostKafkaTrigger(opts: {
  kafka: Kafka;
  trigger: KafkaTrigger;
  log: Logger;
  partitionsConsumedConcurrently?: number;
  fromBeginning?: boolean;
  sessionTimeout?: number;
}): KafkaTriggerHost {
  const { kafka, trigger, log, partitionsConsumedConcurrently = 4, fromBeginning = true, sessionTimeout = 10000 } = opts;
  const consumer = kafka.consumer({
    groupId: trigger.groupId,
    sessionTimeout,
    heartbeatInterval: Math.min(3000, Math.floor(sessionTimeout / 3)),
    rebalanceTimeout: 20000,
    maxBytesPerPartition: 1024 * 1024,
    allowAutoTopicCreation: true,
    retry: { initialRetryTime: 200, retries: 10, maxRetryTime: 5000 },
  });

  async function eachBatch({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }: EachBatchPayload) {
    if (batch.messages.length === 0 || !isRunning() || isStale()) return;
    const events: InboundEvent[] = batch.messages.map((m) =>
      decodeKafkaRecord(
        { key: m.key, value: m.value, headers: headersToStrings(m.headers), timestamp: m.timestamp },
        { topic: batch.topic, partition: batch.partition, offset: m.offset },
      ),
    );
    const result = await trigger.handle({ topic: batch.topic, partition: batch.partition, events });
    if (result?.rewindTo !== undefined) {
      log.warn({ topic: batch.topic, partition: batch.partition, from: batch.firstOffset(), to: result.rewindTo }, 'rewinding partition');
      consumer.seek({ topic: batch.topic, partition: batch.partition, offset: result.rewindTo });
      return;
    }
    resolveOffset(batch.lastOffset());
    await commitOffsetsIfNecessary();
    await heartbeat();
  }

  return {
    consumer,
    async start() {
      await consumer.connect();
      for (const topic of trigger.topics) await consumer.subscribe({ topic, fromBeginning });
      await consumer.run({ eachBatchAutoResolve: false, partitionsConsumedConcurrently, eachBatch });
      log.info({ topics: trigger.topics, groupId: trigger.groupId }, 'consuming');
    },
    async stop() {
      await consumer.disconnect();
    },
  };
}
