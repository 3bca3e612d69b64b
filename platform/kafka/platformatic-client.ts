/**
 * The platform's Kafka client (types.ts) on @platformatic/kafka.
 *
 * Its consumer hands records over one at a time on a stream that fetches every assigned partition; the group
 * consumer below gathers them into one lane per partition and hands a lane's records to the batch handler as one
 * batch, one batch of a partition at a time and at most `partitionsConsumedConcurrently` partitions at once, as
 * kafkajs's eachBatch does. Heartbeats run on the client's own timer. Nothing is committed but what the handler
 * commits (autocommit off); a partition starts at the group's committed offset, else at its first record or its
 * end (`fromBeginning`).
 * - A rebalance (a member joins or leaves) starts a new generation: the lanes' queued records are dropped, a batch
 *   in hand finishes but commits nothing, and the stream starts each partition again at its committed offset.
 * - A seek drops the lane's queued records and sets the stream's next fetch offset for the partition. A fetch in
 *   flight may still bring records past it (and set the fetch offset back past it): until a record at the seek's
 *   offset arrives, the lane drops such records and sets the fetch offset again. When the seek's offset holds no
 *   record (a transaction marker, a compacted record), the next record past it is taken once no fetch begun
 *   before the last reset can still answer.
 * - When the stream fails (a broker gone past the client's retries), it is opened again after a second, as a new
 *   generation; the group's committed offsets say where each partition goes on.
 * - Past `maxQueued` records waiting in the lanes, the stream pauses until they are down to half.
 */
import { Admin, Consumer, ListOffsetTimestamps, Producer, compatibilityPartitioner, type MessagesStream, type Message, type SASLOptions } from '@platformatic/kafka';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import type { Logger } from '../telemetry/logger.ts';
import type { ConsumedRecord, GroupConsumer, GroupConsumerOptions, KafkaAdmin, KafkaClient, RecordBatch, RecordProducer, BatchControl } from './types.ts';

export interface PlatformaticSettings {
  brokers: string[];
  clientId: string;
  log: Logger;
  tls?: TlsOptions;
  sasl?: SASLOptions;
}

/** How long a fetch may wait on the broker for records: also how long a stale fetch can answer after a seek. */
const MAX_WAIT_MS = 500;

function base(s: PlatformaticSettings, suffix: string, retries = 8) {
  return {
    clientId: `${s.clientId}-${suffix}`,
    bootstrapBrokers: s.brokers,
    connectTimeout: 3000,
    timeout: 30_000,
    retries,
    retryDelay: 500,
    ...(s.tls ? { tls: s.tls } : {}),
    ...(s.sasl ? { sasl: s.sasl } : {}),
  };
}

interface Lane {
  topic: string;
  partition: number;
  queue: ConsumedRecord[];
  busy: boolean;
  /** the offset the handler expects next, once it saw the partition */
  next?: bigint;
  /** a seek not yet met by a record at its offset, and when the fetch offset was last set for it */
  seek?: { to: bigint; setAt: number };
  generation: number;
}

type Handler = (batch: RecordBatch, control: BatchControl) => Promise<void>;

function groupConsumer(s: PlatformaticSettings, opts: GroupConsumerOptions, maxQueued = 20_000): GroupConsumer {
  const log = s.log.child({ component: 'kafka-consumer', groupId: opts.groupId });
  const consumer = new Consumer({ ...base(s, 'consumer', 10), groupId: opts.groupId, autocommit: false, autocreateTopics: true });
  const lanes = new Map<string, Lane>();
  let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | null = null;
  let generation = 0;
  let running = 0;
  let queued = 0;
  let stopping = false;
  let handler: Handler | null = null;
  const inFlight = new Set<Promise<void>>();
  const waiting: Lane[] = [];

  const laneOf = (topic: string, partition: number): Lane => {
    const key = `${topic}:${partition}`;
    let lane = lanes.get(key);
    if (!lane) lanes.set(key, (lane = { topic, partition, queue: [], busy: false, generation }));
    return lane;
  };

  const newGeneration = () => {
    generation++;
    for (const lane of lanes.values()) queued -= lane.queue.length;
    lanes.clear();
    waiting.length = 0;
    if (queued < maxQueued / 2) stream?.resume();
  };

  const setFetchOffset = (lane: Lane, offset: bigint) => {
    stream?.offsetsToFetch.set(`${lane.topic}:${lane.partition}`, offset);
    if (lane.seek) lane.seek.setAt = Date.now();
  };

  function onMessage(m: Message<Buffer, Buffer, Buffer, Buffer>) {
    const lane = laneOf(m.topic, m.partition);
    if (lane.generation !== generation) return;
    const offset = m.offset;
    if (lane.seek) {
      // records of a fetch begun before the seek: drop them and fetch from the seek's offset again
      const settled = Date.now() - lane.seek.setAt > 2 * MAX_WAIT_MS + 1000;
      if (offset < lane.seek.to || (offset > lane.seek.to && !settled)) {
        if (offset > lane.seek.to) setFetchOffset(lane, lane.seek.to);
        return;
      }
      lane.seek = undefined;
    } else if (lane.next !== undefined && offset < lane.next) return; // fetched twice
    lane.next = offset + 1n;
    const headers: ConsumedRecord['headers'] = {};
    for (const [k, v] of m.headers) headers[k.toString()] = v;
    lane.queue.push({ offset: String(offset), key: m.key ?? null, value: m.value ?? null, headers, timestamp: String(m.timestamp) });
    if (++queued >= maxQueued) stream?.pause();
    // the stream hands a fetch's records over one after another in one go: the lanes are started after the last
    // one, so that a partition's batch is all its records of the fetch rather than its first one alone
    filled.add(lane);
    if (filled.size === 1) queueMicrotask(startFilled);
  }

  const filled = new Set<Lane>();
  function startFilled() {
    const lanesFilled = [...filled];
    filled.clear();
    for (const lane of lanesFilled) schedule(lane);
  }

  function schedule(lane: Lane) {
    if (lane.busy || lane.queue.length === 0 || !handler) return;
    if (running >= opts.partitionsConsumedConcurrently) {
      if (!waiting.includes(lane)) waiting.push(lane);
      return;
    }
    lane.busy = true;
    running++;
    const work = drain(lane, handler).finally(() => {
      inFlight.delete(work);
      running--;
      lane.busy = false;
      // a lane of the current generation with records left goes on; then the longest waiting lane
      if (lanes.get(`${lane.topic}:${lane.partition}`) === lane) schedule(lane);
      while (running < opts.partitionsConsumedConcurrently && waiting.length > 0) schedule(waiting.shift()!);
    });
    inFlight.add(work);
  }

  async function drain(lane: Lane, handle: Handler) {
    while (lane.queue.length > 0 && lane.generation === generation && !stopping) {
      const records = lane.queue;
      lane.queue = [];
      queued -= records.length;
      if (queued < maxQueued / 2) stream?.resume();
      const mine = generation;
      const active = () => !stopping && mine === generation;
      try {
        await handle(
          { topic: lane.topic, partition: lane.partition, records },
          {
            isActive: active,
            async commit(next) {
              // a batch finished while stopping is committed still; after a rebalance another member has the
              // partition and reads it from the committed offset
              if (mine !== generation) return;
              await consumer.commit({ offsets: [{ topic: lane.topic, partition: lane.partition, offset: BigInt(next), leaderEpoch: -1 }] });
            },
            seek(offset) {
              if (!active()) return;
              queued -= lane.queue.length;
              lane.queue = [];
              lane.next = BigInt(offset);
              lane.seek = { to: BigInt(offset), setAt: Date.now() };
              setFetchOffset(lane, BigInt(offset));
            },
            heartbeat: async () => {},
          },
        );
      } catch (err) {
        // as kafkajs does with a failing eachBatch: the partition is read again from its committed offset
        log.warn({ err, topic: lane.topic, partition: lane.partition }, 'batch failed: reading the partition again from its committed offset');
        if (mine === generation) restart();
        return;
      }
    }
  }

  let restarting = false;
  function restart() {
    if (restarting || stopping) return;
    restarting = true;
    const old = stream;
    stream = null;
    newGeneration();
    void (async () => {
      await old?.close().catch(() => {});
      while (!stopping) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        if (stopping) break;
        try {
          await open();
          break;
        } catch (err) {
          log.warn({ err }, 'the Kafka consumer could not start again; retrying');
        }
      }
      restarting = false;
    })();
  }

  async function open() {
    const s = await consumer.consume({
      topics: [...opts.topics],
      mode: 'committed',
      fallbackMode: opts.fromBeginning ? 'earliest' : 'latest',
      autocommit: false,
      sessionTimeout: opts.sessionTimeoutMs,
      heartbeatInterval: opts.heartbeatIntervalMs,
      rebalanceTimeout: opts.rebalanceTimeoutMs,
      maxBytesPerPartition: opts.maxBytesPerPartition,
      maxWaitTime: MAX_WAIT_MS,
    });
    if (stopping) {
      await s.close().catch(() => {});
      return;
    }
    stream = s;
    s.on('data', onMessage);
    s.on('error', (err: Error) => {
      if (stopping || stream !== s) return;
      log.warn({ err }, 'the Kafka consumer failed; starting it again');
      restart();
    });
  }

  consumer.on('consumer:group:join', () => newGeneration());

  return {
    async run(eachBatch) {
      handler = eachBatch;
      await open();
    },
    async stop() {
      stopping = true;
      await Promise.allSettled([...inFlight]);
      await stream?.close().catch(() => {});
      await consumer.close(true);
    },
  };
}

function producer(s: PlatformaticSettings, idempotent: boolean): RecordProducer {
  const p = new Producer({ ...base(s, 'producer'), idempotent, acks: -1, autocreateTopics: true, partitioner: compatibilityPartitioner });
  return {
    // connections are opened on the first send
    connect: async () => {
      await p.metadata({ topics: [] });
    },
    disconnect: () => p.close(),
    async send({ topic, messages, acks = -1, timeout }) {
      const toBuffer = (v: Buffer | string | null | undefined) => (v === null || v === undefined ? undefined : typeof v === 'string' ? Buffer.from(v) : v);
      const request = p.send({
        acks,
        messages: messages.map((m) => ({
          topic,
          ...(toBuffer(m.key) ? { key: toBuffer(m.key)! } : {}),
          ...(toBuffer(m.value) ? { value: toBuffer(m.value)! } : {}),
          ...(m.partition !== undefined ? { partition: m.partition } : {}),
          ...(m.headers ? { headers: new Map(Object.entries(m.headers).map(([k, v]) => [Buffer.from(k), toBuffer(v)!])) } : {}),
        })),
      });
      let timer: NodeJS.Timeout | undefined;
      const result =
        timeout === undefined
          ? await request
          : await Promise.race([request, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`Kafka did not acknowledge within ${timeout} ms`)), timeout)))]).finally(() => clearTimeout(timer));
      // the first offset per partition of the send
      const first = new Map<number, bigint>();
      for (const o of result.offsets ?? []) if (o.topic === topic && (!first.has(o.partition) || o.offset < first.get(o.partition)!)) first.set(o.partition, o.offset);
      return [...first].map(([partition, offset]) => ({ partition, baseOffset: String(offset) }));
    },
  };
}

function admin(s: PlatformaticSettings, retries = 8): KafkaAdmin {
  const a = new Admin(base(s, 'admin', retries));
  const offsetsAt = async (topic: string, timestamp: bigint) => {
    const [answer] = await a.listOffsets({ topics: [{ name: topic, partitions: (await partitionsOf(topic)).map((partitionIndex) => ({ partitionIndex, timestamp })) }] });
    return answer?.partitions.map((p) => ({ partition: p.partitionIndex, offset: p.offset })) ?? [];
  };
  const partitionsOf = async (topic: string) => {
    const md = await a.metadata({ topics: [topic] });
    return [...Array(md.topics.get(topic)?.partitionsCount ?? 0).keys()];
  };
  return {
    connect: async () => {},
    disconnect: () => a.close(),
    listTopics: () => a.listTopics(),
    brokerCount: async () => (await a.metadata({ topics: [], forceUpdate: true })).brokers.size,
    async createTopics(topics) {
      for (const t of topics) {
        await a.createTopics({ topics: [t.topic], partitions: t.numPartitions, replicas: t.replicationFactor, configs: t.configEntries });
      }
    },
    async partitionLeaders(topics) {
      const found = new Map<string, number[]>();
      for (const topic of topics) {
        try {
          const md = await a.metadata({ topics: [topic], forceUpdate: true });
          const t = md.topics.get(topic);
          if (t) found.set(topic, t.partitions.map((p) => p.leader));
        } catch {
          // not known to the answering broker yet
        }
      }
      return found;
    },
    async fetchTopicOffsets(topic) {
      const [low, high] = await Promise.all([offsetsAt(topic, ListOffsetTimestamps.EARLIEST), offsetsAt(topic, ListOffsetTimestamps.LATEST)]);
      return low.map((l) => ({ partition: l.partition, low: String(l.offset), high: String(high.find((h) => h.partition === l.partition)?.offset ?? l.offset) }));
    },
    fetchTopicOffsetsByTimestamp: async (topic, timestamp) => (await offsetsAt(topic, BigInt(timestamp))).map((o) => ({ partition: o.partition, offset: String(o.offset) })),
  };
}

export function platformaticClient(settings: PlatformaticSettings): KafkaClient {
  return {
    kind: 'platformatic',
    consumer: (opts) => groupConsumer(settings, opts),
    producer: (opts) => producer(settings, opts?.idempotent ?? true),
    admin: (opts) => admin(settings, opts?.retries),
  };
}
