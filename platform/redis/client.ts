/**
 * ioredis clients with the platform's Lua scripts defined on them (loaded once per client with
 * `defineCommand`, then called by SHA). Each script is a file in ./scripts named verb-noun-<key count>.lua, or
 * verb-noun-n.lua when the caller passes the number of keys first.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis, type RedisOptions } from 'ioredis';
import { keys } from './keys.ts';

export type { Redis };

const SCRIPTS = [
  'append-events-n',
  // deliver
  'ensure-endpoint-2', 'begin-attempt-2', 'finish-attempt-5', 'replay-deadletters-3', 'switch-endpoint-1', 'rotate-secret-1',
  'renew-lease-1', 'release-lease-1',
  // ingest and the schema registry
  'take-tokens-1', 'reserve-event-1', 'register-schema-2',
] as const;

export interface PioneerRedis extends Redis {
  /** the route and replays: arguments from appendEventsArgs (platform/redis/scripts/append-events-n.lua) */
  appendEvents(numKeys: number, ...keysThenArgs: string[]): Promise<number[]>;

  // ingest and the schema registry (platform/redis/scripts/*.lua document the arguments)
  takeTokens(bucket: string, ratePerSecond: string, burst: string, wanted: string): Promise<[number, number]>;
  reserveEvent(eventKey: string, source: string, leaseMs: string, windowSeconds: string): Promise<string | null>;
  registerSchema(latest: string, versions: string, type: string, checkedAgainst: string, record: string): Promise<number>;

  // deliver (platform/redis/scripts/*.lua document the arguments)
  ensureEndpoint(endpoint: string, stream: string, id: string, secret: string, from: 'start' | 'end', now: string): Promise<number>;
  beginAttempt(endpoint: string, lease: string, owner: string, head: string, nowMs: string): Promise<number>;
  finishAttempt(
    endpoint: string, lease: string, attempts: string, deadLetters: string, redeliver: string,
    owner: string, head: string, outcome: 'delivered' | 'retry' | 'dead' | 'gone', nextAt: string, record: string, keep: string,
    nowMs: string, reason: string, event: string, type: string, webhookId: string, deadCap: string,
  ): Promise<number>;
  replayDeadletters(deadLetters: string, redeliver: string, endpoint: string, max: string): Promise<number>;
  switchEndpoint(endpoint: string, state: 'enabled' | 'disabled', reason: string, nowMs: string): Promise<number>;
  rotateSecret(endpoint: string, secret: string, previousUntilMs: string): Promise<number>;
  renewLease(lease: string, owner: string, ttlMs: string): Promise<number>;
  releaseLease(lease: string, owner: string): Promise<number>;
}

/** One subscription's part of an appendEvents call: its six keys (see the script) and its events, four values each. */
export interface StreamBatch {
  keys: readonly [subscription: string, stream: string, dedup: string, trimmed: string, seenNow: string, seenPrev: string];
  events: string[];
}

/**
 * A subscription's six keys for appendEvents: its record, stream, the dedup hash (its positions, or a replay's
 * progress), its positions (for the trimmed marker) and the seen-sets of `hour` and the hour before.
 */
export function appendKeys(tenantId: string, subId: string, hour: number, dedup = keys.positions(tenantId, subId)): StreamBatch['keys'] {
  return [
    keys.subscription(tenantId, subId), keys.stream(tenantId, subId), dedup, keys.positions(tenantId, subId),
    keys.seen(tenantId, subId, hour), keys.seen(tenantId, subId, hour - 1),
  ];
}

/** The arguments of one appendEvents call: the batches of one tenant's subscriptions from one source batch. */
export function appendEventsArgs(field: string, maxLen: string, retainFromMs: string, batches: readonly StreamBatch[]): [number, ...string[]] {
  const keys: string[] = [];
  const args: string[] = [field, maxLen, retainFromMs];
  for (const b of batches) {
    keys.push(...b.keys);
    args.push(String(b.events.length / 4));
    for (const v of b.events) args.push(v);
  }
  return [keys.length, ...keys, ...args];
}

/**
 * The appendEvents calls for the batches of one tenant's subscriptions: as few as possible, each at most about
 * `maxValues` event values (a subscription's batch is never split), so that one call's arguments stay within
 * what a JavaScript call spreads and Redis parses comfortably, however many subscriptions a batch matched.
 */
export function appendEventsCalls(
  field: string, maxLen: string, retainFromMs: string, batches: Iterable<StreamBatch>, maxValues = 16_384,
): [number, ...string[]][] {
  const calls: [number, ...string[]][] = [];
  let chunk: StreamBatch[] = [];
  let size = 0;
  for (const b of batches) {
    if (size > 0 && size + b.events.length > maxValues) {
      calls.push(appendEventsArgs(field, maxLen, retainFromMs, chunk));
      chunk = [];
      size = 0;
    }
    chunk.push(b);
    size += b.events.length;
  }
  if (chunk.length > 0) calls.push(appendEventsArgs(field, maxLen, retainFromMs, chunk));
  return calls;
}

/** A pipeline of the platform's script commands (ioredis does not type custom commands on pipelines). */
export interface PioneerPipeline {
  appendEvents(...args: Parameters<PioneerRedis['appendEvents']>): PioneerPipeline;
  reserveEvent(...args: Parameters<PioneerRedis['reserveEvent']>): PioneerPipeline;
  exec(): Promise<[Error | null, unknown][] | null>;
}

export function scriptPipeline(redis: PioneerRedis): PioneerPipeline {
  return redis.pipeline() as unknown as PioneerPipeline;
}

function loadScripts(redis: Redis): void {
  for (const file of SCRIPTS) {
    const lua = readFileSync(fileURLToPath(new URL(`./scripts/${file}.lua`, import.meta.url)), 'utf8');
    const [verb, noun, count] = file.split('-') as [string, string, string];
    const name = verb + noun[0]!.toUpperCase() + noun.slice(1);
    redis.defineCommand(name, count === 'n' ? { lua } : { numberOfKeys: Number(count), lua });
  }
}

/** True when Redis answers PING (for /readyz); false, not an error, when it does not. */
export async function redisReachable(redis: Redis): Promise<boolean> {
  try {
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  }
}

export function createRedis(url: string, opts: RedisOptions & { name?: string } = {}): PioneerRedis {
  const { name, ...rest } = opts;
  const redis = new Redis(url, {
    connectionName: name ? `pioneer-${name}` : 'pioneer',
    maxRetriesPerRequest: 3,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    ...rest,
  });
  redis.on('error', () => {
    // connection errors surface on the commands that fail; ioredis reconnects by itself
  });
  loadScripts(redis);
  return redis as PioneerRedis;
}
