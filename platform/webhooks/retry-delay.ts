/**
 * When to try a webhook again: one pure function of the schedule, the attempts made, the endpoint's
 * `Retry-After` and jitter. The schedule lists the delay before each attempt (the first is normally 0);
 * when every attempt of it was made, the event is dead-lettered.
 */
import { z } from 'zod';

/** The default schedule: 10 attempts spanning 75 h 35 min (more than the 72 h outage the platform absorbs). */
export const DEFAULT_RETRY_SCHEDULE = '0,5s,5m,30m,2h,5h,10h,14h,20h,24h';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `"0,5s,5m,2h"` -> milliseconds; a bare number is milliseconds. Throws naming the bad item. */
export function parseDurations(list: string): number[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item) => {
      const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(item);
      if (!m) throw new Error(`'${item}' is not a duration (e.g. 500ms, 5s, 5m, 2h, 1d)`);
      return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 'ms']!);
    });
}

/** A zod parser of a schedule variable: a non-empty list of durations, `fallback` when unset. */
export const retryScheduleEnv = (fallback = DEFAULT_RETRY_SCHEDULE) =>
  z.string().default(fallback).transform((v, ctx) => {
    try {
      const schedule = parseDurations(v);
      if (schedule.length === 0) throw new Error('list at least one attempt');
      return schedule;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

/** `Retry-After` (delay-seconds or an HTTP date) in milliseconds from `now`; null when absent or malformed. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | null {
  if (value === null || value === undefined) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at) || !/[a-z]/i.test(v)) return null;
  return Math.max(0, at - now);
}

export interface RetryDelayInput {
  /** delay before attempt i+1, in ms (schedule[0] is the first attempt's, normally 0) */
  schedule: readonly number[];
  /** attempts made so far (>= 1 after the first failure) */
  attempts: number;
  /** the endpoint's Retry-After in ms, when it sent one */
  retryAfterMs?: number | null;
  /** spread of the scheduled delay: 0.2 means ±20 % */
  jitter: number;
  /** a number in [0, 1); the caller passes Math.random (tests pass fixed values) */
  random: number;
  /** the longest Retry-After honoured (a larger one is cut to it) */
  maxRetryAfterMs: number;
}

/**
 * Milliseconds until the next attempt, or null when the schedule is exhausted. The scheduled delay is spread
 * by ±jitter; an endpoint's Retry-After (capped at maxRetryAfterMs) is a floor: the next attempt is never
 * sooner than the endpoint asked.
 */
export function retryDelay(input: RetryDelayInput): number | null {
  const { schedule, attempts, retryAfterMs, jitter, random, maxRetryAfterMs } = input;
  if (attempts >= schedule.length) return null;
  const base = schedule[Math.max(attempts, 0)]!;
  const spread = Math.min(Math.max(jitter, 0), 1);
  const jittered = Math.round(base * (1 + spread * (2 * random - 1)));
  const floor = retryAfterMs === null || retryAfterMs === undefined ? 0 : Math.min(Math.max(retryAfterMs, 0), maxRetryAfterMs);
  return Math.max(jittered, floor, 0);
}
