/**
 * Subscriptions in Redis. The record of truth is {t:T}:sub:<id> (JSON) with the tenant's id set {t:T}:subs;
 * pioneer:subscriptions holds a copy of every subscription for the instances that index them all (route,
 * deliver), and pioneer:subscriptions:version is bumped on every change so they notice within their poll period.
 * Deleting a subscription removes its stream and positions in the same transaction.
 */
import { newId } from '../ids.ts';
import { keys } from '../redis/keys.ts';
import type { Redis } from '../redis/client.ts';
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
  /** Webhook endpoint URL; absent for a pull-only subscription. */
  sink?: string;
  created_at: string;
  updated_at: string;
}

export type SubscriptionInput = Omit<Subscription, 'id' | 'tenant_id' | 'created_at' | 'updated_at'>;

export function createSubscriptionStore(redis: Redis) {
  async function write(sub: Subscription, isNew: boolean): Promise<void> {
    const json = JSON.stringify(sub);
    const tx = redis.multi().set(keys.subscription(sub.tenant_id, sub.id), json);
    if (isNew) tx.sadd(keys.tenantSubs(sub.tenant_id), sub.id);
    tx.hset(keys.subscriptions(), sub.id, json).incr(keys.subscriptionsVersion());
    await tx.exec();
  }

  return {
    async create(tenantId: string, input: SubscriptionInput): Promise<Subscription> {
      const now = new Date().toISOString();
      const sub: Subscription = { id: newId('sub'), tenant_id: tenantId, ...input, created_at: now, updated_at: now };
      await write(sub, true);
      return sub;
    },

    /** The tenant's subscription, or null (also when it belongs to another tenant). */
    async get(tenantId: string, id: string): Promise<Subscription | null> {
      const json = await redis.get(keys.subscription(tenantId, id));
      return json ? (JSON.parse(json) as Subscription) : null;
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

    async update(tenantId: string, id: string, patch: Partial<SubscriptionInput>, unset: (keyof SubscriptionInput)[] = []): Promise<Subscription | null> {
      const current = await this.get(tenantId, id);
      if (!current) return null;
      const next: Subscription = { ...current, ...patch, id, tenant_id: tenantId, updated_at: new Date().toISOString() };
      for (const k of unset) delete next[k];
      await write(next, false);
      return next;
    },

    /** Deletes the subscription, its stream and positions, and `alsoDelete` (its endpoint's keys) in one transaction. */
    async delete(tenantId: string, id: string, alsoDelete: string[] = []): Promise<boolean> {
      const results = await redis
        .multi()
        .del(keys.subscription(tenantId, id))
        .srem(keys.tenantSubs(tenantId), id)
        .hdel(keys.subscriptions(), id)
        .del(keys.stream(tenantId, id), keys.positions(tenantId, id), ...alsoDelete)
        .incr(keys.subscriptionsVersion())
        .exec();
      return results?.[0]?.[1] === 1;
    },

    async version(): Promise<string> {
      return (await redis.get(keys.subscriptionsVersion())) ?? '0';
    },

    async all(): Promise<Subscription[]> {
      return (await redis.hvals(keys.subscriptions())).map((v) => JSON.parse(v) as Subscription);
    },
  };
}

export type SubscriptionStore = ReturnType<typeof createSubscriptionStore>;
