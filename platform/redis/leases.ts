/**
 * Leases in Redis: who works on what, for how long. A lease expires unless its holder renews it, so the work of an
 * instance that died is taken over (or reads as interrupted) within the lease's time to live. Two kinds:
 *
 * - A single-holder lease: a string key whose value is its holder's owner token (an instance's id, a job's id),
 *   with a time to live (PX). `tryTake` sets it only when nobody holds it and otherwise answers who does
 *   (take-lease-1.lua); `renew` extends it and `release` deletes it only while the value is still the caller's
 *   (renew-lease-1.lua, release-lease-1.lua), so an owner that stalled past its lease can neither extend nor
 *   free the lease a successor took. Scripts that change state on the holder's behalf fence on the same rule
 *   (deliver's step-endpoint-5.lua compares the key's value with their owner), with one
 *   exception: step-endpoint-5.lua records a "delivered" outcome even after the lease lapsed, since the
 *   endpoint has the event whoever holds the lease now.
 *   Keys: {t:T}:ep:<sub>:lease (deliver's endpoints), {t:T}:export:<exp>:lease (an export being written),
 *   {t:T}:replay:<sub>:active (the replay running on a subscription), {t:T}:snapshot:<sub>:active (the snapshot
 *   export running on a subscription).
 * - A counted lease set: a zset, lease id -> expiry (ms, the Redis server's clock), of at most `max` leases, each
 *   expiring on its own. take-slot-1.lua prunes expired leases, counts the rest and adds the new one in one step,
 *   so concurrent takers on any number of instances never hold more than `max`; renew-slot-1.lua extends a lease
 *   only while it is still held (not expired, pruned or released); release removes it. A lease id is random, known
 *   only to its holder. Every write sets the key to expire with its last lease, so a set without holders leaves
 *   nothing behind. Key: {t:T}:sse (a tenant's SSE streams, platform/redis/sse-slots.ts).
 *
 * Callers build the keys (platform/redis/keys.ts) and choose the times to live (ms); every call touches its one
 * key, so it runs within that key's Redis Cluster hash slot.
 */
import { randomUUID } from 'node:crypto';
import type { PioneerRedis } from './client.ts';

export type LeaseTake = { taken: true } | { taken: false; holder: string };

/** Takes the lease on `key` for `owner` when nobody holds it; otherwise answers who does (nothing changes). */
export async function tryTake(redis: PioneerRedis, { key, owner, ttlMs }: { key: string; owner: string; ttlMs: number }): Promise<LeaseTake> {
  const reply = await redis.takeLease(key, owner, String(ttlMs));
  return reply[0] === 1 ? { taken: true } : { taken: false, holder: reply[1] };
}

/** Extends the lease to `ttlMs` from now; false when `owner` no longer holds it (expired, or taken by another). */
export async function renew(redis: PioneerRedis, { key, owner, ttlMs }: { key: string; owner: string; ttlMs: number }): Promise<boolean> {
  return (await redis.renewLease(key, owner, String(ttlMs))) === 1;
}

/** Gives the lease up, so another owner can take it at once; false when `owner` did not hold it. */
export async function release(redis: PioneerRedis, { key, owner }: { key: string; owner: string }): Promise<boolean> {
  return (await redis.releaseLease(key, owner)) === 1;
}

/** The owner holding the lease on `key`, or null when nobody does. */
export async function holder(redis: PioneerRedis, { key }: { key: string }): Promise<string | null> {
  return redis.get(key);
}

/** A lease of a counted set: renew it while the work goes on, release it when it ends. */
export interface CountedLease {
  readonly set: string;
  /** random: only its holder knows it */
  readonly id: string;
}

export type CountedTake = { taken: true; lease: CountedLease; held: number } | { taken: false; held: number };

/** Takes one of the set's `max` places for `ttlMs`, or answers that all are held (nothing is taken then). */
export async function takeCounted(redis: PioneerRedis, { set, max, ttlMs }: { set: string; max: number; ttlMs: number }): Promise<CountedTake> {
  const id = randomUUID();
  const [taken, held] = await redis.takeSlot(set, id, String(max), String(ttlMs));
  return taken === 1 ? { taken: true, lease: { set, id }, held } : { taken: false, held };
}

/** Extends the lease to `ttlMs` from now; false when it is no longer held (expired, or its set was lost). */
export async function renewCounted(redis: PioneerRedis, { lease, ttlMs }: { lease: CountedLease; ttlMs: number }): Promise<boolean> {
  return (await redis.renewSlot(lease.set, lease.id, String(ttlMs))) === 1;
}

/** Gives the place back; false when the lease was no longer held. */
export async function releaseCounted(redis: PioneerRedis, { lease }: { lease: CountedLease }): Promise<boolean> {
  return (await redis.zrem(lease.set, lease.id)) === 1;
}
