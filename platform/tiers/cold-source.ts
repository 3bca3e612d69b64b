/**
 * Reads offset ranges of source partitions for the cold tier: one kafkajs consumer of its own (a fresh group that
 * commits nothing, so it moves no other group's offsets), subscribed to the source topics with every partition
 * paused until a range asks for it. A range seeks its partition (unless the consumer stands there already, as it
 * does when ranges follow each other), resumes it, hands each record of the range to the caller in offset
 * order, and pauses it again at the range's end. A reader keeps one source while it reads cold, so the
 * consumer's join is paid once per catch-up, not per page.
 *
 * A fetch brings whole record batches, so the one that ends a range usually holds records past it: those are kept
 * (one fetch's worth per partition at most, the records kafkajs decoded already) and handed to the next range
 * of the partition when it starts where the last one ended, as a reader's next step does; the consumer then goes
 * on from where it stands, with no seek and no second fetch and decoding of the same records. A range that starts
 * elsewhere drops them and seeks.
 */
import { randomBytes } from 'node:crypto';
import type { Consumer, Kafka, KafkaMessage } from 'kafkajs';
import { positionField } from '../redis/keys.ts';

/** How long the partitions' earliest offsets are trusted before they are asked again. */
const EARLIEST_TTL_MS = 5000;

export interface PartitionRange {
  topic: string;
  partition: number;
  /** first offset read */
  from: bigint;
  /** last offset read */
  to: bigint;
}

/** The partition no longer holds the range's first record: the topic's retention deleted it. */
export class RangeGoneError extends Error {
  constructor(readonly field: string, readonly from: bigint, readonly earliest: bigint) {
    super(`${field} no longer holds offset ${from} (its earliest is ${earliest}): the topic's retention deleted it`);
  }
}

export interface ColdSource {
  /** Hands every record of the ranges to `onRecord`, each range in offset order; resolves when all are read. */
  read(ranges: readonly PartitionRange[], onRecord: RecordHandler): Promise<void>;
  close(): Promise<void>;
}

/**
 * Takes one record of a range, in offset order; `offset` is its offset as a number, exact: ranges past
 * Number.MAX_SAFE_INTEGER (2^53 - 1, some 285 years of a million records a second) are refused.
 */
export type RecordHandler = (range: PartitionRange, message: KafkaMessage, offset: number) => void;

const MAX_OFFSET = BigInt(Number.MAX_SAFE_INTEGER);

interface Want {
  range: PartitionRange;
  onRecord: RecordHandler;
  /** the last offset handed over (records at or before it, fetched again, are not handed twice) */
  handed: number;
  /** the range's last offset, as a number */
  to: number;
  resolve: () => void;
  reject: (err: unknown) => void;
  idle: NodeJS.Timeout;
}

export interface ColdSourceOptions {
  kafka: Kafka;
  topics: readonly string[];
  groupPrefix: string;
  /** a range that brings no record for this long fails (the broker is away) */
  idleTimeoutMs?: number;
  /**
   * bytes fetched per partition and request: bounds what a paused partition may hold in memory (the records kept
   * past a range are one fetch's worth). Large, so that one fetch serves a partition's share of several steps
   * from what it kept (2 MB: about 3,000 records of 600 B, where a 4,000-event step of a subscription that gets
   * half the records wants about 2,000 a partition of four)
   */
  maxBytesPerPartition?: number;
}

export async function createColdSource(opts: ColdSourceOptions): Promise<ColdSource> {
  const { kafka, topics, idleTimeoutMs = 30_000, maxBytesPerPartition = 2 * 1024 * 1024 } = opts;
  const consumer: Consumer = kafka.consumer({
    groupId: `${opts.groupPrefix}-${randomBytes(6).toString('hex')}`,
    maxBytesPerPartition,
    maxWaitTimeInMs: 20,
    allowAutoTopicCreation: false,
    retry: { initialRetryTime: 200, retries: 5, maxRetryTime: 3000 },
  });
  const admin = kafka.admin();
  const wants = new Map<string, Want>();
  /** per partition, the offset the consumer reads next, when known */
  const next = new Map<string, bigint>();
  /**
   * per partition, the records of its last batch past the range it ended, for a range starting
   * at or after `from` and before `next` (offsets in [from, next) that are not among them are not in the log)
   */
  const rest = new Map<string, { messages: KafkaMessage[]; from: bigint; next: bigint }>();
  /** Hands the records of `messages` from `at` on that `w` wants, in order; the index of the first past its range. */
  const hand = (w: Want, messages: KafkaMessage[], at: number): number => {
    const { range, onRecord, to } = w;
    let i = at;
    for (; i < messages.length; i++) {
      const m = messages[i]!;
      const offset = Number(m.offset);
      if (offset <= w.handed) continue;
      if (offset > to) break;
      w.handed = offset;
      onRecord(range, m, offset);
    }
    return i;
  };
  let crashed: unknown = null;
  const earliest = new Map<string, bigint>();
  let earliestAt = 0;

  const finish = (field: string, err?: unknown) => {
    const w = wants.get(field);
    if (!w) return;
    wants.delete(field);
    clearTimeout(w.idle);
    consumer.pause([{ topic: w.range.topic, partitions: [w.range.partition] }]);
    if (err === undefined) w.resolve();
    else w.reject(err);
  };
  const touch = (field: string) => {
    const w = wants.get(field);
    if (!w) return;
    clearTimeout(w.idle);
    w.idle = setTimeout(() => finish(field, new Error(`no record of ${field} arrived within ${idleTimeoutMs} ms`)), idleTimeoutMs);
  };

  consumer.on(consumer.events.CRASH, ({ payload }) => {
    crashed = payload.error;
    for (const field of [...wants.keys()]) finish(field, payload.error);
  });

  await Promise.all([consumer.connect(), admin.connect()]);
  await consumer.subscribe({ topics: [...topics], fromBeginning: false });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const field = positionField(batch.topic, batch.partition);
      const w = wants.get(field);
      if (!w) {
        consumer.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
        next.delete(field);
        return;
      }
      const messages = batch.messages;
      const past = hand(w, messages, 0);
      const through = BigInt(batch.lastOffset());
      next.set(field, through + 1n);
      // only the records not handed yet: those handed die young rather than being kept (and promoted) with them
      if (past < messages.length) rest.set(field, { messages: messages.slice(past), from: w.range.to + 1n, next: through + 1n });
      if (through >= w.range.to) finish(field);
      else touch(field);
    },
  });
  // nothing is wanted yet: every partition waits
  consumer.pause(topics.map((topic) => ({ topic })));

  return {
    async read(ranges, onRecord) {
      if (crashed) throw crashed;
      // the topics' retention may have deleted a range's start: that is a cursor too old to resume (the earliest
      // offsets are asked again after EARLIEST_TTL_MS, and whenever a range starts before the ones known)
      const stale = Date.now() - earliestAt > EARLIEST_TTL_MS || ranges.some((r) => r.from < (earliest.get(positionField(r.topic, r.partition)) ?? 0n));
      if (stale) {
        for (const topic of new Set(ranges.map((r) => r.topic)))
          for (const p of await admin.fetchTopicOffsets(topic)) earliest.set(positionField(topic, p.partition), BigInt(p.low));
        earliestAt = Date.now();
      }
      for (const r of ranges) {
        const field = positionField(r.topic, r.partition);
        const low = earliest.get(field) ?? 0n;
        if (r.from < low) throw new RangeGoneError(field, r.from, low);
      }
      await Promise.all(
        ranges.map(
          (range) =>
            new Promise<void>((resolve, reject) => {
              const field = positionField(range.topic, range.partition);
              if (wants.has(field)) throw new Error(`${field} is being read already`);
              if (range.to > MAX_OFFSET) throw new Error(`${field}: offsets past ${MAX_OFFSET} are not read`);
              const w: Want = { range, onRecord, handed: Number(range.from) - 1, to: Number(range.to), resolve, reject, idle: setTimeout(() => {}, 0) };
              // the records the last batch brought past the last range, when this one starts among them
              let start = range.from;
              const kept = rest.get(field);
              rest.delete(field);
              if (kept && kept.from <= range.from && range.from < kept.next) {
                const past = hand(w, kept.messages, 0);
                if (past < kept.messages.length) rest.set(field, { messages: kept.messages.slice(past), from: range.to + 1n, next: kept.next });
                if (kept.next > range.to) {
                  clearTimeout(w.idle);
                  resolve();
                  return;
                }
                start = kept.next;
                w.handed = Number(start) - 1;
              }
              wants.set(field, w);
              touch(field);
              if (next.get(field) !== start) consumer.seek({ topic: range.topic, partition: range.partition, offset: String(start) });
              next.set(field, start);
              consumer.resume([{ topic: range.topic, partitions: [range.partition] }]);
            }),
        ),
      );
    },
    async close() {
      for (const field of [...wants.keys()]) finish(field, new Error('the cold source closed'));
      rest.clear();
      await Promise.allSettled([consumer.disconnect(), admin.disconnect()]);
    },
  };
}
