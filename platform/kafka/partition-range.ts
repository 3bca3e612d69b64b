/**
 * Reads one partition's records in an offset range [from, until), in order, with a short-lived consumer of its
 * own group (a fresh, uncommitted one: it joins, reads, leaves, and commits nothing, so it moves no other
 * group's offsets). For a function whose host cannot seek (an HTTP trigger) and that must see records again
 * that its trigger already delivered. Each chunk is handed to `onRecords` and awaited before the next fetch.
 */
import { randomBytes } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';

export interface PartitionRange {
  topic: string;
  partition: number;
  /** first offset read */
  from: string;
  /** first offset not read (the record the caller holds) */
  until: string;
  /** the reading group's name prefix; a random suffix makes it the reader's own */
  groupPrefix: string;
  /** give up when no record of the range arrived for this long (a deleted or compacted-away range) */
  idleTimeoutMs?: number;
}

/**
 * Resolves once every record of the range was handed over (records compacted or deleted away are skipped: the
 * range ends at the first record at or past `until - 1`, or when the partition's end is reached); rejects when
 * `onRecords` throws or nothing arrives for `idleTimeoutMs`.
 */
export async function readPartitionRange(kafka: Kafka, range: PartitionRange, onRecords: (records: KafkaMessage[]) => Promise<void>): Promise<void> {
  const { topic, partition, idleTimeoutMs = 15_000 } = range;
  const from = BigInt(range.from);
  const last = BigInt(range.until) - 1n;
  if (last < from) return;
  const consumer = kafka.consumer({
    groupId: `${range.groupPrefix}-${randomBytes(6).toString('hex')}`,
    sessionTimeout: 10_000,
    heartbeatInterval: 3000,
    maxBytesPerPartition: 1024 * 1024,
    allowAutoTopicCreation: false,
    retry: { initialRetryTime: 200, retries: 5, maxRetryTime: 3000 },
  });
  let finish!: (err?: unknown) => void;
  const done = new Promise<void>((resolve, reject) => (finish = (err?: unknown) => (err === undefined ? resolve() : reject(err))));
  done.catch(() => {}); // awaited below; a failure before then is not an unhandled rejection
  let idle: NodeJS.Timeout | undefined;
  const touch = () => {
    clearTimeout(idle);
    idle = setTimeout(() => finish(new Error(`no record of ${topic}/${partition} [${range.from}, ${range.until}) arrived within ${idleTimeoutMs} ms`)), idleTimeoutMs);
  };
  let finished = false;
  try {
    await consumer.connect();
    // the other partitions start at their end (no committed offset, not from the beginning): they hand over nothing
    await consumer.subscribe({ topic, fromBeginning: false });
    touch();
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, heartbeat }) => {
        if (finished || batch.partition !== partition) return;
        const records = batch.messages.filter((m) => BigInt(m.offset) >= from && BigInt(m.offset) <= last);
        try {
          if (records.length > 0) await onRecords(records);
        } catch (err) {
          finished = true;
          finish(err);
          return;
        }
        touch();
        await heartbeat();
        const through = BigInt(batch.lastOffset());
        const end = BigInt(batch.highWatermark) - 1n;
        if (through >= last || through >= end) {
          finished = true;
          finish();
        }
      },
    });
    consumer.seek({ topic, partition, offset: range.from });
    await done;
  } finally {
    finished = true;
    clearTimeout(idle);
    await consumer.disconnect().catch(() => {});
  }
}
