/**
 * Every tenant's subscriptions, compiled, in memory: what the route matches each event against.
 * It follows changes by polling pioneer:subscriptions:version (one GET per period, default 250 ms) and
 * reloading everything when it moved, so every instance sees a change within a second.
 */
import type { Logger } from '../telemetry/logger.ts';
import { compileFilters, type Predicate } from '../filters/subscription-filter.ts';
import type { Subscription, SubscriptionStore } from './subscriptions.ts';

export interface IndexedSubscription {
  sub: Subscription;
  matches: Predicate;
}

interface TenantEntry {
  byType: Map<string, IndexedSubscription[]>;
  anyType: IndexedSubscription[];
}

export interface SubscriptionIndex {
  /** Subscriptions of `tenantId` whose types, source and filters match the event. */
  match(tenantId: string, event: Record<string, unknown>): IndexedSubscription[];
  /** Loads now (resolves once loaded) and keeps following changes. */
  start(): Promise<void>;
  refresh(): Promise<void>;
  stop(): void;
  size(): number;
}

export function createSubscriptionIndex(opts: { store: SubscriptionStore; log: Logger; pollMs?: number }): SubscriptionIndex {
  const { store, log, pollMs = 250 } = opts;
  let tenants = new Map<string, TenantEntry>();
  let count = 0;
  let version: string | null = null;
  let timer: NodeJS.Timeout | undefined;

  function build(subs: Subscription[]): void {
    const next = new Map<string, TenantEntry>();
    for (const sub of subs) {
      let matches: Predicate;
      try {
        const filters = compileFilters(sub.filters ?? []);
        const source = sub.source;
        matches = source === undefined ? filters : (e) => e['source'] === source && filters(e);
      } catch (err) {
        log.error({ err, subscription: sub.id }, 'subscription filters do not compile; it matches nothing');
        continue;
      }
      let entry = next.get(sub.tenant_id);
      if (!entry) next.set(sub.tenant_id, (entry = { byType: new Map(), anyType: [] }));
      const indexed = { sub, matches };
      if (!sub.types || sub.types.length === 0) entry.anyType.push(indexed);
      else
        for (const type of sub.types) {
          const list = entry.byType.get(type);
          if (list) list.push(indexed);
          else entry.byType.set(type, [indexed]);
        }
    }
    tenants = next;
    count = subs.length;
  }

  async function refresh(): Promise<void> {
    const v = await store.version();
    if (v === version) return;
    const subs = await store.all();
    build(subs);
    version = v;
    log.debug({ version: v, subscriptions: subs.length }, 'subscription index reloaded');
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
    match(tenantId, event) {
      const entry = tenants.get(tenantId);
      if (!entry) return [];
      const typed = entry.byType.get(event['type'] as string);
      const out: IndexedSubscription[] = [];
      if (typed) for (const s of typed) if (s.matches(event)) out.push(s);
      for (const s of entry.anyType) if (s.matches(event)) out.push(s);
      return out;
    },
    async start() {
      await refresh();
      schedule();
    },
    refresh,
    stop() {
      clearTimeout(timer);
      timer = undefined;
    },
    size: () => count,
  };
}
