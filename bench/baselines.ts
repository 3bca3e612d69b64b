/**
 * What the pipeline is compared against, measured in the same run on the same Kafka and Redis:
 * - raw kafkajs produce: the same records (sizes, headers, keys) into a topic with the source topic's
 *   partitions, acks -1, batches of 500 with 4 sends in flight (the generator's producer and settings);
 * - raw kafkajs consume: a fresh group reading that topic from the beginning, eachBatch, doing nothing with
 *   the records;
 * - raw Redis: XADD of entries shaped like the delivered ones (`type` + the structured CloudEvent JSON) into
 *   as many streams as there are subscriptions, pipelined, then XREAD of all of it back, pipelined; and the
 *   memory a buffered entry takes (INFO memory before/after, divided by the entries).
 */
import { Partitioners, type Kafka, type Message, type Producer } from 'kafkajs';
import type { Redis } from 'ioredis';
import { appendEventsArgs, createRedis, scriptPipeline } from '../platform/redis/client.ts';

export interface Rate {
  count: number;
  seconds: number;
  per_s: number;
}

/**
 * The benchmark's producer (generator and raw baseline alike): acks -1, the default partitioner, not idempotent —
 * kafkajs' idempotent producer fails with OUT_OF_ORDER_SEQUENCE_NUMBER when several sends are in flight under load.
 */
export function benchProducer(kafka: Kafka): Producer {
  return kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
}

const rate = (count: number, ms: number): Rate => ({ count, seconds: Number((ms / 1000).toFixed(3)), per_s: Math.round((count * 1000) / ms) });

/** Produces `count` records cycling through `pool` into `topic`. */
export async function rawProduce(kafka: Kafka, topic: string, pool: Message[], count: number, { batch = 500, inFlight = 4 } = {}): Promise<Rate> {
  const producer = benchProducer(kafka);
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, messages: pool.slice(0, 10) }); // metadata, connections
    let next = 0;
    const start = performance.now();
    const worker = async () => {
      while (next < count) {
        const n = Math.min(batch, count - next);
        const from = next % pool.length;
        next += n;
        const messages = from + n <= pool.length ? pool.slice(from, from + n) : [...pool.slice(from), ...pool.slice(0, n - (pool.length - from))];
        await producer.send({ topic, acks: -1, messages });
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    return rate(count, performance.now() - start);
  } finally {
    await producer.disconnect();
  }
}

/** Reads `count` records of `topic` from the beginning with a fresh group; the clock starts at the first batch. */
export async function rawConsume(kafka: Kafka, topic: string, count: number, { partitions = 4, timeoutMs = 300_000 } = {}): Promise<Rate> {
  const consumer = kafka.consumer({ groupId: `bench-raw-${Date.now()}`, maxBytesPerPartition: 1024 * 1024 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  let first = 0;
  let last = 0;
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`raw consume read ${seen} of ${count} records in ${timeoutMs} ms`)), timeoutMs);
    void consumer.run({
      partitionsConsumedConcurrently: partitions,
      eachBatch: async ({ batch }) => {
        if (first === 0) first = performance.now();
        let bytes = 0;
        for (const m of batch.messages) bytes += m.value?.length ?? 0; // touch each record
        seen += batch.messages.length + (bytes < 0 ? 1 : 0);
        if (seen >= count && last === 0) {
          last = performance.now();
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  try {
    await done;
    return rate(seen, last - first);
  } finally {
    await consumer.disconnect();
  }
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
}

export interface RedisBaseline {
  xadd: Rate;
  xread: Rate;
  bytes_per_entry: number;
}

/**
 * XADDs `count` entries (`type`, `event` from `entries`, cycled) spread over `streams` streams, `pipeline` per
 * round trip; then reads everything back with XREAD COUNT `readCount`, one pipelined XREAD per stream and round.
 */
export async function rawRedis(
  redis: Redis,
  entries: { type: string; event: string }[],
  { count, streams, pipeline = 500, readCount = 500, prefix }: { count: number; streams: number; pipeline?: number; readCount?: number; prefix: string },
): Promise<RedisBaseline> {
  const key = (i: number) => `${prefix}:{s${i}}`;
  const before = await usedMemory(redis);
  let start = performance.now();
  for (let i = 0; i < count; i += pipeline) {
    const p = redis.pipeline();
    for (let j = i; j < Math.min(count, i + pipeline); j++) {
      const e = entries[j % entries.length]!;
      p.xadd(key(j % streams), '*', 'type', e.type, 'event', e.event);
    }
    const res = await p.exec();
    for (const [err] of res ?? []) if (err) throw err;
  }
  const xadd = rate(count, performance.now() - start);
  const after = await usedMemory(redis);

  start = performance.now();
  const cursors = Array.from({ length: streams }, () => '0-0');
  let open = Array.from({ length: streams }, (_, i) => i);
  let read = 0;
  for (let round = 0; open.length > 0 && round < count; round++) {
    const batch = open.slice();
    const stillOpen: number[] = [];
    for (let b = 0; b < batch.length; b += 200) {
      const slice = batch.slice(b, b + 200);
      const p = redis.pipeline();
      for (const s of slice) p.xread('COUNT', readCount, 'STREAMS', key(s), cursors[s]!);
      const res = (await p.exec()) ?? [];
      res.forEach(([err, value], k) => {
        if (err) throw err;
        const s = slice[k]!;
        const got = (value as [string, [string, string[]][]][] | null)?.[0]?.[1] ?? [];
        read += got.length;
        if (got.length > 0) cursors[s] = got[got.length - 1]![0];
        if (got.length === readCount) stillOpen.push(s);
      });
    }
    open = stillOpen;
  }
  const xread = rate(read, performance.now() - start);
  for (let i = 0; i < streams; i += 500) await redis.unlink(...Array.from({ length: Math.min(500, streams - i) }, (_, k) => key(i + k)));
  return { xadd, xread, bytes_per_entry: Math.round((after - before) / count) };
}

/** The route's append script on `count` entries over `streams` streams (each with its subscription record), one event per call, pipelined. */
export async function appendScript(
  url: string,
  entries: { type: string; event: string }[],
  { count, streams, pipeline = 500, prefix }: { count: number; streams: number; pipeline?: number; prefix: string },
): Promise<Rate> {
  const redis = createRedis(url, { name: 'bench-append' });
  const key = (i: number, what: string) => `${prefix}:{s${i}}:${what}`;
  try {
    for (let i = 0; i < streams; i += 500) {
      const p = redis.pipeline();
      for (let k = i; k < Math.min(streams, i + 500); k++) p.set(key(k, 'sub'), '{}');
      await p.exec();
    }
    const target = { field: 'bench/0', maxLen: 5_000_000, hotFromMs: Date.now() - 72 * 3600_000, resumableFromMs: Date.now() - 168 * 3600_000 };
    const start = performance.now();
    for (let i = 0; i < count; i += pipeline) {
      const p = scriptPipeline(redis);
      for (let j = i; j < Math.min(count, i + pipeline); j++) {
        const e = entries[j % entries.length]!;
        const s = j % streams;
        const keys = [key(s, 'sub'), key(s, 'stream'), key(s, 'pos'), key(s, 'pos'), key(s, 'seen1'), key(s, 'seen0'), key(s, 'marks'), key(s, 'dead')] as const;
        p.appendEvents(...appendEventsArgs(target, [{ keys, spec: 'bench', replay: '', events: [{ offset: String(j), dedupId: '', type: e.type, json: e.event }] }]));
      }
      const res = await p.exec();
      for (const [err] of res ?? []) if (err) throw err;
    }
    const result = rate(count, performance.now() - start);
    for (let i = 0; i < streams; i += 200) {
      const names = Array.from({ length: Math.min(200, streams - i) }, (_, k) => ['sub', 'stream', 'pos', 'marks'].map((w) => key(i + k, w))).flat();
      await redis.del(...names);
    }
    return result;
  } finally {
    redis.disconnect();
  }
}
