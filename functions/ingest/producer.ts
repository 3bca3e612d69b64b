/**
 * The ingest function's producer: the platform's idempotent settings (acks from all in-sync replicas), and
 * - it tells each message's partition and offset: the partitioner notes the partition it chose (kafkajs's
 *   default, murmur2 as Java's) and keeps it for the send's retries, and Kafka answers a base offset per
 *   partition, in the order of the messages;
 * - it coalesces concurrent requests: kafkajs sends one produce request per broker at a time for an idempotent
 *   producer, so while one send is in flight the messages of the requests that arrive meanwhile wait and leave
 *   together in the next send (up to `maxBytes`). A failed send fails every request in it; none is half-told;
 * - it answers every request within `timeoutMs`, whatever Kafka does: a request still waiting for its send is
 *   dropped from the queue (its messages were never sent), and one whose send is in flight is told so with the
 *   send's eventual outcome (ProduceTimeoutError.outcome), since Kafka may still take those messages.
 * How long a send in flight may go on is bounded by the retry and timeouts of ingestKafkaSettings; kafkajs would
 * otherwise retry an idempotent send for ever, and its outcome could come after the event's dedup reservation
 * lapsed.
 */
import { Partitioners, type Message, type Producer, type RetryOptions } from 'kafkajs';
import type { Kafka } from '../../platform/kafka/client.ts';
import { DependencyUnavailableError } from '../../platform/errors.ts';

export interface Position {
  partition: number;
  offset: string;
}

/**
 * A produce that did not end within its deadline. `outcome` is undefined when the messages were never sent
 * (nothing can reach Kafka), and otherwise settles when the send that carries them ends: with their positions
 * if Kafka took them after all, rejected if it did not.
 */
export class ProduceTimeoutError extends DependencyUnavailableError {
  readonly outcome: Promise<Position[]> | undefined;

  constructor(timeoutMs: number, outcome: Promise<Position[]> | undefined) {
    super('kafka', `Kafka did not acknowledge the events within ${timeoutMs} ms; retry the same request`);
    this.outcome = outcome;
  }
}

/**
 * The Kafka client and producer settings of ingest for a produce timeout of `timeoutMs`, and the longest a send
 * can then go on (`sendBoundMs`). Each attempt of a send may take its produce request (the broker holds it up to
 * the ack timeout, the client waits as long), a metadata request, and a reconnection with the client's own
 * retries; a failed attempt is retried twice. Measured against a single broker: killed, a send fails within
 * about 1 s (connections are refused); stopped (SIGSTOP, connections open but silent), within 3 × timeoutMs plus
 * the back-off. Bounding the retries of an idempotent producer makes kafkajs warn once that a send it gave up on
 * may have reached Kafka: ingest then releases the reservation and the retried request may write the event
 * again (docs/ingest.md, at-least-once across a failed request).
 */
export function ingestKafkaSettings(timeoutMs: number) {
  const connectionTimeout = Math.min(3000, timeoutMs);
  const retry = { retries: 2, initialRetryTime: 100, maxRetryTime: Math.min(1000, timeoutMs) };
  const attemptMs = 2 * timeoutMs + (retry.retries + 1) * connectionTimeout + retry.maxRetryTime;
  return { client: { requestTimeout: timeoutMs, connectionTimeout, retry }, retry, sendBoundMs: (retry.retries + 1) * attemptMs };
}

interface Job {
  messages: Message[];
  bytes: number;
  state: 'queued' | 'sending' | 'done';
  deadline: NodeJS.Timeout;
  resolve: (positions: Position[]) => void;
  reject: (err: unknown) => void;
}

const sizeOf = (m: Message) =>
  (m.value ? Buffer.byteLength(m.value as Buffer | string) : 0) +
  (m.key ? Buffer.byteLength(m.key as Buffer | string) : 0) +
  Object.entries(m.headers ?? {}).reduce((n, [k, v]) => n + k.length + (v ? Buffer.byteLength(v as string) : 0), 0);

export interface IngestProducerOptions {
  topic: string;
  /** the longest a request waits for Kafka's acknowledgement; also the broker's ack timeout */
  timeoutMs: number;
  maxBytes: number;
  /** the producer's retries of a failed send (bounded: see sendBoundMs) */
  retry: RetryOptions & { retries: number };
}

export function createIngestProducer(kafka: Kafka, opts: IngestProducerOptions) {
  const partitionOf = new WeakMap<Message, number>();
  const producer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 5,
    allowAutoTopicCreation: true,
    retry: opts.retry,
    createPartitioner: () => {
      const choose = Partitioners.DefaultPartitioner();
      return (args) => {
        // kafkajs partitions a send again on each retry; a message without a key would go to another partition
        // (round robin), where the broker cannot recognise the retry as the same batch, and be written twice
        const known = partitionOf.get(args.message);
        if (known !== undefined) return known;
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
    for (const job of jobs) job.state = 'sending';
    const messages = jobs.flatMap((j) => j.messages);
    try {
      const acks = await producer.send({ topic: opts.topic, acks: -1, timeout: opts.timeoutMs, messages });
      const next = new Map<number, bigint>(acks.map((a) => [a.partition, BigInt(a.baseOffset ?? '-1')]));
      for (const job of jobs) {
        job.state = 'done';
        clearTimeout(job.deadline);
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
      for (const job of jobs) {
        job.state = 'done';
        clearTimeout(job.deadline);
        job.reject(err);
      }
    } finally {
      sending = false;
      void flush();
    }
  }

  /** The deadline of a request: drop it if it is still queued, else tell it the send is in doubt. */
  function expire(job: Job): void {
    if (job.state === 'done') return;
    const answer = job.reject;
    if (job.state === 'queued') {
      queue = queue.filter((j) => j !== job);
      job.state = 'done';
      answer(new ProduceTimeoutError(opts.timeoutMs, undefined));
      return;
    }
    // in flight: the request is answered now, the send's outcome goes to whoever holds the error
    const outcome = new Promise<Position[]>((resolve, reject) => {
      job.resolve = resolve;
      job.reject = reject;
    });
    outcome.catch(() => {}); // a holder that does not wait for it must not make it an unhandled rejection
    answer(new ProduceTimeoutError(opts.timeoutMs, outcome));
  }

  return {
    connect: () => producer.connect(),
    disconnect: () => producer.disconnect(),
    get connected() {
      return connected;
    },
    /**
     * Produces `messages` (in order) and resolves with each one's partition and offset once Kafka acknowledged;
     * rejects with ProduceTimeoutError after `timeoutMs`, or with kafkajs's error when the send failed.
     */
    send(messages: Message[]): Promise<Position[]> {
      return new Promise((resolve, reject) => {
        const job: Job = {
          messages,
          bytes: messages.reduce((n, m) => n + sizeOf(m), 0),
          state: 'queued',
          resolve,
          reject,
          deadline: setTimeout(() => expire(job), opts.timeoutMs),
        };
        queue.push(job);
        void flush();
      });
    },
  };
}

export type IngestProducer = ReturnType<typeof createIngestProducer>;
