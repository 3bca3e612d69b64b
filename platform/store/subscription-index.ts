/**
 * Every tenant's subscriptions, compiled, in memory: what the route matches each event against. The matching
 * itself (types, then source and filters) is `matcherOf`, which a replay builds over its one subscription.
 * It follows changes by polling pioneer:subscriptions:version (one GET per period, default 250 ms) and
 * reloading what changed when it moved (the tenants the change stream names; everything when it cannot tell,
 * and at least every 30 s), so every instance sees a change within a second; the route also asks for it before
 * each batch (`current`), so no event that reached the topic after a change was answered is matched without it.
 * A reload rebuilds the changed tenants' entries only and compiles only subscriptions whose record changed: a
 * tenant that changes its subscriptions all the time costs the route the reading of its own, nobody else's.
 */
import type { Logger } from '../telemetry/logger.ts';
import { compileFilters, type FilterVerdict } from '../filters/subscription-filter.ts';
import { compileTransform, type CompiledTransform } from '../transforms/transform.ts';
import { MAX_EVALUATION_STEPS, type EvaluationBudget } from '../filters/cesql/index.ts';
import { matchingSpec, type LoadMark, type Subscription, type SubscriptionStore } from './subscriptions.ts';

export interface IndexedSubscription {
  sub: Subscription;
  /** the digest of its matching spec (platform/store/subscriptions.ts), recorded with the events it matches */
  spec: string;
  /** its transform, compiled; absent when it has none */
  transform?: CompiledTransform;
  /** Its source and filters against one event; 'budgetExceeded' when its filters ran out of work budget. */
  verdict: (event: Record<string, unknown>, budget?: EvaluationBudget) => FilterVerdict;
}

/**
 * What events are matched against: the route's index of every subscription, or a replay's one subscription
 * (`matcherOf([compileSubscription(sub)])`), with the same types, source and filters semantics.
 */
export interface SubscriptionMatcher {
  /**
   * Subscriptions of `tenantId` whose types, source and filters match the event. Those whose filters ran out of
   * the work budget (one per event for all of the tenant's subscriptions) before they could answer are added to
   * `exceeded` when given.
   */
  match(tenantId: string, event: Record<string, unknown>, exceeded?: IndexedSubscription[]): IndexedSubscription[];
  /**
   * Which of `tenantIds` name no tenant (their records can never be delivered). A matcher without it answers
   * for the tenants it holds only: an event of another tenant simply matches nothing.
   */
  unknownTenants?(tenantIds: Iterable<string>): Promise<Set<string>>;
}

interface TenantEntry {
  byType: Map<string, IndexedSubscription[]>;
  anyType: IndexedSubscription[];
}

export interface SubscriptionIndex extends SubscriptionMatcher {
  /**
   * Which of `tenantIds` name no tenant. A tenant the index does not know is looked up in Redis, and the index
   * reloads when one was created since its last load, so a new tenant's first events are never refused.
   */
  unknownTenants(tenantIds: Iterable<string>): Promise<Set<string>>;
  /** Loads now (resolves once loaded) and keeps following changes. */
  start(): Promise<void>;
  /** Reloads when something changed (or always, with `force`). */
  refresh(force?: boolean): Promise<void>;
  /**
   * Resolves once the index holds every change made before the call: one read of the version counter when
   * nothing changed, a reload when something did. The route calls it for every batch, after the batch was
   * fetched, so a subscription whose creation was answered before an event reached the topic always sees it.
   */
  current(): Promise<void>;
  stop(): void;
  size(): number;
}

/**
 * A subscription's source, filters and transform, compiled; throws FilterCompileError when its filters do not
 * compile, TransformError when its transform does not.
 */
export function compileSubscription(sub: Subscription): IndexedSubscription {
  const filters = compileFilters(sub.filters ?? []);
  const source = sub.source;
  const verdict: IndexedSubscription['verdict'] =
    source === undefined ? filters.verdict : (e, budget) => (e['source'] === source ? filters.verdict(e, budget) : 'noMatch');
  return { sub, spec: matchingSpec(sub).digest, verdict, ...(sub.transform !== undefined ? { transform: compileTransform(sub.transform) } : {}) };
}

/** One tenant's compiled subscriptions by type (a subscription without types takes every type). */
function entryOf(subs: Iterable<IndexedSubscription>): TenantEntry {
  const entry: TenantEntry = { byType: new Map(), anyType: [] };
  for (const indexed of subs) {
    const { sub } = indexed;
    if (!sub.types || sub.types.length === 0) entry.anyType.push(indexed);
    else
      for (const type of sub.types) {
        const list = entry.byType.get(type);
        if (list) list.push(indexed);
        else entry.byType.set(type, [indexed]);
      }
  }
  return entry;
}

/** Matches an event against the tenant entry `entryFor` gives (read at every call, so the entries may change). */
function matcherOver(entryFor: (tenantId: string) => TenantEntry | undefined): SubscriptionMatcher['match'] {
  // evaluation is synchronous: one budget object serves every call
  const budget: EvaluationBudget = { steps: MAX_EVALUATION_STEPS };
  return (tenantId, event, exceeded) => {
    const entry = entryFor(tenantId);
    if (!entry) return [];
    const typed = entry.byType.get(event['type'] as string);
    const out: IndexedSubscription[] = [];
    // one budget per event for all of the tenant's subscriptions: however many it has, an event costs its
    // partition at most MAX_EVALUATION_STEPS of filter work (subscription-filter.ts)
    budget.steps = MAX_EVALUATION_STEPS;
    if (typed) judgeEach(typed, event, budget, out, exceeded);
    judgeEach(entry.anyType, event, budget, out, exceeded);
    return out;
  };
}

/** Adds the subscriptions of `subs` that match the event to `out`, those whose filters ran out of budget to `exceeded` (no closure per event). */
function judgeEach(subs: IndexedSubscription[], event: Record<string, unknown>, budget: EvaluationBudget, out: IndexedSubscription[], exceeded?: IndexedSubscription[]): void {
  for (let i = 0; i < subs.length; i++) {
    const s = subs[i]!;
    const v = s.verdict(event, budget);
    if (v === 'match') out.push(s);
    else if (v === 'budgetExceeded') exceeded?.push(s);
  }
}

/** A matcher over compiled subscriptions: by tenant, then by type (a subscription without types takes every type). */
export function matcherOf(subs: Iterable<IndexedSubscription>): SubscriptionMatcher {
  const byTenant = new Map<string, IndexedSubscription[]>();
  for (const indexed of subs) {
    const list = byTenant.get(indexed.sub.tenant_id);
    if (list) list.push(indexed);
    else byTenant.set(indexed.sub.tenant_id, [indexed]);
  }
  const entries = new Map([...byTenant].map(([t, list]) => [t, entryOf(list)]));
  return { match: matcherOver((t) => entries.get(t)) };
}

export function createSubscriptionIndex(opts: { store: SubscriptionStore; log: Logger; pollMs?: number }): SubscriptionIndex {
  const { store, log, pollMs = 250 } = opts;
  let count = 0;
  let mark: LoadMark | null = null;
  let known = new Set<string>();
  let timer: NodeJS.Timeout | undefined;

  // each tenant's subscriptions, compiled and by type: a change rebuilds the changed tenant's entry alone, and
  // compiles again only its subscriptions whose record changed, so a tenant changing its subscriptions all the
  // time costs the route its own subscriptions' reading, never a rebuild of everyone's
  let entries = new Map<string, { entry: TenantEntry; subs: Map<string, { json: string; indexed: IndexedSubscription }> }>();
  const match = matcherOver((t) => entries.get(t)?.entry);

  /** `subs` compiled, reusing what `before` compiled of a record unchanged since. */
  function compiled(subs: Subscription[], before?: Map<string, { json: string; indexed: IndexedSubscription }>) {
    const out = new Map<string, { json: string; indexed: IndexedSubscription }>();
    for (const sub of subs) {
      const json = JSON.stringify(sub);
      const kept = before?.get(sub.id);
      if (kept && kept.json === json) {
        out.set(sub.id, kept);
        continue;
      }
      try {
        out.set(sub.id, { json, indexed: compileSubscription(sub) });
      } catch (err) {
        log.error({ err, subscription: sub.id }, 'subscription filters do not compile; it matches nothing');
      }
    }
    return { entry: entryOf([...out.values()].map((c) => c.indexed)), subs: out };
  }

  // one load at a time, so that an older load never replaces a newer one: a caller that needs a fresh load
  // (force) waits for the one running and then loads; any other caller shares the one running
  let running: Promise<void> | null = null;
  // loads started so far, and the number of the one running: a load numbered above what a caller saw when it
  // called read the version counter after the call
  let started = 0;
  let runningNo = 0;
  // `byAge`: a load may also reload everything because the last full load is old (the timer's loads); the route's
  // check before a batch reads what changed only, so that a batch does not wait on a reload of every tenant
  function startLoad(force: boolean, byAge = true): Promise<void> {
    runningNo = ++started;
    running = load(force, byAge).finally(() => (running = null));
    return running;
  }
  async function refresh(force = false): Promise<void> {
    while (running) {
      if (!force) return running;
      await running.catch(() => {});
    }
    return startLoad(force);
  }
  async function current(): Promise<void> {
    const seen = started;
    for (;;) {
      if (!running) return startLoad(false, false);
      if (runningNo > seen) return running;
      await running.catch(() => {});
    }
  }

  async function load(force: boolean, byAge: boolean): Promise<void> {
    const changes = force ? 'all' : await store.changesSince(mark, byAge ? undefined : Infinity);
    if (changes === null) return;
    if (changes !== 'all') {
      const lists = await Promise.all(changes.tenants.map((t) => store.list(t)));
      changes.tenants.forEach((t, i) => {
        const subs = lists[i]!;
        count -= entries.get(t)?.subs.size ?? 0;
        if (subs.length > 0) {
          const next = compiled(subs, entries.get(t)?.subs);
          entries.set(t, next);
          count += next.subs.size;
        } else entries.delete(t);
        known.add(t);
      });
      mark = changes.mark;
      log.debug({ version: mark.version, tenants: changes.tenants.length }, 'subscription index: changed tenants reloaded');
      return;
    }
    const loaded = await store.reloadIfChanged(force ? null : mark);
    if (!loaded) return;
    const next = new Map<string, Subscription[]>();
    for (const sub of loaded.subs) {
      const list = next.get(sub.tenant_id);
      if (list) list.push(sub);
      else next.set(sub.tenant_id, [sub]);
    }
    entries = new Map([...next].map(([t, subs]) => [t, compiled(subs, entries.get(t)?.subs)]));
    count = [...entries.values()].reduce((n, e) => n + e.subs.size, 0);
    known = new Set(loaded.tenants);
    mark = loaded.mark;
    log.debug({ version: mark.version, subscriptions: loaded.subs.length }, 'subscription index reloaded');
  }

  function schedule(): void {
    timer = setTimeout(() => {
      refresh()
        .catch((err) => log.warn({ err }, 'subscription index refresh failed; keeping the last one'))
        .finally(() => {
          if (timer) schedule();
        });
    }, pollMs);
    timer.unref();
  }

  return {
    match,
    async start() {
      await refresh();
      schedule();
    },
    refresh,
    current,
    async unknownTenants(tenantIds) {
      const unknown = new Set<string>();
      for (const t of tenantIds) if (!known.has(t)) unknown.add(t);
      if (unknown.size === 0) return unknown;
      const created = await store.existingTenants([...unknown]);
      if (created.length > 0) {
        await refresh(true);
        for (const t of created) unknown.delete(t);
      }
      return unknown;
    },
    stop() {
      clearTimeout(timer);
      timer = undefined;
    },
    size: () => count,
  };
}
