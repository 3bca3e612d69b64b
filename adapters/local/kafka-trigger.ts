/**
 * Stands in for the Kafka trigger (Knative KafkaSource, OpenFaaS kafka-connector) when functions run locally:
 * a consumer group member (the platform's Kafka client, platform/kafka/types.ts, on kafkajs or
 * @platformatic/kafka as PIONEER_KAFKA_CLIENT says) that hands the function one partition's records at a time,
 * decoded as CloudEvents, in order, and commits a batch's offsets only after the handler resolved. A handler may
 * ask to rewind a partition.
 */
import type { Logger } from '../../platform/telemetry/logger.ts';
import type { KafkaTrigger } from '../../platform/runtime/contract.ts';
import { asKafkaClient, type Kafka } from '../../platform/kafka/client.ts';
import type { BatchControl, KafkaClient, RecordBatch } from '../../platform/kafka/types.ts';
import { decodeKafkaRecord, headersToStrings } from '../../platform/events/kafka-binding.ts';
import type { InboundEvent } from '../../platform/events/inbound.ts';

export interface KafkaTriggerHost {
  start(): Promise<void>;
  /** Finishes the batch in hand, commits, leaves the group. */
  stop(): Promise<void>;
}

export function hostKafkaTrigger(opts: {
  kafka: Kafka | KafkaClient;
  trigger: KafkaTrigger;
  log: Logger;
  partitionsConsumedConcurrently?: number;
  fromBeginning?: boolean;
  sessionTimeout?: number;
}): KafkaTriggerHost {
  const { trigger, log, partitionsConsumedConcurrently = 4, fromBeginning = true, sessionTimeout = 10000 } = opts;
  const consumer = asKafkaClient(opts.kafka).consumer({
    groupId: trigger.groupId,
    topics: trigger.topics,
    fromBeginning,
    sessionTimeoutMs: sessionTimeout,
    heartbeatIntervalMs: Math.min(3000, Math.floor(sessionTimeout / 3)),
    rebalanceTimeoutMs: 20000,
    maxBytesPerPartition: 1024 * 1024,
    partitionsConsumedConcurrently,
  });

  async function eachBatch({ topic, partition, records }: RecordBatch, control: BatchControl) {
    if (records.length === 0 || !control.isActive()) return;
    const events: InboundEvent[] = records.map((m) =>
      decodeKafkaRecord({ key: m.key, value: m.value, headers: headersToStrings(m.headers), timestamp: m.timestamp }, { topic, partition, offset: m.offset }),
    );
    const result = await trigger.handle({ topic, partition, events });
    if (result?.rewindTo !== undefined) {
      log.warn({ topic, partition, from: records[0]!.offset, to: result.rewindTo }, 'rewinding partition');
      control.seek(result.rewindTo);
      return;
    }
    await control.commit(String(BigInt(records[records.length - 1]!.offset) + 1n));
    await control.heartbeat();
  }

  return {
    async start() {
      await consumer.run(eachBatch);
      log.info({ topics: trigger.topics, groupId: trigger.groupId }, 'consuming');
    },
    stop: () => consumer.stop(),
  };
}
