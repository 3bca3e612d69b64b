/**
 * Which endpoints this deliver instance works, and one lane (an async loop) per endpoint it works.
 *
 * Every instance follows the subscriptions with a sink (polling pioneer:subscriptions:version) and takes the
 * endpoints nobody holds: a lease {t:T}:ep:<sub>:lease (SET NX PX) that its owner renews every third of its
 * time to live. An instance that dies stops renewing and another takes its endpoints once the lease expired;
 * every state change of a delivery is fenced by the lease (pipeline.ts). So any number of instances can run,
 * each endpoint worked by exactly one at a time, endpoints spread over them first come first served.
 *
 * A lane sends one event at a time and moves on only when it succeeded (or was dead-lettered), which keeps
 * strict order per endpoint; lanes are independent, so a slow or failing endpoint delays only itself.
 * A lane holds no timer of its own that matters: it reads next_at from Redis before each step.
 */
import type { PioneerRedis } from '../../platform/redis/client.ts';
import { keys } from '../../platform/redis/keys.ts';
import { toEntries } from '../../platform/redis/streams.ts';
import type { Logger } from '../../platform/telemetry/logger.ts';
import type { Subscription, SubscriptionStore } from '../../platform/store/subscriptions.ts';
import { parseEndpoint, type EndpointStore } from '../../platform/webhooks/endpoints.ts';
import type { DeliveryPipeline, HeadEvent, Lane } from './pipeline.ts';

export interface LaneTimings {
  /** how often the subscription list's version is checked */
  subscriptionPollMs: number;
  /** how long a lane that just found nothing waits before looking for new events */
  pollMs: number;
  /** the longest wait of a lane that keeps finding nothing (its wait doubles from pollMs up to this) */
  idlePollMaxMs: number;
  /** how long a disabled or waiting lane sleeps at most before reading its endpoint again */
  recheckMs: number;
  leaseMs: number;
  /** how often endpoints held by nobody (e.g. a dead instance's, once expired) are looked for */
  claimMs: number;
  /** the most endpoints this instance works */
  maxEndpoints: number;
  /** pause after a Redis error before a lane tries again */
  errorBackoffMs: number;
}

interface RunningLane extends Lane {
  active: boolean;
  /** the current wait between empty looks, doubling while the stream stays quiet */
  idleMs: number;
  disabled: boolean;
  wake: () => void;
  done: Promise<void>;
}

export function createLaneScheduler(deps: {
  redis: PioneerRedis;
  store: SubscriptionStore;
  endpoints: EndpointStore;
  pipeline: DeliveryPipeline;
  owner: string;
  timings: LaneTimings;
  log: Logger;
}) {
  const { redis, store, endpoints, pipeline, owner, timings, log } = deps;
  const lanes = new Map<string, RunningLane>();
  let sinks = new Map<string, Subscription>();
  let version: string | null = null;
  let lastClaim = 0;
  let lastRenew = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const laneKey = (tenantId: string, subId: string) => `${tenantId}/${subId}`;

  function sleep(lane: RunningLane, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        lane.wake = () => {};
        resolve();
      }
      lane.wake = done;
    });
  }

  /** One step of a lane; returns how long to wait before the next one. */
  async function step(lane: RunningLane): Promise<number> {
    const epKey = keys.endpoint(lane.tenantId, lane.subId);
    const read = await redis.multi().hgetall(epKey).lindex(keys.redeliver(lane.tenantId, lane.subId), 0).exec();
    const raw = (read?.[0]?.[1] ?? {}) as Record<string, string>;
    const queued = read?.[1]?.[1] as string | null;
    let ep = parseEndpoint(raw);
    if (!ep) {
      // a sink without an endpoint record (its creation was cut short): create it now, delivering from the start;
      // none when the subscription is gone (this lane stops at the next refresh)
      if (!(await redis.exists(keys.subscription(lane.tenantId, lane.subId)))) return timings.recheckMs;
      await endpoints.ensure(lane.tenantId, lane.subId, 'start');
      ep = await endpoints.get(lane.tenantId, lane.subId);
      if (!ep) return timings.recheckMs;
    }
    lane.disabled = ep.state === 'disabled';
    if (lane.disabled) return timings.recheckMs;
    const now = Date.now();
    if (ep.next_at !== undefined && ep.next_at > now) return Math.min(ep.next_at - now, timings.recheckMs);

    let head: HeadEvent | null = null;
    if (queued) {
      const q = JSON.parse(queued) as { cursor: string; type: string; event: string };
      head = { from: 'replay', cursor: q.cursor, type: q.type, event: q.event };
    } else {
      const raw = (await redis.xrange(keys.stream(lane.tenantId, lane.subId), `(${ep.cursor}`, '+', 'COUNT', 1)) as [string, string[]][];
      const entry = toEntries(raw)[0];
      if (entry) head = { from: 'live', cursor: entry.cursor, type: entry.type, event: entry.event };
    }
    if (!head) {
      lane.idleMs = lane.idleMs === 0 ? timings.pollMs : Math.min(lane.idleMs * 2, Math.max(timings.pollMs, timings.idlePollMaxMs));
      return lane.idleMs;
    }
    lane.idleMs = 0;

    const result = await pipeline.deliver(lane, ep, head);
    if (result === 'lost') {
      log.info({ subscription: lane.subId }, 'endpoint lease lost; another instance works it now');
      stopLane(lane);
      return 0;
    }
    if (result === 'gone' || result === 'dead' || result === 'disabled') lane.disabled = true;
    return 0;
  }

  async function run(lane: RunningLane): Promise<void> {
    while (lane.active) {
      let wait: number;
      try {
        wait = await step(lane);
      } catch (err) {
        log.warn({ err, subscription: lane.subId }, 'delivery step failed; trying again');
        wait = timings.errorBackoffMs;
      }
      if (lane.active && wait > 0) await sleep(lane, wait);
    }
  }

  function startLane(sub: Subscription): void {
    const lane: RunningLane = {
      tenantId: sub.tenant_id,
      subId: sub.id,
      sink: sub.sink!,
      owner,
      active: true,
      idleMs: 0,
      disabled: false,
      wake: () => {},
      done: Promise.resolve(),
    };
    lanes.set(laneKey(sub.tenant_id, sub.id), lane);
    lane.done = run(lane);
    log.debug({ subscription: sub.id }, 'endpoint taken');
  }

  function stopLane(lane: RunningLane): void {
    lane.active = false;
    lane.wake();
    lanes.delete(laneKey(lane.tenantId, lane.subId));
  }

  async function release(lane: RunningLane): Promise<void> {
    stopLane(lane);
    await lane.done;
    await redis.releaseLease(keys.endpointLease(lane.tenantId, lane.subId), owner).catch(() => {});
  }

  async function refresh(): Promise<boolean> {
    const v = await store.version();
    if (v === version) return false;
    const next = new Map<string, Subscription>();
    for (const sub of await store.all()) if (sub.sink) next.set(laneKey(sub.tenant_id, sub.id), sub);
    sinks = next;
    version = v;
    for (const [key, lane] of [...lanes]) {
      const sub = sinks.get(key);
      if (!sub) void release(lane);
      else lane.sink = sub.sink!;
    }
    return true;
  }

  async function claim(): Promise<void> {
    const free = [...sinks.entries()].filter(([key]) => !lanes.has(key)).slice(0, Math.max(0, timings.maxEndpoints - lanes.size));
    if (free.length === 0) return;
    const tx = redis.pipeline();
    for (const [, sub] of free) tx.set(keys.endpointLease(sub.tenant_id, sub.id), owner, 'PX', timings.leaseMs, 'NX');
    const res = (await tx.exec()) ?? [];
    free.forEach(([, sub], i) => {
      if (res[i]?.[1] === 'OK' && !stopped) startLane(sub);
    });
  }

  async function renew(): Promise<void> {
    const held = [...lanes.values()];
    if (held.length === 0) return;
    const tx = redis.pipeline();
    for (const lane of held) (tx as unknown as PioneerRedis).renewLease(keys.endpointLease(lane.tenantId, lane.subId), owner, String(timings.leaseMs));
    const res = (await tx.exec()) ?? [];
    held.forEach((lane, i) => {
      if (res[i]?.[0] === null && res[i]?.[1] === 0) {
        log.warn({ subscription: lane.subId }, 'endpoint lease expired before it was renewed; letting go');
        stopLane(lane);
      }
    });
  }

  async function tick(): Promise<void> {
    const now = Date.now();
    if (now - lastRenew >= timings.leaseMs / 3) {
      await renew();
      lastRenew = now;
    }
    const changed = await refresh();
    if (changed || now - lastClaim >= timings.claimMs) {
      await claim();
      lastClaim = now;
    }
  }

  function schedule(): void {
    timer = setTimeout(() => {
      tick()
        .catch((err) => log.warn({ err }, 'endpoint scheduling failed; trying again'))
        .finally(() => {
          if (!stopped) schedule();
        });
    }, timings.subscriptionPollMs);
  }

  return {
    async start(): Promise<void> {
      await tick().catch((err) => log.warn({ err }, 'first endpoint scheduling failed; trying again'));
      schedule();
    },
    /** Stops every lane after its attempt in hand and gives their leases up. */
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await Promise.all([...lanes.values()].map((lane) => release(lane)));
    },
    held: () => lanes.size,
    disabled: () => [...lanes.values()].filter((l) => l.disabled).length,
  };
}
