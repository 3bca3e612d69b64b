/**
 * Fetches one partition's record batches at an offset straight from its leader, with no consumer group: for
 * readers that know the offsets they want (the cold tier, snapshots) and commit nothing. The connections are
 * @platformatic/kafka's (framing, TLS and SASL); the Fetch response is read here (parseFetch), its records left as
 * the bytes the broker sent for platform/kafka/record-batches.ts to walk.
 *
 * Leaders come from a metadata request and are asked again when a broker answers that it no longer leads a
 * partition or a connection fails; each fetch is tried again after such an error, with a growing wait (up to 2 s),
 * for up to `retryForMs`: long enough for a cluster to fence a dead leader and elect another (6 s by default).
 *
 * Protocol versions: Metadata v12, ListOffsets v7, Fetch v12 (Kafka 3.1 and later, Kafka 4 included).
 */
import { Connection, fetchV12, listOffsetsV7, metadataV12, type Reader, type SASLOptions } from '@platformatic/kafka';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import type { AbortedTransaction } from './record-batches.ts';

export interface PartitionFetchOptions {
  brokers: readonly string[];
  clientId: string;
  tls?: TlsOptions;
  sasl?: SASLOptions;
  /** how long a request is tried again after leadership changes and lost connections (default 30 s) */
  retryForMs?: number;
  /** how long a fetch waits for records when the broker has none yet (default 20 ms) */
  maxWaitMs?: number;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** told of each failed attempt that is tried again (a failover in progress, a lost connection) */
  onRetry?: (info: { topic: string; partition: number; error: string; waitMs: number }) => void;
}

export interface FetchedRecords {
  /** Kafka's error code for the partition (0: none) */
  error: number;
  highWatermark: number;
  /** the partition's record batches as the broker sent them (the last one may be cut short), null when none */
  records: Buffer | null;
  aborted: AbortedTransaction[] | null;
}

export interface PartitionFetcher {
  /** Record batches of `topic`/`partition` from `offset` on, at most about `maxBytes` (at least one whole batch). */
  fetch(topic: string, partition: number, offset: number, maxBytes: number): Promise<FetchedRecords>;
  /** Each partition's earliest offset (what the topic's retention keeps), keyed by partition. */
  earliest(topic: string): Promise<Map<number, bigint>>;
  close(): Promise<void>;
}

/** Kafka's error codes after which the leader is asked again and the request repeated. */
const RETRIABLE = new Set([
  3, // UNKNOWN_TOPIC_OR_PARTITION (metadata not yet everywhere)
  5, // LEADER_NOT_AVAILABLE
  6, // NOT_LEADER_OR_FOLLOWER
  9, // REPLICA_NOT_AVAILABLE
  13, // NETWORK_EXCEPTION
  56, // KAFKA_STORAGE_ERROR
  74, // FENCED_LEADER_EPOCH
  75, // UNKNOWN_LEADER_EPOCH
]);

/** A partition error the fetcher does not retry. */
export class FetchError extends Error {
  constructor(readonly code: number, topic: string, partition: number) {
    super(`the broker answered error ${code} for ${topic}/${partition}`);
  }
}

export function createPartitionFetcher(opts: PartitionFetchOptions): PartitionFetcher {
  const { clientId, retryForMs = 30_000, maxWaitMs = 20, connectTimeoutMs = 5000, requestTimeoutMs = 30_000 } = opts;
  const seeds = opts.brokers.map((b) => {
    const colon = b.lastIndexOf(':');
    return { host: b.slice(0, colon), port: Number(b.slice(colon + 1)) };
  });
  const connectionOptions = { tls: opts.tls, sasl: opts.sasl, connectTimeout: connectTimeoutMs, requestTimeout: requestTimeoutMs };
  const connections = new Map<string, Promise<Connection>>();
  let brokers = new Map<number, { host: string; port: number }>();
  const leaders = new Map<string, number>();
  let closed = false;

  const connect = (host: string, port: number): Promise<Connection> => {
    const key = `${host}:${port}`;
    let c = connections.get(key);
    if (!c) {
      c = (async () => {
        const conn = new Connection(clientId, connectionOptions);
        conn.on('error', () => {}); // a failed request reports it; the connection is dropped below
        await conn.connect(host, port);
        return conn;
      })();
      c.catch(() => connections.delete(key));
      connections.set(key, c);
    }
    return c;
  };
  const drop = (host: string, port: number) => {
    const key = `${host}:${port}`;
    const c = connections.get(key);
    connections.delete(key);
    void c?.then((conn) => conn.close()).catch(() => {});
  };

  /** Asks any broker (the known ones first, then the configured ones) for the topics' leaders. */
  async function refresh(topics: string[]): Promise<void> {
    let lastError: unknown;
    for (const b of [...brokers.values(), ...seeds]) {
      try {
        const conn = await connect(b.host, b.port);
        const md = await metadataV12.api.async(conn, topics, false, false);
        brokers = new Map(md.brokers.map((x) => [x.nodeId, { host: x.host, port: x.port }]));
        for (const t of md.topics) for (const p of t.partitions) if (t.name) leaders.set(`${t.name}/${p.partitionIndex}`, p.leaderId);
        return;
      } catch (err) {
        drop(b.host, b.port);
        // the other brokers take the same credentials
        if (refusedCredentials(err)) throw credentialsError(err, b);
        lastError = err;
      }
    }
    throw lastError ?? new Error('no Kafka broker is configured');
  }

  async function leaderOf(topic: string, partition: number): Promise<{ host: string; port: number }> {
    const field = `${topic}/${partition}`;
    if (!leaders.has(field) || !brokers.has(leaders.get(field)!)) await refresh([topic]);
    const broker = brokers.get(leaders.get(field) ?? -1);
    if (!broker) throw new RetriableFetchError(`${field} has no leader`);
    return broker;
  }

  /** Runs `attempt` against the partition's leader, asking for leaders again and waiting between failed tries. */
  async function withLeader<T>(topic: string, partition: number, attempt: (conn: Connection) => Promise<T>): Promise<T> {
    let wait = 100;
    const deadline = Date.now() + retryForMs;
    for (;;) {
      if (closed) throw new Error('the partition fetcher is closed');
      let broker: { host: string; port: number } | undefined;
      try {
        broker = await leaderOf(topic, partition);
        return await attempt(await connect(broker.host, broker.port));
      } catch (err) {
        // refused credentials do not get better by asking again
        if (refusedCredentials(err)) throw err instanceof CredentialsError ? err : credentialsError(err, broker);
        if (err instanceof FetchError || Date.now() + wait > deadline) throw err;
        opts.onRetry?.({ topic, partition, error: (err as Error).message, waitMs: wait });
        if (broker && !(err instanceof RetriableFetchError)) drop(broker.host, broker.port);
        leaders.delete(`${topic}/${partition}`);
        await new Promise((resolve) => setTimeout(resolve, wait));
        wait = Math.min(wait * 2, 2000);
      }
    }
  }

  return {
    fetch(topic, partition, offset, maxBytes) {
      return withLeader(topic, partition, async (conn) => {
        const request = () =>
          fetchV12.createRequest(maxWaitMs, 1, maxBytes, 1, 0, -1, [
            { topicId: topic, partitions: [{ partition, currentLeaderEpoch: -1, fetchOffset: BigInt(offset), lastFetchedEpoch: -1, partitionMaxBytes: maxBytes }] },
          ] as never, [], '');
        const got = await new Promise<FetchedRecords>((resolve, reject) =>
          conn.send(1, 12, request, parseFetch, true, true, (err, out) => (err ? reject(err) : resolve(out!))),
        );
        if (RETRIABLE.has(got.error)) throw new RetriableFetchError(`error ${got.error} for ${topic}/${partition}`);
        if (got.error !== 0) throw new FetchError(got.error, topic, partition);
        return got;
      });
    },
    async earliest(topic) {
      await refresh([topic]);
      const byLeader = new Map<number, number[]>();
      for (const [field, leader] of leaders) {
        const slash = field.lastIndexOf('/');
        if (field.slice(0, slash) !== topic) continue;
        const list = byLeader.get(leader) ?? [];
        list.push(Number(field.slice(slash + 1)));
        byLeader.set(leader, list);
      }
      const out = new Map<number, bigint>();
      await Promise.all(
        [...byLeader.values()].map((partitions) =>
          withLeader(topic, partitions[0]!, async (conn) => {
            const res = await listOffsetsV7.api.async(conn, -1, 1, [
              { name: topic, partitions: partitions.map((p) => ({ partitionIndex: p, currentLeaderEpoch: -1, timestamp: -2n })) },
            ]);
            for (const t of res.topics) for (const p of t.partitions) out.set(p.partitionIndex, p.offset);
          }),
        ),
      );
      return out;
    },
    async close() {
      closed = true;
      const all = [...connections.values()];
      connections.clear();
      await Promise.allSettled(all.map((c) => c.then((conn) => conn.close())));
    },
  };
}

class RetriableFetchError extends Error {}

/** The broker refused the SASL credentials: not tried again. */
export class CredentialsError extends Error {}

function credentialsError(err: unknown, broker: { host: string; port: number } | undefined): CredentialsError {
  return new CredentialsError(`Kafka${broker ? ` at ${broker.host}:${broker.port}` : ''} refused the credentials (PIONEER_KAFKA_SASL_*): ${refusedCredentials(err)}`, { cause: err });
}

/** The SASL failure's message when `err` (or what caused it) is one, else null. */
function refusedCredentials(err: unknown): string | null {
  for (let e = err as { code?: string; message?: string; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (e instanceof CredentialsError) return e.message;
    if (e.code === 'PLT_KFK_AUTHENTICATION') return e.message ?? 'SASL authentication failed';
  }
  return null;
}

/**
 * Fetch v12's response for one partition: throttle_time_ms, error_code, session_id, then per topic its name and
 * per partition partition_index, error_code, high_watermark, last_stable_offset, log_start_offset,
 * aborted_transactions (producer_id, first_offset), preferred_read_replica and its records (compact bytes), each
 * level closed by its tagged fields.
 */
function parseFetch(_correlationId: number, _apiKey: number, _apiVersion: number, r: Reader): FetchedRecords {
  r.readInt32(); // throttle_time_ms
  const top = r.readInt16();
  r.readInt32(); // session_id
  const out: FetchedRecords = { error: top, highWatermark: -1, records: null, aborted: null };
  const topics = r.readUnsignedVarInt() - 1;
  for (let t = 0; t < topics; t++) {
    r.readString(); // the topic asked for
    const partitions = r.readUnsignedVarInt() - 1;
    for (let i = 0; i < partitions; i++) {
      r.readInt32(); // partition_index: one was asked for
      const error = r.readInt16();
      if (error !== 0) out.error = error;
      out.highWatermark = Number(r.readInt64());
      r.readInt64(); // last_stable_offset
      r.readInt64(); // log_start_offset
      const aborted = r.readUnsignedVarInt() - 1;
      if (aborted > 0) {
        out.aborted = [];
        for (let a = 0; a < aborted; a++) {
          const producerId = r.readInt64();
          out.aborted.push({ producerId, firstOffset: Number(r.readInt64()) });
          r.readTaggedFields();
        }
      }
      r.readInt32(); // preferred_read_replica
      const size = r.readUnsignedVarInt() - 1;
      if (size > 0) {
        // one copy of the partition's bytes out of the socket's chunks (none when they arrived in one)
        out.records = r.buffer.slice(r.position, r.position + size);
        r.skip(size);
      }
      r.readTaggedFields();
    }
    r.readTaggedFields();
  }
  return out;
}
