/**
 * The ingest function's producer: the platform's idempotent settings (acks from all in-sync replicas), and
 * - it tells each message's partition and offset: the partitioner notes the partition it chose (kafkajs's
 *   default, murmur2 as Java's), and Kafka answers a base offset per partition, in the order of the messages;
 * - it coalesces concurrent requests: kafkajs sends one produce request per broker at a time for an idempotent
 *   producer, so while one send is in flight the messages of the requests that arrive meanwhile wait and leave
 *   together in the next send (up to `maxBytes`). A failed send fails every request in it; none is half-told.
 */
import { Partitioners, type Message, type Producer } from 'kafkajs';
import type { Kafka } from '../../platform/kafka/client.ts';

export interface Position {
  partition: number;
  offset: string;
}

interface Job {
  messages: Message[];
  bytes: number;
  resolve: (positions: Position[]) => void;
  reject: (err: unknown) => void;
}

const sizeOf = (m: Message) =>
  (m.value ? Buffer.byteLength(m.value as Buffer | string) : 0) +
  (m.key ? Buffer.byteLength(m.key as Buffer | string) : 0) +
  Object.entries(m.headers ?? {}).reduce((n, [k, v]) => n + k.length + (v ? Buffer.byteLength(v as string) : 0), 0);

export function createIngestProducer(kafka: Kafka, opts: { topic: string; timeoutMs: number; maxBytes: number }) {
  const partitionOf = new WeakMap<Message, number>();
  const producer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 5,
    allowAutoTopicCreation: true,
    createPartitioner: () => {
      const choose = Partitioners.DefaultPartitioner();
      return (args) => {
        const partition = choose(args);
        partitionOf.set(args.message, partition);
        return partition;
      };
    },
  });
  let connected = false;
  producer.on(producer.events.CONNECT, () => (connected = true));
  producer.on(producer.events.DISCONNECT, () => (connected = false));

  let queue: Job[] = [];
  let sending = false;

  async function flush(): Promise<void> {
    if (sending || queue.length === 0) return;
    sending = true;
    // take jobs up to maxBytes (at least one, however large)
    let bytes = 0;
    let n = 0;
    while (n < queue.length && (n === 0 || bytes + queue[n]!.bytes <= opts.maxBytes)) bytes += queue[n++]!.bytes;
    const jobs = queue.slice(0, n);
    queue = queue.slice(n);
    const messages = jobs.flatMap((j) => j.messages);
    try {
      const acks = await producer.send({ topic: opts.topic, acks: -1, timeout: opts.timeoutMs, messages });
      const next = new Map<number, bigint>(acks.map((a) => [a.partition, BigInt(a.baseOffset ?? '-1')]));
      for (const job of jobs) {
        job.resolve(
          job.messages.map((m) => {
            const partition = partitionOf.get(m) ?? -1;
            const offset = next.get(partition) ?? -1n;
            if (offset >= 0n) next.set(partition, offset + 1n);
            return { partition, offset: String(offset) };
          }),
        );
      }
    } catch (err) {
      for (const job of jobs) job.reject(err);
    } finally {
      sending = false;
      void flush();
    }
  }

  return {
    connect: () => producer.connect(),
    disconnect: () => producer.disconnect(),
    get connected() {
      return connected;
    },
    /** Produces `messages` (in order) and resolves with each one's partition and offset once Kafka acknowledged. */
    send(messages: Message[]): Promise<Position[]> {
      return new Promise((resolve, reject) => {
        queue.push({ messages, bytes: messages.reduce((n, m) => n + sizeOf(m), 0), resolve, reject });
        void flush();
      });
    },
  };
}

export type IngestProducer = ReturnType<typeof createIngestProducer>;
