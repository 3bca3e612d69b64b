/**
 * Flow counts of the later stages: how many of a tenant's events, per type and minute, the route appended to its
 * subscriptions' streams (`routed`) and the platform delivered (`delivered`: webhook deliveries answered 2xx,
 * events sent over SSE and in JSON pages). The insights function counts the first stage, the events that reached
 * the source topics (platform/insights/store.ts); GET /v1/insights/flow answers all three side by side.
 *
 * Keys (built in platform/redis/keys.ts, under the tenant's hash tag):
 *
 *   {t:T}:ins:routed:<minute>     hash  event type -> entries appended in that minute (ms / 60000, the route's clock)
 *   {t:T}:ins:delivered:<minute>  hash  event type -> entries delivered in that minute
 *
 * Each holds at most FLOW_TYPES_PER_MINUTE types (further ones count as "(other)") and expires FLOW_RETENTION_MS
 * after its minute. A process counts in memory and adds its counts every FLOW_FLUSH_MS, one script call per tenant
 * and minute (count-flow-1.lua), so the hot paths never wait on these counts. They are statistics for dashboards,
 * not a ledger: a process that crashes loses its last second of counts, and one that cannot reach Redis keeps at
 * most MAX_PENDING counts (tenant and minute) and drops the oldest past them.
 */
import type { PioneerRedis } from '../redis/client.ts';
import { insightsKeys } from '../redis/keys.ts';

export type FlowStage = 'routed' | 'delivered';
export const FLOW_STAGES: readonly FlowStage[] = ['routed', 'delivered'];
export const FLOW_TYPES_PER_MINUTE = 1000;
export const FLOW_RETENTION_MS = 48 * 3_600_000;
export const FLOW_FLUSH_MS = 1000;
const MAX_PENDING = 10_000;
/** a type is counted under its first 256 characters */
const MAX_TYPE = 256;
const OTHER = '(other)';

export interface FlowCounter {
  /** counts `n` events of `type` for the tenant, in the current minute */
  add(tenantId: string, type: string, n?: number): void;
  /** counts one event of each type listed (a batch's): one addition per distinct type, not per event */
  addEach(tenantId: string, types: Iterable<string>): void;
  /** adds what was counted to Redis now */
  flush(): Promise<void>;
  /** stops the timer, after a last flush */
  close(): Promise<void>;
}

export function createFlowCounter(redis: PioneerRedis, stage: FlowStage, { flushMs = FLOW_FLUSH_MS, now = Date.now } = {}): FlowCounter {
  // "<minute>\n<tenant>" -> type -> count, in the order first counted (the oldest first)
  let pending = new Map<string, Map<string, number>>();
  let flushing: Promise<void> | undefined;

  function merge(into: Map<string, Map<string, number>>, key: string, type: string, n: number): void {
    let types = into.get(key);
    if (!types) {
      if (into.size >= MAX_PENDING) into.delete(into.keys().next().value!);
      into.set(key, (types = new Map()));
    }
    const t = types.has(type) || types.size < FLOW_TYPES_PER_MINUTE ? type : OTHER;
    types.set(t, (types.get(t) ?? 0) + n);
  }

  async function flushNow(): Promise<void> {
    if (pending.size === 0) return;
    const batch = pending;
    pending = new Map();
    const failed: [string, Map<string, number>][] = [];
    await Promise.all(
      [...batch].map(async ([key, types]) => {
        const [minute, tenantId] = key.split('\n') as [string, string];
        const args: string[] = [];
        for (const [type, n] of types) args.push(type, String(n));
        try {
          await redis.countFlow(insightsKeys.stageFlow(tenantId, stage, Number(minute)), String((Number(minute) + 1) * 60_000 + FLOW_RETENTION_MS), String(FLOW_TYPES_PER_MINUTE), ...args);
        } catch {
          failed.push([key, types]);
        }
      }),
    );
    // counts not added are tried again with the next flush, before what came meanwhile
    if (failed.length > 0) {
      const later = pending;
      pending = new Map();
      for (const [key, types] of [...failed, ...later]) for (const [type, n] of types) merge(pending, key, type, n);
    }
  }

  function flush(): Promise<void> {
    // one flush at a time: a slow one is joined, not overlapped
    flushing ??= flushNow().finally(() => (flushing = undefined));
    return flushing;
  }

  const timer = setInterval(() => void flush(), flushMs);
  timer.unref();

  function add(tenantId: string, type: string, n = 1): void {
    if (n <= 0) return;
    merge(pending, `${Math.floor(now() / 60_000)}\n${tenantId}`, type.length > MAX_TYPE ? type.slice(0, MAX_TYPE) : type, n);
  }

  return {
    add,
    addEach(tenantId, types) {
      const counts = new Map<string, number>();
      for (const type of types) counts.set(type, (counts.get(type) ?? 0) + 1);
      for (const [type, n] of counts) add(tenantId, type, n);
    },
    flush,
    async close() {
      clearInterval(timer);
      await flushing;
      await flush();
    },
  };
}

/** The tenant's counts of `stage` per type for each of `minutes` (ms / 60000), in order. */
export function readStageFlow(redis: PioneerRedis, tenantId: string, stage: FlowStage, minutes: readonly number[]): Promise<Record<string, number>[]> {
  return readCountHashes(redis, minutes.map((m) => insightsKeys.stageFlow(tenantId, stage, m)));
}

/** Hashes of counts (field -> integer), in order: one round trip (one tenant's keys: one slot). */
export async function readCountHashes(redis: PioneerRedis, keys: readonly string[]): Promise<Record<string, number>[]> {
  const pipe = redis.pipeline();
  for (const key of keys) pipe.hgetall(key);
  const replies = (await pipe.exec()) ?? [];
  return replies.map(([err, h]) => {
    if (err) throw err;
    return Object.fromEntries(Object.entries(h as Record<string, string>).map(([k, v]) => [k, Number(v)]));
  });
}
