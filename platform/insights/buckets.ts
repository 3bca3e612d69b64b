/**
 * Event-time buckets of the insights counts (UTC): minutes, hours and days, bucket n of resolution r covering
 * [n * width(r), (n + 1) * width(r)). Each event is counted in its minute, its hour and its day at once, and each
 * bucket is kept for its resolution's retention after it ends. A query range is covered by the fewest buckets that
 * still exist: whole days where the range holds whole days, then whole hours, then minutes at the edges.
 */

export type Resolution = 'm' | 'h' | 'd';

export const WIDTH_MS: Record<Resolution, number> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

export interface Bucket {
  res: Resolution;
  n: number;
}

export type Retention = Record<Resolution, number>;

/** Why a range cannot be covered, and which end of it is to blame. */
export class UncoverableRange extends Error {
  constructor(readonly end: 'from' | 'to', message: string) {
    super(message);
  }
}

const NAMES: Record<Resolution, string> = { m: 'minute', h: 'hour', d: 'day' };

/**
 * The buckets covering [fromMs, toMs) (both on minute boundaries), each still within its retention at `nowMs`
 * (a bucket is kept until its end plus the retention). Throws UncoverableRange when a part of the range would
 * need buckets already dropped: a range older than the minute retention must start and end on whole hours, one
 * older than the hour retention on whole days, and none may reach past the day retention.
 */
export function cover(fromMs: number, toMs: number, retention: Retention, nowMs: number): Bucket[] {
  const out: Bucket[] = [];
  const kept = (res: Resolution, n: number) => (n + 1) * WIDTH_MS[res] + retention[res] > nowMs;
  let t = fromMs;
  while (t < toMs) {
    let taken = false;
    for (const res of ['d', 'h', 'm'] as const) {
      const w = WIDTH_MS[res];
      if (t % w !== 0 || t + w > toMs) continue;
      const n = t / w;
      if (!kept(res, n)) {
        if (res === 'd') throw new UncoverableRange('from', `reaches back past the ${Math.round(retention.d / WIDTH_MS.d)}-day retention of daily figures`);
        continue;
      }
      out.push({ res, n });
      t += w;
      taken = true;
      break;
    }
    if (!taken) {
      // only smaller buckets fit here, and they are gone: say which end needs rounding
      // before the first whole hour or day it is the start; after one, the end (later buckets are kept longer)
      const end = out.some((b) => b.res !== 'm') ? 'to' : 'from';
      const fine: Resolution = kept('h', Math.floor(t / WIDTH_MS.h)) ? 'h' : 'd';
      throw new UncoverableRange(end, `figures this old are kept per ${NAMES[fine]} only: the range must ${end === 'from' ? 'start' : 'end'} on a whole ${NAMES[fine]} (UTC)`);
    }
  }
  return out;
}

/** The start (ms) of the bucket of resolution `res` holding `ms`. */
export function bucketStart(ms: number, res: Resolution): number {
  return Math.floor(ms / WIDTH_MS[res]) * WIDTH_MS[res];
}

/**
 * The intervals of a series over [fromMs, toMs): one per hour or day (UTC), the first and last cut to the range.
 */
export function seriesIntervals(fromMs: number, toMs: number, step: 'h' | 'd'): [number, number][] {
  const out: [number, number][] = [];
  for (let start = fromMs; start < toMs; ) {
    const end = Math.min(toMs, bucketStart(start, step) + WIDTH_MS[step]);
    out.push([start, end]);
    start = end;
  }
  return out;
}
