/**
 * Which endpoints this deliver instance works, and one lane (an async loop) per endpoint it works.
 *
 * Every instance follows the subscriptions with a sink (polling pioneer:subscriptions:version) and takes the
 * endpoints nobody holds: the endpoint's lease (platform/webhooks/endpoints.ts, on platform/redis/leases.ts) that
 * its owner renews every third of its time to live. An instance that dies stops renewing and another takes its endpoints once the lease
 * expired; every state change of a delivery is fenced by the lease (pipeline.ts). So any number of instances can
 * run, each endpoint worked by exactly one at a time, endpoints spread over them first come first served.
 *
 * A lane sends one event at a time and moves on only when it succeeded (or was dead-lettered), which keeps
 * strict order per endpoint; lanes are independent, so a slow or failing endpoint delays only itself.
 * A lane holds no timer of its own that matters: it reads the endpoint (next_at, state, cursor) from Redis in
 * the call that begins each attempt. It reads a few events ahead (PIONEER_DELIVER_READ_AHEAD) and names the
 * next one in the call that records the last outcome, so an event costs one Redis call besides its POST.
 */
import { CursorExpiredError } from '../../platform/errors.ts';
import type { TieredReader, TieredStreams } from '../../platform/tiers/cold-reader.ts';
import type { Logger } from '../../platform/telemetry/logger.ts';
import type { LoadMark, Subscription, SubscriptionStore } from '../../platform/store/subscriptions.ts';
import { signingSecrets, type AttemptBegun, type EndpointStore } from '../../platform/webhooks/endpoints.ts';
import type { DeliveryPipeline, HeadEvent, Lane } from './pipeline.ts';

/** What a lane holds of events read ahead (UTF-16 code units, about bytes), beyond its next event. */
const READ_AHEAD_BYTES = 64 * 1024;

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
  /** how many of an endpoint's next events a lane reads at once (held until sent) */
  readAhead: number;
}

interface RunningLane extends Lane {
  active: boolean;
  /** the endpoint's events, from the hot window or, for a lane far behind, from the source topics */
  reader: TieredReader;
  /** the live events read ahead after `aheadAfter` (the endpoint's cursor when they were read), oldest first */
  ahead: { cursor: string; type: string; event: string }[];
  aheadAfter: string | null;
  /** the stored secrets (as endpoints.step names them) known to open; '' before the first look */
  checkedSecrets: string;
  /** the endpoint's next attempt, begun (or the endpoint read) by the call that recorded the last outcome */
  next: AttemptBegun | null;
  /** the current wait between empty looks, doubling while the stream stays quiet */
  idleMs: number;
  disabled: boolean;
  wake: () => void;
  done: Promise<void>;
}

export function createLaneScheduler(deps: {
  tiered: TieredStreams;
  store: SubscriptionStore;
  endpoints: EndpointStore;
  pipeline: DeliveryPipeline;
  owner: string;
  timings: LaneTimings;
  log: Logger;
}) {
  const { store, endpoints, pipeline, owner, timings, log, tiered } = deps;
  const lanes = new Map<string, RunningLane>();
  /** lanes stopped whose step in flight (an attempt being sent) has not ended: not taken again until it has */
  const stopping = new Map<string, Promise<void>>();
  let sinks = new Map<string, Subscription>();
  let mark: LoadMark | null = null;
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

  /**
   * One step of a lane; returns how long to wait before the next one. The lane names the live event it read
   * after the cursor it believes is the endpoint's, and the call that reads the endpoint begins the attempt at
   * it (endpoints.step); the call that records an attempt's outcome begins the next one, so an event costs one
   * Redis call besides its POST. When the endpoint says otherwise (another cursor, a queued dead letter,
   * disabled, waiting, secrets rotated), nothing is counted and the lane acts on what it read.
   */
  async function step(lane: RunningLane): Promise<number> {
    let begun = lane.next;
    lane.next = null;
    if (!begun) {
      begun = (await endpoints.step(lane.tenantId, lane.subId, { owner, nowMs: Date.now(), begin: beginArgs(lane) })).begun!;
    }
    if (begun.kind === 'lost') {
      log.info({ subscription: lane.subId }, 'endpoint lease lost; another instance works it now');
      stopLane(lane);
      return 0;
    }
    if (begun.kind === 'missing') {
      // a sink without an endpoint record (its creation was cut short): create it now, delivering from the start;
      // none when the subscription is gone (this lane stops at the next refresh)
      if (!(await store.get(lane.tenantId, lane.subId))) return timings.recheckMs;
      return (await endpoints.ensure(lane.tenantId, lane.subId, 'start')) ? 0 : timings.recheckMs;
    }
    const ep = begun.endpoint;
    lane.disabled = ep.state === 'disabled';
    if (begun.kind === 'idle') {
      const now = Date.now();
      if (lane.disabled || (ep.next_at !== undefined && ep.next_at > now)) {
        // nothing goes out for a while: let go of what was read ahead
        lane.ahead = [];
        lane.aheadAfter = null;
        return lane.disabled ? timings.recheckMs : Math.min(ep.next_at! - now, timings.recheckMs);
      }
      if (begun.storedSecrets !== lane.checkedSecrets) {
        // new secrets (a rotation): sign nothing until they open; one that does not fails the step, not the event
        signingSecrets(ep, now);
        lane.checkedSecrets = begun.storedSecrets;
        return 0;
      }
      await readAhead(lane, ep.cursor);
      if (lane.ahead.length > 0) {
        lane.idleMs = 0;
        return 0;
      }
      lane.idleMs = lane.idleMs === 0 ? timings.pollMs : Math.min(lane.idleMs * 2, Math.max(timings.pollMs, timings.idlePollMaxMs));
      return lane.idleMs;
    }
    lane.idleMs = 0;
    const live = lane.ahead[0];
    const head: HeadEvent = begun.queued
      ? { from: 'replay', cursor: begun.queued.cursor, type: begun.queued.type, event: begun.queued.event }
      : { from: 'live', cursor: live!.cursor, type: live!.type, event: live!.event };
    // the last event read ahead: read the ones after it while it is sent
    const more = head.from === 'live' && lane.ahead.length === 1 ? readAfter(lane, head.cursor).catch(() => null) : null;
    const done = await pipeline.deliver(lane, ep, head, begun.attempt, async (advanced) => {
      if (!lane.active) return null;
      if (advanced) {
        // the endpoint moves past it
        lane.ahead.shift();
        lane.aheadAfter = head.cursor;
        const after = more ? await more : null;
        if (after) lane.ahead = after;
      }
      return beginArgs(lane);
    });
    // a reader serves one read at a time: the read ahead ends before the next step reads
    if (more) await more;
    if (done.result === 'lost') {
      log.info({ subscription: lane.subId }, 'endpoint lease lost; another instance works it now');
      stopLane(lane);
      return 0;
    }
    if (done.result === 'gone' || done.result === 'dead') lane.disabled = true;
    lane.next = done.next;
    return 0;
  }

  /** What the lane names for the endpoint's next attempt: the first live event it read ahead, after which cursor. */
  function beginArgs(lane: RunningLane) {
    return { after: lane.aheadAfter ?? '', live: lane.ahead[0]?.cursor ?? '', checkedSecrets: lane.checkedSecrets };
  }

  /** Reads the endpoint's next events after `cursor` into the lane (see readAfter). */
  async function readAhead(lane: RunningLane, cursor: string): Promise<void> {
    lane.ahead = await readAfter(lane, cursor);
    lane.aheadAfter = cursor;
  }

  /**
   * The endpoint's next events after `cursor`, from either tier: at most readAhead of them, and past the first
   * only while they stay within READ_AHEAD_BYTES, so that a lane holds no more than one large event at a time.
   */
  async function readAfter(lane: RunningLane, cursor: string): Promise<RunningLane['ahead']> {
    let entries;
    try {
      entries = (await lane.reader.read(cursor, timings.readAhead)).entries;
    } catch (err) {
      if (!(err instanceof CursorExpiredError) || err.oldestCursor === null) throw err;
      // away longer than the source topics keep events: what is gone is gone; go on from the oldest that is not
      log.error({ subscription: lane.subId, cursor, resumes_after: err.oldestCursor }, 'endpoint cursor older than the source topics keep events; events in between are lost to it');
      entries = (await lane.reader.read(err.oldestCursor, timings.readAhead)).entries;
    }
    const out: RunningLane['ahead'] = [];
    let bytes = 0;
    for (const e of entries) {
      bytes += e.event.length;
      if (out.length > 0 && bytes > READ_AHEAD_BYTES) break;
      out.push({ cursor: e.cursor, type: e.type, event: e.event });
    }
    return out;
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
      reader: tiered.reader({ tenantId: sub.tenant_id, subId: sub.id }),
      ahead: [],
      aheadAfter: null,
      checkedSecrets: '',
      next: null,
      idleMs: 0,
      disabled: false,
      wake: () => {},
      done: Promise.resolve(),
    };
    lanes.set(laneKey(sub.tenant_id, sub.id), lane);
    lane.done = run(lane).finally(() => lane.reader.close());
    log.debug({ subscription: sub.id }, 'endpoint taken');
  }

  function stopLane(lane: RunningLane): void {
    lane.active = false;
    lane.wake();
    const key = laneKey(lane.tenantId, lane.subId);
    lanes.delete(key);
    // an attempt of this lane may still be on the wire: a new lane for the endpoint would send its event again
    const done = lane.done.catch(() => {}).finally(() => {
      if (stopping.get(key) === done) stopping.delete(key);
    });
    stopping.set(key, done);
  }

  async function release(lane: RunningLane): Promise<void> {
    stopLane(lane);
    await lane.done;
    await endpoints.releaseLease(lane.tenantId, lane.subId, { owner }).catch(() => {});
  }

  async function refresh(): Promise<boolean> {
    const loaded = await store.reloadIfChanged(mark);
    if (!loaded) return false;
    const next = new Map<string, Subscription>();
    for (const sub of loaded.subs) if (sub.sink) next.set(laneKey(sub.tenant_id, sub.id), sub);
    sinks = next;
    mark = loaded.mark;
    for (const [key, lane] of [...lanes]) {
      const sub = sinks.get(key);
      if (!sub) void release(lane);
      else lane.sink = sub.sink!;
    }
    return true;
  }

  async function claim(): Promise<void> {
    const free = [...sinks.entries()].filter(([key]) => !lanes.has(key) && !stopping.has(key)).slice(0, Math.max(0, timings.maxEndpoints - lanes.size));
    if (free.length === 0) return;
    // one call per endpoint, all at once (each in its own tenant's hash slot, not one pipeline)
    const res = await Promise.allSettled(free.map(([, sub]) => endpoints.takeLease(sub.tenant_id, sub.id, { owner, ttlMs: timings.leaseMs })));
    free.forEach(([, sub], i) => {
      const took = res[i]!;
      if (took.status === 'fulfilled' && took.value && !stopped) startLane(sub);
    });
  }

  async function renew(): Promise<void> {
    const held = [...lanes.values()];
    if (held.length === 0) return;
    const res = await Promise.allSettled(held.map((lane) => endpoints.renewLease(lane.tenantId, lane.subId, { owner, ttlMs: timings.leaseMs })));
    held.forEach((lane, i) => {
      const renewed = res[i]!;
      // a failed call (Redis away) is not a lost lease: renewed again next time
      if (renewed.status === 'fulfilled' && !renewed.value) {
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
