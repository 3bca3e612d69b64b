/**
 * A tenant's SSE slots: the per-tenant limit on concurrent event streams, shared by every gateway instance.
 *   {t:T}:sse   zset   a counted lease set (platform/redis/leases.ts): one lease per open stream, at most the
 *                      tenant's limit, taken atomically however many requests race for it.
 * A stream renews its lease every heartbeat and a lease lives a few heartbeats (the caller's ttlMs), so the slots
 * of a gateway that dies free themselves within that time; a stream whose lease was lost closes.
 */
import type { PioneerRedis } from './client.ts';
import { keys } from './keys.ts';
import { releaseCounted, renewCounted, takeCounted, type CountedLease } from './leases.ts';

/** A slot a stream holds: renew it while the stream is open, release it when the stream ends. */
export type SseSlot = CountedLease;

export type SlotTake = { taken: true; slot: SseSlot; held: number } | { taken: false; held: number };

/** Takes one of the tenant's `max` slots for `ttlMs`, or answers that all are held (nothing is taken then). */
export async function takeSseSlot(redis: PioneerRedis, { tenantId, max, ttlMs }: { tenantId: string; max: number; ttlMs: number }): Promise<SlotTake> {
  const took = await takeCounted(redis, { set: keys.sseLeases(tenantId), max, ttlMs });
  return took.taken ? { taken: true, slot: took.lease, held: took.held } : took;
}

/** Extends the slot to `ttlMs` from now; false when it is no longer held (expired, or its key was lost). */
export function renewSseSlot(redis: PioneerRedis, { slot, ttlMs }: { slot: SseSlot; ttlMs: number }): Promise<boolean> {
  return renewCounted(redis, { lease: slot, ttlMs });
}

/** Gives the slot back; only its own lease can be removed (the lease id is the owner's token). */
export function releaseSseSlot(redis: PioneerRedis, { slot }: { slot: SseSlot }): Promise<boolean> {
  return releaseCounted(redis, { lease: slot });
}
