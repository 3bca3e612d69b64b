/**
 * Reads offset ranges of source partitions for the cold tier and snapshots: fetches straight from each partition's
 * leader (platform/kafka/partition-fetch.ts), with no consumer group (nothing to join, nothing committed, no other
 * group's offsets moved), and each record handed to the caller in offset order as a view of the fetch's bytes
 * (platform/kafka/record-batches.ts). The ranges of one read are fetched side by side, one fetch in flight per
 * partition. A reader keeps one source while it reads cold, so its connections are opened once per catch-up.
 *
 * A fetch brings whole record batches, so the one that ends a range usually holds records past it: those batches'
 * bytes are kept (one fetch's worth per partition at most) and read by the next range of the partition when it
 * starts where the last one ended, as a reader's next step does, which then fetches on from where the kept bytes
 * end. A range that starts elsewhere drops them.
 */
import { positionField } from '../redis/keys.ts';
import { decodeKafkaRecord, headersToStrings } from '../events/kafka-binding.ts';
import type { InboundEvent } from '../events/inbound.ts';
import { createPartitionFetcher, FetchError, type PartitionFetchOptions } from '../kafka/partition-fetch.ts';
import { offsetAfter, readBatches, type AbortedTransaction, type BatchRecord } from '../kafka/record-batches.ts';

export type { BatchRecord } from '../kafka/record-batches.ts';

/** How long the partitions' earliest offsets are trusted before they are asked again. */
const EARLIEST_TTL_MS = 5000;
/** Kafka's OFFSET_OUT_OF_RANGE: the offset asked for is no longer (or not yet) in the log */
const OFFSET_OUT_OF_RANGE = 1;

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
 * Number.MAX_SAFE_INTEGER (2^53 - 1, some 285 years of a million records a second) are refused. The record's key
 * and value are views of the fetch's bytes: copy what is kept past the call.
 */
export type RecordHandler = (range: PartitionRange, record: BatchRecord, offset: number) => void;

const MAX_OFFSET = BigInt(Number.MAX_SAFE_INTEGER);

/** A record a range handed, decoded as the route decodes what its trigger hands it (its key and value stay views). */
export function decodeRangeRecord(range: PartitionRange, record: BatchRecord, offset: number): InboundEvent {
  return decodeKafkaRecord(
    { key: record.key, value: record.value, headers: headersToStrings(record.headers), timestamp: record.timestamp },
    { topic: range.topic, partition: range.partition, offset: String(offset) },
  );
}

export interface ColdSourceOptions {
  /** the brokers, client id and TLS/SASL settings (platform/kafka/client.ts fetchOptions) */
  kafka: PartitionFetchOptions;
  /**
   * bytes fetched per partition and request: bounds what a partition's fetch and kept bytes hold (1 MB: about 1,600
   * records of 600 B, where a 4,000-event step of a subscription that gets half the records wants about 2,000 a
   * partition of four). Fetching straight from the leader costs little per request, so 2 MB saved no CPU
   * measurably and held more memory per reader
   */
  maxBytesPerPartition?: number;
  /** a range that makes no progress for this long fails (its records beyond what the broker will hand) */
  idleTimeoutMs?: number;
}

interface Kept {
  /** the record batches past the last range (a view: the partition's one fetch is held until the next range reads it) */
  bytes: Buffer;
  aborted: AbortedTransaction[] | null;
  /** the first offset the last range did not want, and the offset after the kept batches */
  from: number;
  next: number;
}

export async function createColdSource(opts: ColdSourceOptions): Promise<ColdSource> {
  const { maxBytesPerPartition = 1024 * 1024, idleTimeoutMs = 30_000 } = opts;
  const fetcher = createPartitionFetcher(opts.kafka);
  /** per partition, the batches the last fetch brought past the range it ended */
  const kept = new Map<string, Kept>();
  const reading = new Set<string>();
  const earliest = new Map<string, bigint>();
  let earliestAt = 0;
  let closed = false;

  /** Hands the range's records; resolves at its last offset or at the partition's end. */
  async function readRange(range: PartitionRange, onRecord: RecordHandler): Promise<void> {
    const field = positionField(range.topic, range.partition);
    const to = Number(range.to);
    let from = Number(range.from);
    const hand = (record: BatchRecord, offset: number) => onRecord(range, record, offset);
    const keep = (bytes: Buffer, past: number, aborted: AbortedTransaction[] | null, next: number) => {
      // a response with aborted transactions is not kept: its list names transactions whose end markers may lie
      // before `past`, and read from there they would pass over a later transaction of the same producer; the next
      // range fetches again, and the broker lists what is open from there
      if (past >= 0 && aborted === null) kept.set(field, { bytes: bytes.subarray(past), aborted, from: to + 1, next });
    };
    const k = kept.get(field);
    kept.delete(field);
    if (k && k.from <= from && from < k.next) {
      const { past } = readBatches(k.bytes, from, to, k.aborted, hand);
      keep(k.bytes, past, k.aborted, k.next);
      if (k.next > to) return;
      from = k.next;
    }
    let progressAt = Date.now();
    while (from <= to) {
      if (closed) throw new Error('the cold source closed');
      if (Date.now() - progressAt > idleTimeoutMs) throw new Error(`no record of ${field} past ${from} arrived within ${idleTimeoutMs} ms`);
      let got;
      try {
        got = await fetcher.fetch(range.topic, range.partition, from, maxBytesPerPartition);
      } catch (err) {
        if (err instanceof FetchError && err.code === OFFSET_OUT_OF_RANGE) {
          const low = (await fetcher.earliest(range.topic)).get(range.partition) ?? 0n;
          if (BigInt(from) < low) throw new RangeGoneError(field, BigInt(from), low);
          return; // past the partition's end: the range's last records are not in the log
        }
        throw err;
      }
      if (got.records === null) {
        if (from >= got.highWatermark) return; // the partition's end: the range's last records are not in the log
        continue;
      }
      const { next, past } = readBatches(got.records, from, to, got.aborted, hand);
      const after = past >= 0 ? offsetAfter(got.records, past) : next;
      if (after < 0) throw new Error(`${field}: a fetch at ${from} brought no whole record batch`);
      keep(got.records, past, got.aborted, after);
      if (after > from) progressAt = Date.now();
      from = after;
    }
  }

  return {
    async read(ranges, onRecord) {
      if (closed) throw new Error('the cold source closed');
      // the topics' retention may have deleted a range's start: that is a cursor too old to resume (the earliest
      // offsets are asked again after EARLIEST_TTL_MS, and whenever a range starts before the ones known)
      const stale = Date.now() - earliestAt > EARLIEST_TTL_MS || ranges.some((r) => r.from < (earliest.get(positionField(r.topic, r.partition)) ?? 0n));
      if (stale) {
        for (const topic of new Set(ranges.map((r) => r.topic)))
          for (const [p, low] of await fetcher.earliest(topic)) earliest.set(positionField(topic, p), low);
        earliestAt = Date.now();
      }
      for (const r of ranges) {
        const field = positionField(r.topic, r.partition);
        const low = earliest.get(field) ?? 0n;
        if (r.from < low) throw new RangeGoneError(field, r.from, low);
        if (r.to > MAX_OFFSET) throw new Error(`${field}: offsets past ${MAX_OFFSET} are not read`);
        if (reading.has(field)) throw new Error(`${field} is being read already`);
      }
      for (const r of ranges) reading.add(positionField(r.topic, r.partition));
      // every range ends before the read does, a failed one too: none goes on handing records after it
      const outcomes = await Promise.allSettled(ranges.map((r) => readRange(r, onRecord)));
      for (const r of ranges) reading.delete(positionField(r.topic, r.partition));
      const failed = outcomes.find((o) => o.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
    },
    async close() {
      closed = true;
      kept.clear();
      await fetcher.close();
    },
  };
}
