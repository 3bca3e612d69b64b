/**
 * Cursors are the gateway's Redis Stream entry ids, `<ms>-<seq>`, strictly increasing within a subscription.
 */
export const CURSOR_RE = /^\d{1,20}-\d{1,20}$/;

export function isCursor(value: unknown): value is string {
  return typeof value === 'string' && CURSOR_RE.test(value);
}

/** -1, 0 or 1 as `a` is before, equal to or after `b`; null (no position yet) is before every cursor. */
export function compareCursors(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const d = BigInt(am) - BigInt(bm);
  if (d !== 0n) return d < 0n ? -1 : 1;
  const e = BigInt(as) - BigInt(bs);
  return e === 0n ? 0 : e < 0n ? -1 : 1;
}

/** The time (ms since the epoch) at which the gateway stored the event at `cursor`. */
export function cursorTime(cursor: string): number {
  return Number(cursor.split('-')[0]);
}
