/**
 * Subscriptions in Redis. Every key is the tenant's own, under its hash tag:
 *   {t:T}:subs        set     the tenant's subscription ids
 *   {t:T}:sub:<id>    string  the subscription JSON, the record of truth
 *   {t:T}:specs:<id>  hash    digest -> matching spec JSON (types, source, filters, transform): every spec the subscription
 *                             has had, written with the record, so that the cold tier derives events matched
 *                             with an older spec with that spec (platform/tiers/cold-reader.ts)
 * The set of tenants is pioneer:tenants (platform/store/tenants.ts), read here for the indexes.
 * and two platform keys: pioneer:subscriptions:version, a counter bumped after every change so that the instances
 * that index every tenant's subscriptions (route, deliver) notice, and pioneer:subscriptions:changes, a stream of
 * the last CHANGES_KEPT changes (`n`: the counter's value after the bump, `t`: the tenant), so that an index
 * reloads the changed tenants only: a change costs an index one tenant's reload, not everyone's.
 *
 * Every operation takes the caller's tenant and addresses only that tenant's keys, so another tenant's id can
 * neither be read nor changed: there is no key by bare id to reach it through. Creation checks the tenant's
 * limit and writes in one step (create-subscription-3.lua); a change replaces the record only if it is the one
 * read (replace-subscription-2.lua), so it cannot bring back a subscription deleted meanwhile; deleting removes
 * the record, its stream, positions and endpoint keys in one transaction. The version counter is a notice, not
 * data: it is bumped after the tenant's write, and the indexes also reload on a timer, so a bump lost in a crash
 * only delays a change.
 */
import { createHash } from 'node:crypto';
import { newId } from '../ids.ts';
import { keys } from '../redis/keys.ts';
import type { PioneerRedis } from '../redis/client.ts';
import type { Filter } from '../filters/subscription-filter.ts';

export interface Subscription {
  id: string;
  tenant_id: string;
  name?: string;
  /** CloudEvent types delivered; absent means every type. */
  types?: string[];
  /** Exact `source` to match, when set. */
  source?: string;
  filters: Filter[];
  /** A JSONata expression producing the delivered `data` (platform/transforms/transform.ts); absent: data as sent. */
  transform?: string;
  /** Webhook endpoint URL; absent for a pull-only subscription. */
  sink?: string;
  created_at: string;
  updated_at: string;
}

export type SubscriptionInput = Omit<Subscription, 'id' | 'tenant_id' | 'created_at' | 'updated_at'>;

export type CreateResult = { created: Subscription } | { limitReached: number };

/**
 * The version counter's value at a load of every subscription, and when that load was; `changes`: the id of the
 * newest entry of the change stream then (loads of changed tenants since move `version` and `changes` only).
 */
export interface LoadMark {
  version: string;
  at: number;
  changes?: string;
}

/** What changed since a mark: the tenants to load again and the mark after them, or 'all' when it cannot tell. */
export type Changes = { tenants: string[]; mark: LoadMark } | 'all' | null;

/** Every tenant and every subscription, as loaded at `mark`. */
export interface Directory {
  mark: LoadMark;
  tenants: string[];
  subs: Subscription[];
}

/** What decides which events a subscription gets and how: its types, source, filters and transform. */
export type MatchingSpec = Pick<Subscription, 'types' | 'source' | 'filters' | 'transform'>;

/**
 * A subscription's matching spec as stored (its JSON) and its digest, which the route records with each run of
 * appended events. Computed from the record as parsed from its JSON, so the store and the route agree.
 */
export function matchingSpec(sub: Subscription): { digest: string; json: string } {
  const parsed = JSON.parse(JSON.stringify(sub)) as Subscription;
  // the transform only when there is one, so that the digests of subscriptions without one stay as they were
  const json = JSON.stringify({
    types: parsed.types ?? null, source: parsed.source ?? null, filters: parsed.filters ?? [], ...(parsed.transform !== undefined ? { transform: parsed.transform } : {}),
  });
  return { digest: createHash('sha256').update(json).digest('base64url').slice(0, 16), json };
}

/** The indexes reload at least this often, whatever the version counter says. */
const RELOAD_MAX_AGE_MS = 30_000;

/** Changes kept in the change stream (about: trimmed with ~): an index further behind reloads everything. */
const CHANGES_KEPT = 10_000;
/** An index that missed more changes than this reloads everything rather than each changed tenant. */
const CHANGES_READ = 1000;

/** How many times a change is retried when another change lands between its read and its write. */
const REPLACE_ATTEMPTS = 5;

export function createSubscriptionStore(redis: PioneerRedis) {
  // The counter, then the entry naming the tenant: not one step, so an index may read a counter whose entry is not
  // written yet (or was lost in a crash); it then finds the entries short of the counter and reloads everything.
  const bump = async (tenantId: string): Promise<void> => {
    const n = await redis.incr(keys.subscriptionsVersion());
    await redis.xadd(keys.subscriptionChanges(), 'MAXLEN', '~', String(CHANGES_KEPT), '*', 'n', String(n), 't', tenantId);
  };

  async function read(tenantId: string, id: string): Promise<{ json: string; sub: Subscription } | null> {
    const json = await redis.get(keys.subscription(tenantId, id));
    return json ? { json, sub: JSON.parse(json) as Subscription } : null;
  }

  return {
    /** Creates the subscription unless the tenant already has `max` of them (checked in the same step). */
    async create(tenantId: string, input: SubscriptionInput, max: number): Promise<CreateResult> {
      const now = new Date().toISOString();
      const sub: Subscription = { id: newId('sub'), tenant_id: tenantId, ...input, created_at: now, updated_at: now };
      const spec = matchingSpec(sub);
      const created = await redis.createSubscription(
        keys.tenantSubs(tenantId), keys.subscription(tenantId, sub.id), keys.specs(tenantId, sub.id), sub.id, JSON.stringify(sub), String(max), spec.digest, spec.json,
      );
      if (created !== 1) return { limitReached: max };
      await bump(tenantId);
      return { created: sub };
    },

    /** The tenant's subscription, or null (also when it belongs to another tenant). */
    async get(tenantId: string, id: string): Promise<Subscription | null> {
      return (await read(tenantId, id))?.sub ?? null;
    },

    /** Whether the tenant still has the subscription (one EXISTS: for checks repeated while a stream is open). */
    async exists(tenantId: string, id: string): Promise<boolean> {
      return (await redis.exists(keys.subscription(tenantId, id))) === 1;
    },

    async list(tenantId: string): Promise<Subscription[]> {
      const ids = await redis.smembers(keys.tenantSubs(tenantId));
      if (ids.length === 0) return [];
      const values = await redis.mget(ids.map((id) => keys.subscription(tenantId, id)));
      return values
        .filter((v): v is string => v !== null)
        .map((v) => JSON.parse(v) as Subscription)
        .sort((a, b) => a.id.localeCompare(b.id));
    },

    /** Applies `patch` (and removes `unset`) to the tenant's subscription; null when it has none with this id. */
    async update(tenantId: string, id: string, patch: Partial<SubscriptionInput>, unset: (keyof SubscriptionInput)[] = []): Promise<Subscription | null> {
      for (let attempt = 0; attempt < REPLACE_ATTEMPTS; attempt++) {
        const current = await read(tenantId, id);
        if (!current) return null;
        const next: Subscription = { ...current.sub, ...patch, id, tenant_id: tenantId, updated_at: new Date().toISOString() };
        for (const k of unset) delete next[k];
        const spec = matchingSpec(next);
        const replaced = await redis.replaceSubscription(keys.subscription(tenantId, id), keys.specs(tenantId, id), current.json, JSON.stringify(next), spec.digest, spec.json);
        if (replaced === 0) return null;
        if (replaced === 1) {
          await bump(tenantId);
          return next;
        }
      }
      throw new Error(`subscription ${id} kept changing while it was being updated`);
    },

    /**
     * Deletes the tenant's subscription with its stream and positions, and `alsoDelete` (its endpoint's keys, which
     * share the tenant's hash tag) in one transaction; false when the tenant has no subscription with this id.
     */
    async delete(tenantId: string, id: string, alsoDelete: string[] = []): Promise<boolean> {
      const results = await redis
        .multi()
        .del(keys.subscription(tenantId, id))
        .srem(keys.tenantSubs(tenantId), id)
        .del(keys.stream(tenantId, id), keys.positions(tenantId, id), keys.marks(tenantId, id), keys.specs(tenantId, id), ...alsoDelete)
        .exec();
      const deleted = results?.[0]?.[1] === 1;
      if (deleted) await bump(tenantId);
      return deleted;
    },

    /**
     * The matching spec the subscription had when its digest was `digest`: from the kept specs, or the current
     * record's (a subscription created before specs were kept); null when the subscription or that spec is gone.
     */
    async specOf(tenantId: string, id: string, digest: string): Promise<MatchingSpec | null> {
      const [kept, current] = await Promise.all([redis.hget(keys.specs(tenantId, id), digest), read(tenantId, id)]);
      if (!current) return null;
      if (kept) return JSON.parse(kept) as MatchingSpec;
      return matchingSpec(current.sub).digest === digest ? current.sub : null;
    },

    async version(): Promise<string> {
      return (await redis.get(keys.subscriptionsVersion())) ?? '0';
    },

    /**
     * Every tenant's subscriptions, for the instances that index them all, when they may have changed since the
     * load `seen`: the version counter moved, or `maxAgeMs` passed (a bump lost in a crash only delays a change).
     * Null when neither.
     */
    async reloadIfChanged(seen: LoadMark | null, maxAgeMs = RELOAD_MAX_AGE_MS): Promise<Directory | null> {
      // the change stream's newest entry before the counter: whatever changes after it is read again later
      const newest = await redis.xrevrange(keys.subscriptionChanges(), '+', '-', 'COUNT', 1);
      const version = await this.version();
      const now = Date.now();
      if (seen && seen.version === version && now - seen.at < maxAgeMs) return null;
      const tenants = await redis.hkeys(keys.tenants());
      const subs = (await Promise.all(tenants.map((t) => this.list(t)))).flat();
      return { mark: { version, at: now, changes: newest[0]?.[0] ?? '0-0' }, tenants, subs };
    },

    /**
     * The tenants whose subscriptions changed since `seen`, read from the change stream: null when nothing did,
     * 'all' when the stream cannot tell (no entries were read yet, it was trimmed past them, or an entry of the
     * counter's bumps is missing) or `maxAgeMs` passed since the last full load.
     */
    async changesSince(seen: LoadMark | null, maxAgeMs = RELOAD_MAX_AGE_MS): Promise<Changes> {
      if (!seen?.changes || Date.now() - seen.at >= maxAgeMs) return 'all';
      const [version, entries] = await Promise.all([
        this.version(),
        redis.xrange(keys.subscriptionChanges(), `(${seen.changes}`, '+', 'COUNT', CHANGES_READ + 1),
      ]);
      if (version === seen.version) return null;
      const from = BigInt(seen.version);
      const to = BigInt(version);
      if (to < from || to - from > BigInt(CHANGES_READ)) return 'all';
      const tenants = new Set<string>();
      const numbers = new Set<bigint>();
      let last = seen.changes;
      for (const [id, fields] of entries) {
        const f: Record<string, string> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
        const n = BigInt(f['n'] ?? '0');
        if (n > to) break; // bumped after the counter was read: read next time
        last = id;
        if (n > from && f['t']) (numbers.add(n), tenants.add(f['t']));
      }
      // every bump since the mark, each with its entry: otherwise a change could go unseen
      if (BigInt(numbers.size) !== to - from) return 'all';
      return { tenants: [...tenants], mark: { version, at: seen.at, changes: last } };
    },

    /** Which of `tenantIds` name tenants that exist (a tenant created since the last load is not indexed yet). */
    async existingTenants(tenantIds: readonly string[]): Promise<string[]> {
      if (tenantIds.length === 0) return [];
      const found = await redis.hmget(keys.tenants(), ...tenantIds);
      return tenantIds.filter((_, i) => found[i] !== null);
    },

  };
}

export type SubscriptionStore = ReturnType<typeof createSubscriptionStore>;
