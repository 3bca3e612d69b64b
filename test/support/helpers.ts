/**
 * Shared test helpers: the run's Kafka and Redis (started once by scripts/test.sh), random names, waitFor,
 * Kafka admin/produce, functions hosted in-process on port 0 or as child processes (for kill -9), dedicated
 * Kafka/Redis instances for tests that crash them, and a small SSE reader.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, Partitioners, type Consumer, type Message } from 'kafkajs';
import { Redis } from 'ioredis';
import { startLocalHost, type LocalHost } from '../../adapters/local/host.ts';
import { functionsNamed } from '../../functions/registry.ts';
import { generateApiKey } from '../../platform/auth/api-keys.ts';
import { createLogger } from '../../platform/telemetry/logger.ts';
import { createRedis, type RedisTarget } from '../../platform/redis/client.ts';
import { keys } from '../../platform/redis/keys.ts';
import { createKafkaClient, ensureTopics } from '../../platform/kafka/client.ts';
import type { KafkaClient, KafkaClientKind } from '../../platform/kafka/types.ts';

export const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');

/**
 * The run's Kafka and Redis (scripts/test.sh starts them). `redis` is where the functions' Redis is: one server
 * (PIONEER_TEST_REDIS_URL), or a Redis Cluster when the run sets PIONEER_TEST_REDIS_CLUSTER_NODES (the cluster
 * pass). `redisUrl` is the single server; a test that needs one (it starts its own, kills it, or reads it with a
 * plain client) asks for it and is not part of the cluster pass.
 */
export function deps(): { brokers: string; redisUrl: string; redis: RedisTarget; cluster: boolean } {
  const brokers = process.env['PIONEER_TEST_KAFKA_BROKERS'];
  const redisUrl = process.env['PIONEER_TEST_REDIS_URL'] ?? '';
  const clusterNodes = process.env['PIONEER_TEST_REDIS_CLUSTER_NODES'];
  if (!brokers || (!redisUrl && !clusterNodes))
    throw new Error('PIONEER_TEST_KAFKA_BROKERS and PIONEER_TEST_REDIS_URL are unset: run the tests with `make test` (scripts/test.sh)');
  const redis: RedisTarget = clusterNodes ? { PIONEER_REDIS_CLUSTER_NODES: clusterNodes.split(',') } : redisUrl;
  return { brokers, redisUrl, redis, cluster: clusterNodes !== undefined };
}

/**
 * The Kafka client library the run's functions use: the default (kafkajs), or the one PIONEER_TEST_KAFKA_CLIENT
 * names (scripts/test.sh runs the Kafka-facing files a second time with `platformatic`).
 */
export function testKafkaClientKind(): KafkaClientKind {
  return process.env['PIONEER_TEST_KAFKA_CLIENT'] === 'platformatic' ? 'platformatic' : 'kafkajs';
}

/** The platform's Kafka client of the run's kind, on `brokers` (default the run's). */
export function testKafkaClient(clientId: string, brokers = deps().brokers): KafkaClient {
  return createKafkaClient(
    { PIONEER_KAFKA_BROKERS: brokers.split(','), PIONEER_KAFKA_CLIENT: testKafkaClientKind(), PIONEER_KAFKA_CLIENT_ID: clientId, PIONEER_KAFKA_SSL: false },
    { log: createLogger({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' }) },
  );
}

export function randomName(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitFor<T>(check: () => T | Promise<T>, opts: { timeout?: number; interval?: number; message?: string } = {}): Promise<NonNullable<T>> {
  const { timeout = 20000, interval = 50, message = 'condition' } = opts;
  const deadline = Date.now() + timeout;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${message}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(interval);
  }
}

export function kafkaClient(brokers = deps().brokers): Kafka {
  return new Kafka({ brokers: brokers.split(','), clientId: randomName('test'), logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 100 } });
}

/** Creates a topic as the functions do (replicated on a cluster), and waits until every partition has a leader. */
export async function createTopic(name: string, partitions = 4, brokers = deps().brokers): Promise<void> {
  await ensureTopics(kafkaClient(brokers), [{ topic: name, numPartitions: partitions }]);
}

/**
 * Produces `messages` to `topic`, in order. On a cluster a broker may not know a topic created a moment ago (the
 * creation waited for the leaders as one broker saw them): a send refused for that is sent again, for up to 15 s.
 */
export async function produce(topic: string, messages: Message[], brokers = deps().brokers): Promise<void> {
  const producer = kafkaClient(brokers).producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true });
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += 1000) {
      const deadline = Date.now() + 15_000;
      for (;;) {
        try {
          await producer.send({ topic, acks: -1, messages: messages.slice(i, i + 1000) });
          break;
        } catch (err) {
          const type = (err as { type?: string }).type;
          if ((type !== 'UNKNOWN_TOPIC_OR_PARTITION' && type !== 'LEADER_NOT_AVAILABLE') || Date.now() > deadline) throw err;
          await sleep(200);
        }
      }
    }
  } finally {
    await producer.disconnect();
  }
}

/**
 * Subscribes `consumer` to `topic` from its beginning. On a cluster the broker asked for the topic's metadata may
 * not know a topic created a moment ago (as in produce): a subscription refused for that is tried again, for up to 15 s.
 */
export async function subscribeFromStart(consumer: Consumer, topic: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return await consumer.subscribe({ topic, fromBeginning: true });
    } catch (err) {
      const type = (err as { type?: string }).type;
      if ((type !== 'UNKNOWN_TOPIC_OR_PARTITION' && type !== 'LEADER_NOT_AVAILABLE') || Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

/** A client of the run's Redis (a Cluster client in the cluster pass), or of the server at `url`. */
export function redisClient(url?: string): Redis {
  if (url !== undefined) return new Redis(url, { maxRetriesPerRequest: 3 });
  return createRedis(deps().redis, { name: 'test', commandTimeoutMs: 0, maxRetriesPerRequest: 3 }) as unknown as Redis;
}

/** The environment functions need, against the run's (or given) Kafka and Redis, with a fresh admin key. */
export function platformEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const { brokers, redis } = deps();
  return {
    PIONEER_KAFKA_BROKERS: brokers,
    ...(typeof redis === 'string' ? { PIONEER_REDIS_URL: redis } : { PIONEER_REDIS_CLUSTER_NODES: redis.PIONEER_REDIS_CLUSTER_NODES!.join(',') }),
    PIONEER_ADMIN_KEY: generateApiKey(),
    // a fixed key, so that every function of a run (and a test reading Redis) opens what another sealed
    PIONEER_SECRET_KEYS: 'test:K1XIhbucHO8/HEgdNHYl8kOjMk/MCXHAakXsZbcti3g=',
    PIONEER_LOG_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'silent',
    PIONEER_SUBSCRIPTION_POLL_MS: '100',
    PIONEER_SSE_HEARTBEAT_MS: '1000',
    PIONEER_KAFKA_SESSION_TIMEOUT_MS: '6000',
    PIONEER_KAFKA_CLIENT: testKafkaClientKind(),
    ...overrides,
  };
}

export interface TestPlatform {
  host: LocalHost;
  env: Record<string, string>;
  adminKey: string;
  url(name: string): string;
  stop(): Promise<void>;
}

/** Hosts `names` in this process, every function on a free port. */
export async function startPlatform(names: string[], overrides: Record<string, string> = {}): Promise<TestPlatform> {
  const env = platformEnv(overrides);
  for (const n of names) env[`PIONEER_${n.toUpperCase()}_PORT`] ??= '0';
  const host = await startLocalHost({ definitions: functionsNamed(names), env, log: createLogger({ level: env['PIONEER_LOG_LEVEL'] }) });
  return { host, env, adminKey: env['PIONEER_ADMIN_KEY']!, url: (n) => host.url(n), stop: () => host.stop() };
}

/** The route's variables for a test's own source topic: a fresh consumer group and a dead-letter topic beside it. */
export function routeEnv(topic: string): Record<string, string> {
  return { PIONEER_SOURCE_TOPICS: topic, PIONEER_ROUTE_GROUP: randomName('route'), PIONEER_DEAD_LETTER_TOPIC: `${topic}.dlq` };
}

/** Hosts `names` in a child process (so a test can kill -9 it); resolves once every function listens. */
export async function spawnFunctions(names: string[], env: Record<string, string>): Promise<{ child: ChildProcess; urls: Record<string, string>; output: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'adapters/local/main.ts'), ...names], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const urls: Record<string, string> = {};
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`functions exited with ${child.exitCode}: ${out}`);
      for (const m of out.matchAll(/pioneer: (\w+) listening on (\S+)/g)) urls[m[1]!] = m[2]!;
      return names.every((n) => urls[n]);
    },
    { timeout: 60000, message: `functions ${names.join(', ')} to listen` },
  );
  return { child, urls, output: () => out };
}

export async function killProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** A Kafka broker or redis-server of a test's own (for tests that crash it), in a temporary directory. */
export function ownService(kind: 'kafka' | 'redis') {
  const dir = mkdtempSync(join(tmpdir(), `pioneer-${kind}-`));
  const script = join(ROOT, 'scripts', `${kind}.sh`);
  const run = (cmd: string) => execFileSync('bash', [script, cmd, dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  return {
    dir,
    start: () => run('start'),
    stop: () => void run('stop'),
    kill9: () => void run('kill9'),
  };
}

/** A TCP port free on 127.0.0.1 at the moment of asking. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/**
 * Waits until the route appended `count` events to a subscription (its marks count them: a one-second hot window,
 * PIONEER_STREAM_HOT_SECONDS=1, trims the stream as the route appends), then produces `last` once the window has
 * moved past them, and waits until that append trimmed them from Redis: they are served from the cold tier then.
 */
export async function leaveHotWindow(
  redis: Redis,
  o: { tenantId: string; subId: string; count: number; topic: string; last: Message; brokers?: string },
): Promise<void> {
  const appended = async () => {
    let n = 0;
    for (const [, fields] of await redis.xrange(keys.marks(o.tenantId, o.subId), '-', '+')) n += Number(fields[fields.indexOf('n') + 1]);
    return n;
  };
  await waitFor(async () => (await appended()) >= o.count || undefined, { timeout: 90_000, message: `${o.count} events appended by the route` });
  await sleep(1500);
  await produce(o.topic, [o.last], o.brokers);
  await waitFor(async () => (await redis.xlen(keys.stream(o.tenantId, o.subId))) < 10 || undefined, { timeout: 30_000, message: 'the events trimmed from Redis' });
}

/** Calls the API: JSON in, { status, body, headers } out. */
export async function api(base: string, key: string | undefined, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(base + path, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Creates a tenant with a tenant key and a consumer key. */
export async function createTenant(subscriptionsUrl: string, adminKey: string, name = randomName('tenant')) {
  const t = await api(subscriptionsUrl, adminKey, 'POST', '/v1/tenants', { name });
  if (t.status !== 201) throw new Error(`tenant creation failed: ${t.status} ${JSON.stringify(t.body)}`);
  const c = await api(subscriptionsUrl, t.body.key.key, 'POST', `/v1/tenants/${t.body.id}/keys`, { role: 'consumer' });
  return { id: t.body.id as string, key: t.body.key.key as string, consumerKey: c.body.key as string };
}

export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

/** Reads SSE from `url` until `until` says stop (or the stream ends); returns the events read. */
export async function readSse(
  url: string,
  key: string,
  opts: { lastEventId?: string; until: (events: SseEvent[]) => boolean; timeout?: number; signal?: AbortSignal },
): Promise<{ events: SseEvent[]; status: number; body?: unknown }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), opts.timeout ?? 30000);
  opts.signal?.addEventListener('abort', () => ac.abort());
  const events: SseEvent[] = [];
  try {
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream', ...(opts.lastEventId ? { 'last-event-id': opts.lastEventId } : {}) },
      signal: ac.signal,
    });
    if (res.status !== 200) return { events, status: res.status, body: await res.json().catch(() => null) };
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let idx: number;
      while ((idx = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, idx);
        buf = buf.slice(idx + 2);
        const ev: SseEvent = { data: '' };
        let hasData = false;
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const [field, ...rest] = line.split(':');
          const value = rest.join(':').replace(/^ /, '');
          if (field === 'id') ev.id = value;
          else if (field === 'event') ev.event = value;
          else if (field === 'data') {
            ev.data += (hasData ? '\n' : '') + value;
            hasData = true;
          }
        }
        if (hasData) events.push(ev);
        if (opts.until(events)) {
          ac.abort();
          return { events, status: 200 };
        }
      }
    }
    return { events, status: 200 };
  } catch (err) {
    if ((err as Error).name === 'AbortError') return { events, status: 200 };
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** A CloudEvent in structured JSON form, for producing to a source topic. */
export function cloudEvent(tenantid: string, type: string, data: unknown, extra: Record<string, unknown> = {}) {
  return { specversion: '1.0', id: randomBytes(8).toString('hex'), source: '/test/bank', type, tenantid, time: new Date().toISOString(), datacontenttype: 'application/json', data, ...extra };
}

export function structuredMessage(event: Record<string, unknown>): Message {
  return {
    key: typeof event['partitionkey'] === 'string' ? (event['partitionkey'] as string) : null,
    value: JSON.stringify(event),
    headers: { 'content-type': 'application/cloudevents+json' },
  };
}
