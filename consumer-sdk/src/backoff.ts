/**
 * Retry delays, computed by one pure function: exponential from `initialMs` by `factor` up to `maxMs`, with
 * "full jitter" between half and all of it, and never shorter than what the server asked for (Retry-After).
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** 0 = no jitter, 1 = anywhere from 0 to the full delay; default 0.5 (between half and all of it) */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 30_000, factor: 2, jitter: 0.5 };

/**
 * The delay before retry number `attempt` (1 for the first retry). `retryAfterMs` from the server is a floor
 * (capped at `maxMs` × 10 so a wild header cannot park a consumer for days); `random` is injectable for tests.
 */
export function retryDelay(attempt: number, opts: { policy?: BackoffPolicy; retryAfterMs?: number; random?: () => number } = {}): number {
  const { policy = DEFAULT_BACKOFF, retryAfterMs, random = Math.random } = opts;
  const n = Math.max(1, Math.floor(attempt));
  const exp = Math.min(policy.maxMs, policy.initialMs * Math.pow(policy.factor, n - 1));
  const jitter = Math.min(1, Math.max(0, policy.jitter));
  const delay = Math.round(exp * (1 - jitter) + exp * jitter * random());
  if (retryAfterMs !== undefined && retryAfterMs > delay) return Math.min(retryAfterMs, policy.maxMs * 10);
  return delay;
}

/** Parses a Retry-After header (delay-seconds or an HTTP date) into ms from `now`; undefined when absent or bad. */
export function parseRetryAfter(header: string | null | undefined, now = Date.now()): number | undefined {
  if (header === null || header === undefined) return undefined;
  const v = header.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
