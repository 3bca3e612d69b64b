/**
 * Subscription streams: one Redis Stream per subscription at {t:T}:stream:<sub>, appended by the route
 * (append-events-n.lua, one call per tenant and source batch), trimmed by time (default 72 h) and by a
 * size cap, exactly, after each call; the last
 * trimmed id is kept in the positions hash (TRIMMED_FIELD) so expired cursors are recognised. Each entry has
 * two fields: `type` (the CloudEvent type) and `event` (the structured CloudEvent JSON). The entry id is the
 * cursor clients see (SSE `id:`, the JSON page's `cursor`), so resuming after it is exact.
 */
import { HttpError } from '../errors.ts';
import type { Redis } from './client.ts';

export const CURSOR_RE = /^\d{1,20}-\d{1,20}$/;

export interface StreamEntry {
  cursor: string;
  type: string;
  /** structured CloudEvent JSON, as stored */
  event: string;
}

export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-') as [string, string];
  const [bm, bs] = b.split('-') as [string, string];
  const d = BigInt(am) - BigInt(bm);
  if (d !== 0n) return d < 0n ? -1 : 1;
  const e = BigInt(as) - BigInt(bs);
  return e === 0n ? 0 : e < 0n ? -1 : 1;
}

/** The cursor just before the first entry at or after `ms` (XREAD/XRANGE with it starts at `ms`). */
export function cursorBeforeTime(ms: number): string {
  return ms <= 0 ? '0-0' : `${ms - 1}-18446744073709551615`;
}

export function toEntries(raw: [string, string[]][]): StreamEntry[] {
  return raw.map(([cursor, fields]) => {
    let type = '';
    let event = '';
    for (let i = 0; i < fields.length; i += 2) {
      if (fields[i] === 'type') type = fields[i + 1]!;
      else if (fields[i] === 'event') event = fields[i + 1]!;
    }
    return { cursor, type, event };
  });
}

/** Field of the positions hash holding the greatest entry id ever trimmed (no Kafka topic name has a `~`). */
export const TRIMMED_FIELD = '~trimmed';

/**
 * 410 when entries after `cursor` were trimmed away (reading on would silently skip them): the cursor is older
 * than the last entry the retention or the size cap removed.
 */
export async function assertCursorAvailable(redis: Redis, keysOf: { stream: string; positions: string }, cursor: string, subscriptionId: string): Promise<void> {
  const trimmed = (await redis.hget(keysOf.positions, TRIMMED_FIELD)) ?? '0-0';
  if (compareIds(cursor, trimmed) >= 0) return;
  const oldest = ((await redis.xrange(keysOf.stream, '-', '+', 'COUNT', 1)) as [string, string[]][])[0]?.[0] ?? null;
  throw new HttpError(410, 'cursor_expired', `cursor ${cursor} is older than the subscription's buffer`, {
    extra: {
      oldest_cursor: oldest,
      detail:
        `events after this cursor were trimmed from the buffer. To recover them, replay the subscription from Kafka ` +
        `(POST /v1/subscriptions/${subscriptionId}/replay with {"since": "<RFC 3339 time>"}) or seed from an export ` +
        `(POST /v1/exports), then resume from the oldest cursor.`,
    },
  });
}
