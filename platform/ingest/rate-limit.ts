/**
 * Ingest's per-tenant rate limit: a token bucket refilled continuously at a rate and capped at a burst, shared
 * by every ingest instance (the clock is the Redis server's). Key (built in platform/redis/keys.ts):
 *   {t:T}:ingest:rate    hash   the tenant's bucket: tokens (fractional), at (ms of the last take)
 * A take is one step (take-tokens-1.lua): either every token wanted is taken, or none.
 */
import type { PioneerRedis } from '../redis/client.ts';
import { ingestKeys } from '../redis/keys.ts';

export type TokenTake = { taken: true } | { taken: false; retryAfterMs: number };

/** Takes `wanted` tokens from the tenant's bucket, or answers how long until that many are there (nothing is taken then). */
export async function takeTokens(
  redis: PioneerRedis,
  { tenantId, ratePerSecond, burst, wanted }: { tenantId: string; ratePerSecond: number; burst: number; wanted: number },
): Promise<TokenTake> {
  const [taken, value] = await redis.takeTokens(ingestKeys.rate(tenantId), String(ratePerSecond), String(burst), String(wanted));
  return taken === 1 ? { taken: true } : { taken: false, retryAfterMs: Number(value) };
}
