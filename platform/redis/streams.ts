/**
 * Subscription streams, in two tiers: Redis holds each subscription's newest events (the hot window), and
 * events older than it are derived again from the source topics (the cold tier, platform/tiers/cold-reader.ts),
 * behind the same cursors.
 *
 * The route appends (append-events-n.lua, one call per tenant and source batch) a run of entries per
 * subscription and call, with consecutive ids (`<ms>-<seq>`, `<ms>-<seq+1>`, ...), and records the run in the
 * subscription's marks: its first id, how many entries, the source partition and the first and last source
 * offsets appended, the digest of the matching spec the events were matched with, and the replay that marked
 * them. Re-deriving the partition's records in [first, last] offset with that spec gives the run's events
 * again, in order, so the k-th of them is the entry `<ms>-<seq+k>`: the same id, the same text. A cursor is an
 * entry id whichever tier serves it, and resumes exactly from either. A run whose source positions are unknown
 * (a trigger that gives none) is marked with its count only: it is served while hot, never derived again.
 *
 * After each call the stream is trimmed to its size cap, and at most once a second (every twentieth of a
 * shorter hot window; the positions hash's `~check` holds when next) to its hot window (the greatest trimmed id is kept as
 * TRIMMED_FIELD) and the marks to the resumable retention (COLD_FIELD: cursors at or after it resume; before
 * it, the runs are forgotten). A cursor older than both answers cursor_expired.
 *
 * Keys (tenant keys under the hash tag {t:T}; built in platform/redis/keys.ts):
 *   {t:T}:stream:<sub>   stream  the subscription's hot events; fields `type` (the CloudEvent type) and `event`
 *                                (the structured CloudEvent JSON)
 *   {t:T}:marks:<sub>    stream  one entry per appended run, its id the run's first id; fields n (entries), p
 *                                ("<topic>/<partition>", "" when unknown), f and t (first and last source
 *                                offset), v (the matching spec's digest), r (the replay id, "" for live events)
 *   {t:T}:pos:<sub>      hash    source position "<topic>/<partition>" -> last offset appended (the route's
 *                                idempotent append), TRIMMED_FIELD, COLD_FIELD and `~check`
 *
 * This module is the one that reads them: JSON pages of the hot tier, per-subscription stats, the head entry a
 * webhook lane sends next, an export's consistent snapshot of head and positions and its pages, the marks, and
 * the check that a cursor still resumes (CursorExpiredError otherwise). Appends are
 * platform/redis/client.ts's appendToStreams; SSE waits through platform/redis/stream-readers.ts on the key
 * streamKey gives. Every call touches one tenant's keys only (one Redis Cluster slot).
 */
import { CursorExpiredError } from '../errors.ts';
import type { PioneerRedis, Redis } from './client.ts';
import { keys } from './keys.ts';

const CURSOR_RE = /^\d{1,20}-\d{1,20}$/;
const MAX_PART = 2n ** 64n - 1n;

/** A stream entry id as Redis takes it: `<ms>-<seq>`, each an unsigned 64-bit integer. */
export function isCursor(value: string): boolean {
  if (!CURSOR_RE.test(value)) return false;
  const [ms, seq] = value.split('-') as [string, string];
  return BigInt(ms) <= MAX_PART && BigInt(seq) <= MAX_PART;
}

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
/** Field of the positions hash: entries after this id are covered by marks (absent: none is). */
export const COLD_FIELD = '~cold';

type RawEntries = [string, string[]][];

/** The key of a subscription's stream, for the shared blocking readers (platform/redis/stream-readers.ts). */
export function streamKey(tenantId: string, subId: string): string {
  return keys.stream(tenantId, subId);
}

/** The time (ISO 8601) of a cursor, or null. */
export function cursorTime(cursor: string | null): string | null {
  return cursor ? new Date(Number(cursor.split('-')[0])).toISOString() : null;
}

interface StreamOf {
  tenantId: string;
  subId: string;
}

/** Where a subscription's tiers begin: hot entries are those after `trimmed`; marks cover those after `cold`. */
export interface Tiers {
  /** the greatest entry id ever trimmed from the stream ("0-0": none) */
  trimmed: string;
  /** entries after this id can be derived again from their marks; null when no run is marked */
  cold: string | null;
}

export async function tiers(redis: Redis, { tenantId, subId }: StreamOf): Promise<Tiers> {
  const [trimmed, cold] = await redis.hmget(keys.positions(tenantId, subId), TRIMMED_FIELD, COLD_FIELD);
  return { trimmed: trimmed ?? '0-0', cold: cold ?? null };
}

/** The oldest cursor a reader can resume after and miss nothing. */
export function oldestResumable({ trimmed, cold }: Tiers): string {
  return cold !== null && compareIds(cold, trimmed) < 0 ? cold : trimmed;
}

/** Whether the hot tier holds every entry after `cursor`. */
export function isHot(cursor: string, t: Tiers): boolean {
  return compareIds(cursor, t.trimmed) >= 0;
}

/**
 * Throws CursorExpiredError when entries after `cursor` are neither in the hot window nor covered by marks
 * (reading on would silently skip them). Returns the tiers read.
 */
export async function assertCursor(redis: Redis, { tenantId, subId, cursor }: StreamOf & { cursor: string }): Promise<Tiers> {
  const t = await tiers(redis, { tenantId, subId });
  const oldest = oldestResumable(t);
  if (compareIds(cursor, oldest) >= 0) return t;
  throw new CursorExpiredError({ cursor, subscriptionId: subId, oldestCursor: oldest });
}

/** The cursor of the oldest entry the buffer holds, or null when it is empty. */
export async function oldestCursor(redis: Redis, { tenantId, subId }: StreamOf): Promise<string | null> {
  return ((await redis.xrange(keys.stream(tenantId, subId), '-', '+', 'COUNT', 1)) as RawEntries)[0]?.[0] ?? null;
}

/**
 * Up to `limit` entries after `after`, and whether more follow them, when the hot window still holds every entry
 * after `after` (the trimmed marker and the entries are read in one MULTI, so a trim cannot slip between the
 * check and the read); null when it does not: the cold tier serves them.
 */
export async function readHotPage(redis: Redis, { tenantId, subId, after, limit }: StreamOf & { after: string; limit: number }): Promise<{ entries: StreamEntry[]; hasMore: boolean } | null> {
  const res = await redis.multi().hget(keys.positions(tenantId, subId), TRIMMED_FIELD).xrange(keys.stream(tenantId, subId), `(${after}`, '+', 'COUNT', limit + 1).exec();
  const failed = res?.find(([err]) => err)?.[0];
  if (!res || failed) throw failed ?? new Error('hot read failed');
  const trimmed = (res[0]![1] as string | null) ?? '0-0';
  if (compareIds(after, trimmed) < 0) return null;
  const raw = res[1]![1] as RawEntries;
  return { entries: toEntries(raw.slice(0, limit)), hasMore: raw.length > limit };
}

/** A run of appended entries and where it came from (see the top of this module). */
export interface Mark {
  /** the run's first entry id */
  first: string;
  count: number;
  /** "<topic>/<partition>", "" when the source positions are unknown (never derived again) */
  field: string;
  fromOffset: string;
  toOffset: string;
  /** the digest of the matching spec the events were matched with */
  spec: string;
  /** the replay that marked the events, "" for live events */
  replay: string;
}

/** The ids of a run's entries, in order. */
export function runIds(mark: Pick<Mark, 'first' | 'count'>): string[] {
  const dash = mark.first.indexOf('-');
  const prefix = mark.first.slice(0, dash + 1);
  const seq = mark.first.slice(dash + 1);
  const ids = new Array<string>(mark.count);
  // a cold step names a few thousand entries: sequence numbers as Numbers while exact (they nearly always are),
  // without a BigInt per id
  const base = Number(seq);
  if (Number.isSafeInteger(base + mark.count)) for (let k = 0; k < mark.count; k++) ids[k] = prefix + (base + k);
  else {
    const big = BigInt(seq);
    for (let k = 0; k < mark.count; k++) ids[k] = prefix + (big + BigInt(k));
  }
  return ids;
}

/** The last entry id of a run. */
export function lastIdOf(mark: Pick<Mark, 'first' | 'count'>): string {
  const [ms, seq] = mark.first.split('-') as [string, string];
  return `${ms}-${BigInt(seq) + BigInt(mark.count - 1)}`;
}

function toMark([first, fields]: [string, string[]]): Mark {
  const f: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  return { first, count: Number(f['n']), field: f['p'] ?? '', fromOffset: f['f'] ?? '', toOffset: f['t'] ?? '', spec: f['v'] ?? '', replay: f['r'] ?? '' };
}

/** Up to `count` marks of the runs holding entries after `after`, in order (the first may hold `after` itself). */
export async function marksAfter(redis: Redis, { tenantId, subId, after, count }: StreamOf & { after: string; count: number }): Promise<Mark[]> {
  const key = keys.marks(tenantId, subId);
  const [before, next] = await Promise.all([
    redis.xrevrange(key, after, '-', 'COUNT', 1) as Promise<RawEntries>,
    redis.xrange(key, `(${after}`, '+', 'COUNT', count) as Promise<RawEntries>,
  ]);
  const out = next.map(toMark);
  const holding = before[0] ? toMark(before[0]) : null;
  if (holding && compareIds(lastIdOf(holding), after) > 0) out.unshift(holding);
  return out.slice(0, count);
}

/** Up to `limit` entries after `after`, and whether more follow them. */
export async function readPage(redis: Redis, { tenantId, subId, after, limit }: StreamOf & { after: string; limit: number }): Promise<{ entries: StreamEntry[]; hasMore: boolean }> {
  const raw = (await redis.xrange(keys.stream(tenantId, subId), `(${after}`, '+', 'COUNT', limit + 1)) as RawEntries;
  return { entries: toEntries(raw.slice(0, limit)), hasMore: raw.length > limit };
}

/** Up to `count` entries after `after`, up to and including `until` (a cursor), in stream order. */
export async function readRange(redis: Redis, { tenantId, subId, after, until, count }: StreamOf & { after: string; until: string; count: number }): Promise<StreamEntry[]> {
  return toEntries((await redis.xrange(keys.stream(tenantId, subId), `(${after}`, until, 'COUNT', count)) as RawEntries);
}

/** The first entry after `after`, or null when there is none yet. */
export async function nextEntry(redis: Redis, { tenantId, subId, after }: StreamOf & { after: string }): Promise<StreamEntry | null> {
  return toEntries((await redis.xrange(keys.stream(tenantId, subId), `(${after}`, '+', 'COUNT', 1)) as RawEntries)[0] ?? null;
}

/** What a subscription's buffer holds: how many entries, the oldest and the newest cursor. */
export interface BufferStats {
  subscriptionId: string;
  length: number;
  oldestCursor: string | null;
  newestCursor: string | null;
}

/**
 * The buffer of each of ONE tenant's subscriptions, in the order given: all their keys share the tenant's hash
 * tag, so they go in one pipeline (another tenant's never join it).
 */
export async function bufferStats(redis: Redis, { tenantId, subIds }: { tenantId: string; subIds: readonly string[] }): Promise<BufferStats[]> {
  if (subIds.length === 0) return [];
  const tx = redis.pipeline();
  for (const subId of subIds) {
    const key = keys.stream(tenantId, subId);
    tx.xlen(key).xrange(key, '-', '+', 'COUNT', 1).xrevrange(key, '+', '-', 'COUNT', 1);
  }
  const results = (await tx.exec()) ?? [];
  const failed = results.find(([err]) => err)?.[0];
  if (failed) throw failed;
  const cursorAt = (i: number) => (results[i]?.[1] as RawEntries | undefined)?.[0]?.[0] ?? null;
  return subIds.map((subscriptionId, n) => ({
    subscriptionId,
    length: Number(results[n * 3]?.[1] ?? 0),
    oldestCursor: cursorAt(n * 3 + 1),
    newestCursor: cursorAt(n * 3 + 2),
  }));
}

/** The stream's head and the positions hash, read together. */
export interface StreamSnapshot {
  /** the newest entry's cursor, null when the stream is empty */
  head: string | null;
  /** the greatest entry id ever trimmed ("0-0": none) */
  trimmed: string;
  /** per "<topic>/<partition>" the last source offset appended up to `head` */
  sourcePositions: Record<string, string>;
}

/** The head and the positions in one MULTI: appends made after it are after `head` and not in its positions. */
export async function snapshot(redis: PioneerRedis, { tenantId, subId }: StreamOf): Promise<StreamSnapshot> {
  const snap = await redis.multi().xrevrange(keys.stream(tenantId, subId), '+', '-', 'COUNT', 1).hgetall(keys.positions(tenantId, subId)).exec();
  if (!snap || snap.some(([err]) => err)) throw snap?.find(([err]) => err)?.[0] ?? new Error('snapshot failed');
  const head = (snap[0]![1] as RawEntries)[0]?.[0] ?? null;
  const hash = snap[1]![1] as Record<string, string>;
  return {
    head,
    trimmed: hash[TRIMMED_FIELD] ?? '0-0',
    sourcePositions: Object.fromEntries(Object.entries(hash).filter(([k]) => !k.startsWith('~'))), // the markers are no positions
  };
}
