/**
 * ioredis clients with the platform's Lua scripts defined on them (loaded once per client with
 * `defineCommand`, then called by SHA). Each script is a file in ./scripts named verb-noun-<key count>.lua, or
 * verb-noun-n.lua when the caller passes the number of keys first.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Cluster, Command, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { ConfigError } from '../config/env.ts';
import { keys } from './keys.ts';
import { EncodedCommand } from './encoded-command.ts';

export type { Redis };

const SCRIPTS = [
  'append-events-n',
  // subscriptions (platform/store/subscriptions.ts)
  'create-subscription-3', 'replace-subscription-2',
  // deliver
  'ensure-endpoint-2', 'step-endpoint-5', 'replay-deadletters-3', 'switch-endpoint-1', 'rotate-secret-1', 'reseal-secrets-1',
  // ingest and the schema registry
  'take-tokens-1', 'reserve-event-1', 'register-schema-2',
  // leases: single-holder and counted (platform/redis/leases.ts)
  'take-lease-1', 'renew-lease-1', 'release-lease-1', 'take-slot-1', 'renew-slot-1',
  // insights (platform/insights/store.ts)
  'apply-insights-1', 'count-customers-1',
  // flow counts of route, deliver and gateway (platform/insights/flow.ts)
  'count-flow-1',
  // reference data (platform/reference/store.ts)
  'put-references-1',
] as const;

export interface PioneerRedis extends Redis {
  /** platform/redis/scripts/append-events-n.lua: called through appendToStreams (arguments from appendEventsArgs) */
  appendEvents(numKeys: number, ...keysThenArgs: (string | Buffer)[]): Promise<number[]>;
  /** platform/store/subscriptions.ts calls these through its own typed functions */
  createSubscription(ids: string, record: string, specs: string, id: string, json: string, max: string, digest: string, spec: string): Promise<number>;
  replaceSubscription(record: string, specs: string, expected: string, json: string, digest: string, spec: string): Promise<number>;

  // ingest and the schema registry (platform/redis/scripts/*.lua document the arguments)
  takeTokens(bucket: string, ratePerSecond: string, burst: string, wanted: string): Promise<[number, number]>;
  reserveEvent(eventKey: string, source: string, leaseMs: string, windowSeconds: string): Promise<string | null>;
  registerSchema(latest: string, versions: string, type: string, checkedAgainst: string, record: string): Promise<number>;

  // deliver (platform/redis/scripts/*.lua document the arguments)
  ensureEndpoint(endpoint: string, stream: string, id: string, secret: string, from: 'start' | 'end', now: string): Promise<number>;
  stepEndpoint(
    endpoint: string, lease: string, attempts: string, deadLetters: string, redeliver: string,
    owner: string, nowMs: string,
    head: string, outcome: '' | 'delivered' | 'retry' | 'dead' | 'gone', nextAt: string, record: string, keep: string,
    reason: string, event: string, type: string, webhookId: string, deadCap: string,
    begin: '' | 'begin', after: string, live: string, checkedSecrets: string,
  ): Promise<[recorded: 1 | 0 | -3, begun: 1, attempt: number, fields: string[], queued: string | null] | [recorded: 1 | 0 | -3, begun: 0, attempt: 0, fields: string[]] | [recorded: 1 | 0 | -3 | -1, begun: 0 | -1 | -2]>;
  replayDeadletters(deadLetters: string, redeliver: string, endpoint: string, max: string): Promise<number>;
  switchEndpoint(endpoint: string, state: 'enabled' | 'disabled', reason: string, nowMs: string): Promise<number>;
  rotateSecret(endpoint: string, secret: string, previousUntilMs: string, current: string, previous: string): Promise<number>;
  resealSecrets(endpoint: string, secret: string, secretSealed: string, previous: string, previousSealed: string): Promise<number>;

  /** leases: platform/redis/leases.ts calls these through its own typed functions */
  takeLease(lease: string, owner: string, ttlMs: string): Promise<[taken: 1] | [taken: 0, holder: string]>;
  renewLease(lease: string, owner: string, ttlMs: string): Promise<0 | 1>;
  releaseLease(lease: string, owner: string): Promise<0 | 1>;
  takeSlot(set: string, lease: string, max: string, ttlMs: string): Promise<[taken: 0 | 1, held: number]>;
  renewSlot(set: string, lease: string, ttlMs: string): Promise<0 | 1>;

  /** insights: platform/insights/store.ts calls it through applyInsightsBatch (the script documents the arguments) */
  applyInsights(positions: string, ...args: string[]): Promise<[status: 1, recorded: number, attributed: number] | [status: -1]>;
  /** insights: platform/insights/store.ts calls it through readFigures */
  countCustomers(campaigns: string, ...args: string[]): Promise<number[]>;
  /** flow counts: platform/insights/flow.ts calls it through its flush */
  countFlow(flow: string, expiresAtMs: string, maxTypes: string, ...typeThenCount: string[]): Promise<number>;

  /** reference data: platform/reference/store.ts calls it through putReferences (the script documents the arguments) */
  putReferences(table: string, ...args: string[]): Promise<number[]>;
}

/**
 * One subscription's part of an appendEvents call: its eight keys (see the script), the digest of the matching
 * spec its events were matched with and the replay that marks them ("" for live events), which the run's mark
 * records so that the cold tier derives the same events again, and its events in source order. An event that
 * several subscriptions of one call get as it is is one StreamEvent object, sent once for all of them.
 */
export interface StreamBatch {
  keys: readonly [subscription: string, stream: string, dedup: string, positions: string, seenNow: string, seenPrev: string, marks: string, deadLetters: string];
  spec: string;
  replay: string;
  events: StreamEvent[];
}

/** One event of a StreamBatch. */
export interface StreamEvent {
  /** its source offset, "" when unknown (then `dedupId` deduplicates it) */
  offset: string;
  /** "<source> <id>", which deduplicates when the offset is unknown ("" when it is known) */
  dedupId: string;
  type: string;
  /** the structured CloudEvent JSON stored in the stream: its text, or the record's bytes when they are that text */
  json: string | Buffer;
  /** why the event is set aside in the subscription's dead letters instead (its transform failed); absent: appended */
  setAside?: string;
}

/** Values an event takes in a call at most: four in the call's table of events, two in each subscription's list. */
export const EVENT_VALUES = 6;

/**
 * A subscription's eight keys for appendEvents: its record, stream, the dedup hash (its positions, or a replay's
 * progress), its positions (for the trimmed and cold markers), the seen-sets of `hour` and the hour before, its
 * marks and its dead letters.
 */
export function appendKeys(tenantId: string, subId: string, hour: number, dedup = keys.positions(tenantId, subId)): StreamBatch['keys'] {
  return [
    keys.subscription(tenantId, subId), keys.stream(tenantId, subId), dedup, keys.positions(tenantId, subId),
    keys.seen(tenantId, subId, hour), keys.seen(tenantId, subId, hour - 1), keys.marks(tenantId, subId), keys.deadLetters(tenantId, subId),
  ];
}

/** Where a source batch's events are appended, shared by all the subscriptions of one appendToStreams. */
export interface AppendTarget {
  /** the position field "<topic>/<partition>", or "" when the source position is unknown (dedup by id) */
  field: string;
  /** the stream size cap (entries) */
  maxLen: number;
  /** stream entries older than this (ms since the epoch) leave the hot window: they are trimmed */
  hotFromMs: number;
  /** marks of runs older than this are trimmed: cursors older than the newest of them no longer resume */
  resumableFromMs: number;
}

/** How many dead letters a subscription keeps at most when the route sets events aside (deliver's default cap). */
export const SET_ASIDE_CAP = 100_000;

/**
 * The arguments of one appendEvents call: the batches of one tenant's subscriptions from one source batch. The
 * call's events go once into its table (offset, dedup id, type, JSON), in the order first met, however many of the
 * subscriptions get them; each subscription lists its events as their places in the table, with why each is set
 * aside ("" when it is appended).
 */
export function appendEventsArgs(target: AppendTarget, batches: readonly StreamBatch[]): [number, ...(string | Buffer)[]] {
  const table: (string | Buffer)[] = [];
  const lists: string[] = [];
  const places = new Map<StreamEvent, number>();
  for (const b of batches) {
    lists.push(String(b.events.length), b.spec, b.replay);
    for (const e of b.events) {
      let place = places.get(e);
      if (place === undefined) {
        places.set(e, (place = places.size + 1));
        table.push(e.offset, e.dedupId, e.type, e.json);
      }
      lists.push(String(place), e.setAside ?? '');
    }
  }
  const args: [number, ...(string | Buffer)[]] = [batches.length * 8];
  for (const b of batches) for (const key of b.keys) args.push(key);
  args.push(
    target.field, String(target.maxLen), String(Math.floor(target.hotFromMs)), String(Math.floor(target.resumableFromMs)), String(Date.now()), String(SET_ASIDE_CAP),
    String(places.size),
  );
  for (const v of table) args.push(v);
  for (const v of lists) args.push(v);
  return args;
}

/**
 * The appendEvents calls for the batches of one tenant's subscriptions: as few as possible, each at most about
 * `maxValues` event values (EVENT_VALUES per event and subscription; a subscription's batch is never split), so
 * that one call's arguments stay within what Redis parses comfortably, however many subscriptions a batch matched.
 */
export function appendEventsCalls(target: AppendTarget, batches: Iterable<StreamBatch>, maxValues = 16_384): [number, ...(string | Buffer)[]][] {
  const calls: [number, ...(string | Buffer)[]][] = [];
  let chunk: StreamBatch[] = [];
  let size = 0;
  for (const b of batches) {
    const values = b.events.length * EVENT_VALUES;
    if (size > 0 && size + values > maxValues) {
      calls.push(appendEventsArgs(target, chunk));
      chunk = [];
      size = 0;
    }
    chunk.push(b);
    size += values;
  }
  if (chunk.length > 0) calls.push(appendEventsArgs(target, chunk));
  return calls;
}

/** What one subscription's batch came to. */
export interface AppendOutcome {
  /** events appended to its stream */
  added: number;
  /** events skipped as appended before (a re-delivery, or a retried replay batch) */
  skipped: number;
  /** the subscription is gone (deleted meanwhile): nothing was appended */
  deleted: boolean;
}

/** The append script's text and SHA1: its calls are written by EncodedCommand, not through `appendEvents`. */
const APPEND_SCRIPT = scriptText('append-events-n');
const APPEND_SHA = createHash('sha1').update(APPEND_SCRIPT).digest('hex');

/** One appendEvents call, by the script's SHA1; once more with the script itself when Redis does not hold it (NOSCRIPT). */
function appendCall(redis: PioneerRedis, args: readonly [number, ...(string | Buffer)[]]): { command: EncodedCommand; reply: Promise<number[]> } {
  const argv: (string | Buffer)[] = new Array(args.length + 1);
  argv[0] = APPEND_SHA;
  argv[1] = String(args[0]);
  for (let i = 1; i < args.length; i++) argv[i + 1] = args[i] as string | Buffer;
  const command = new EncodedCommand('evalsha', argv);
  const reply = (command.promise as Promise<number[]>).catch((err: Error) => {
    if (!String(err?.message).includes('NOSCRIPT')) throw err;
    const again = new EncodedCommand('eval', [APPEND_SCRIPT, ...argv.slice(1)]);
    void redis.sendCommand(again);
    return again.promise as Promise<number[]>;
  });
  return { command, reply };
}

/**
 * Runs `send`, whose commands then go out together: the sockets of `redis` (a Cluster's masters) are corked while it
 * runs and uncorked on the next tick, so that they leave in one write per connection (one round trip), the
 * commands' buffers as they are, rather than one write each.
 */
export function sentTogether<T>(redis: PioneerRedis, send: () => T): T {
  const sockets = serversOf(redis).map((server) => server.stream).filter((socket) => socket !== undefined && socket !== null);
  for (const socket of sockets) socket.cork();
  try {
    return send();
  } finally {
    process.nextTick(() => {
      for (const socket of sockets) socket.uncork();
    });
  }
}

/**
 * Appends the batches of one source batch, grouped by tenant (each group's keys share the tenant's hash tag: one
 * Cluster slot), with as few appendEvents calls per tenant as appendEventsCalls makes. The calls go out together
 * (sentTogether: one round trip per connection), each on its own: no pipeline or transaction spans tenants, and
 * every call holds one tenant's keys only. The outcome of each batch, per group, in the order given.
 */
export async function appendToStreams(redis: PioneerRedis, target: AppendTarget, groups: readonly (readonly StreamBatch[])[]): Promise<AppendOutcome[][]> {
  const replies = sentTogether(redis, () =>
    groups.map((batches) =>
      appendEventsCalls(target, batches).map((args) => {
        const { command, reply } = appendCall(redis, args);
        void redis.sendCommand(command);
        return reply;
      }),
    ),
  );
  const counts = await Promise.all(replies.map((calls) => Promise.all(calls)));
  // each call returns {appended, skipped} per batch, flat, in the order of its batches; the calls keep the order
  return groups.map((batches, g) => {
    const flat = counts[g]!.flat();
    return batches.map((_, i) => {
      const added = Number(flat[i * 2]);
      return added < 0 ? { added: 0, skipped: 0, deleted: true } : { added, skipped: Number(flat[i * 2 + 1]), deleted: false };
    });
  });
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

function scriptText(file: string): string {
  return readFileSync(fileURLToPath(new URL(`./scripts/${file}.lua`, import.meta.url)), 'utf8');
}

function loadScripts(redis: Redis | Cluster): void {
  for (const file of SCRIPTS) {
    const lua = scriptText(file);
    const [verb, noun, count] = file.split('-') as [string, string, string];
    const name = verb + noun[0]!.toUpperCase() + noun.slice(1);
    redis.defineCommand(name, count === 'n' ? { lua } : { numberOfKeys: Number(count), lua });
  }
}

/**
 * How long /readyz waits for Redis to answer PING. Past it Redis counts as unreachable, so that a probe is
 * answered within it even when the connection is silent (a network that drops packets, a stopped server).
 */
export const REDIS_READY_TIMEOUT_MS = 1500;

/** True when Redis answers PING within `timeoutMs` (for /readyz); false, not an error, when it does not. */
export async function redisReachable(redis: Redis, timeoutMs = REDIS_READY_TIMEOUT_MS): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const silent = new Promise<false>((resolve) => (timer = setTimeout(resolve, timeoutMs, false)));
    return await Promise.race([redis.ping().then((reply) => reply === 'PONG'), silent]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * How long a command may take, from the call (a command queued while reconnecting included) to its reply,
 * before it fails with "Command timed out": an HTTP handler then answers 503 redis_unavailable rather than
 * hanging on a Redis that is down, stopped or cut off. Blocking reads (XREAD BLOCK) are exempt: they wait as
 * long as they ask, and `blockingTimeout` only guards them against a connection that died silently.
 */
export const REDIS_COMMAND_TIMEOUT_MS = 2000;

/** Sets the command timeout on every non-blocking command (blocking reads wait as long as they ask). */
function timed(command: Command, commandTimeoutMs: number): void {
  if (commandTimeoutMs > 0 && !Command.checkFlag('BLOCKING_COMMANDS', command.name)) command.setTimeout(commandTimeoutMs);
}

/** A client whose non-blocking commands time out after `commandTimeoutMs` (0: never). */
class TimedRedis extends Redis {
  constructor(url: string, options: Omit<RedisOptions, 'replyMapping'>, private readonly commandTimeoutMs: number) {
    super(url, options);
  }

  override sendCommand(command: Command, stream?: Parameters<Redis['sendCommand']>[1]): unknown {
    timed(command, this.commandTimeoutMs);
    return super.sendCommand(command, stream);
  }
}

/** The same on a Redis Cluster. */
class TimedCluster extends Cluster {
  constructor(nodes: { host: string; port: number }[], options: Omit<ClusterOptions, 'redisOptions'> & { redisOptions: Omit<RedisOptions, 'replyMapping'> }, private readonly commandTimeoutMs: number) {
    super(nodes, options as ClusterOptions & { redisOptions: { replyMapping?: 'legacy' } });
  }

  override sendCommand(command: Command, stream?: Parameters<Cluster['sendCommand']>[1], node?: Parameters<Cluster['sendCommand']>[2]): unknown {
    timed(command, this.commandTimeoutMs);
    return super.sendCommand(command, stream, node);
  }
}

/**
 * Where Redis is: one server (`PIONEER_REDIS_URL`) or a Redis Cluster (`PIONEER_REDIS_CLUSTER_NODES`, seed
 * `host:port`s, which then replaces the URL). A string is a URL.
 */
export type RedisTarget = string | { PIONEER_REDIS_URL?: string | undefined; PIONEER_REDIS_CLUSTER_NODES?: string[] | undefined };

export type RedisClientOptions = Omit<RedisOptions, 'replyMapping'> & { name?: string; commandTimeoutMs?: number };

/**
 * A client that fails fast when Redis is away, so that HTTP handlers answer 503 within
 * REDIS_COMMAND_TIMEOUT_MS: a command waits for at most one reconnection attempt (maxRetriesPerRequest 1)
 * and never longer than `commandTimeoutMs`. Background loops (the route's appends, deliver's lanes) retry
 * failed steps themselves; one that would rather wait passes `commandTimeoutMs: 0` and its own
 * `maxRetriesPerRequest`.
 *
 * On a Redis Cluster the client is ioredis' Cluster client, typed as the single-server one: every script and
 * multi-key command of the platform touches one slot (a tenant's keys share the hash tag {t:<tenant>}), and
 * concurrent commands are pipelined per node by the client itself (enableAutoPipelining), so callers issue the
 * calls of different tenants concurrently rather than in one pipeline. `isCluster(redis)` tells them apart
 * where the difference matters (blocking reads, SCAN).
 */
export function createRedis(target: RedisTarget, opts: RedisClientOptions = {}): PioneerRedis {
  const { name, commandTimeoutMs = REDIS_COMMAND_TIMEOUT_MS, ...rest } = opts;
  const options: Omit<RedisOptions, 'replyMapping'> = {
    connectionName: name ? `pioneer-${name}` : 'pioneer',
    maxRetriesPerRequest: 1,
    blockingTimeout: commandTimeoutMs > 0 ? commandTimeoutMs : undefined,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    ...rest,
  };
  const seeds = typeof target === 'string' ? undefined : target.PIONEER_REDIS_CLUSTER_NODES;
  const url = typeof target === 'string' ? target : target.PIONEER_REDIS_URL;
  let redis: Redis | Cluster;
  if (seeds && seeds.length > 0) {
    redis = new TimedCluster(
      seeds.map((seed) => {
        const at = seed.lastIndexOf(':');
        return { host: seed.slice(0, at), port: Number(seed.slice(at + 1)) };
      }),
      {
        redisOptions: options,
        enableAutoPipelining: true,
        // the client groups a command by the slot of its first argument: for a script called with its number of
        // keys first, that is not a key, so it goes on its own
        autoPipeliningIgnoredCommands: ['appendEvents'],
        maxRedirections: 16,
        retryDelayOnFailover: 200,
        retryDelayOnClusterDown: 300,
        retryDelayOnTryAgain: 100,
        clusterRetryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
        slotsRefreshTimeout: 2000,
      },
      commandTimeoutMs,
    );
  } else if (url) {
    redis = new TimedRedis(url, options, commandTimeoutMs);
  } else {
    throw new ConfigError('invalid configuration: PIONEER_REDIS_URL is required (or PIONEER_REDIS_CLUSTER_NODES for a Redis Cluster)');
  }
  redis.on('error', () => {
    // connection errors surface on the commands that fail; ioredis reconnects by itself
  });
  loadScripts(redis);
  return redis as unknown as PioneerRedis;
}

/** Whether `redis` talks to a Redis Cluster. */
export function isCluster(redis: Redis | PioneerRedis): boolean {
  return (redis as unknown as { isCluster?: boolean }).isCluster === true;
}

/** The connection of a Cluster client to the master serving `key`'s slot, and how many replicas the slot lists. */
export function masterOf(cluster: Cluster, key: string): { node: Redis; replicas: number } | undefined {
  const [master, ...replicas] = cluster.slots[calculateSlot(key)] ?? [];
  const node = master === undefined ? undefined : cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === master);
  return node && { node, replicas: replicas.length };
}

/**
 * On a Redis Cluster, waits until at least one replica of each master holding one of `keys` has every write this
 * client sent that master (WAIT, on the client's own connection to it), for at most `timeoutMs`. Replication is
 * asynchronous: a master that dies before its replica has a write loses it in the failover, so a caller that
 * is about to record "done" somewhere else (the route's position, on another master) waits first. A master whose
 * slot lists no replica (its replica failed over, or is down) is not waited for: nothing could confirm, and every
 * batch would pay the whole timeout. Answers how many masters could not confirm in time, those without a replica
 * included (0 on a single server, which has no replica to wait for).
 */
export async function waitForReplicas(redis: PioneerRedis, keys: readonly string[], timeoutMs: number): Promise<number> {
  if (!isCluster(redis) || keys.length === 0) return 0;
  const masters = new Map<Redis, number>();
  for (const key of keys) {
    const found = masterOf(redis as unknown as Cluster, key);
    if (found) masters.set(found.node, found.replicas);
  }
  const acked = await Promise.all([...masters].map(([node, replicas]) => (replicas === 0 ? 0 : node.wait(1, timeoutMs).catch(() => 0))));
  return acked.filter((n) => n < 1).length;
}

/** The servers holding the data, for commands that walk one server (SCAN): the client itself, or a Cluster's masters. */
export function serversOf(redis: Redis | PioneerRedis): Redis[] {
  return isCluster(redis) ? (redis as unknown as Cluster).nodes('master') : [redis as Redis];
}
