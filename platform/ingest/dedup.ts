/**
 * Ingest's dedup records: what is known of each (source, id) a tenant ingested within the dedup window, so that
 * a retried request produces each event once and is answered where Kafka put it. Key (built in
 * platform/redis/keys.ts):
 *   {t:T}:ingest:evt:<event id>   hash   source -> the ingest record JSON (IngestRecord), or "pending:<deadline ms>"
 *                                        while a request is producing it (reserve-event-1.lua); the hash expires
 *                                        after the dedup window, counted from its last reservation
 * A reservation is taken in one step per (source, id) and holds for its lease; a request that produced the events
 * replaces its reservations with records, one that failed releases them, and one that died leaves them to lapse
 * after the lease (another request then takes them over). Every call touches one tenant's keys only.
 */
import type { PioneerRedis } from '../redis/client.ts';
import { scriptPipeline } from '../redis/client.ts';
import { ingestKeys } from '../redis/keys.ts';

/** What is kept of an ingested (source, id) during the dedup window. */
export interface IngestRecord {
  id: string;
  source: string;
  type: string;
  accepted_at: string;
  topic: string;
  partition: number;
  offset: string;
}

/** One event of a tenant, by its CloudEvent source and id. */
export interface EventRef {
  id: string;
  source: string;
}

/**
 * What a reservation came to: `reserved` for the caller (it then records or releases it), `pending` while
 * another request is producing the event, `recorded` when it was ingested within the window.
 */
export type Reservation = { status: 'reserved' } | { status: 'pending' } | { status: 'recorded'; record: IngestRecord };

const PENDING = 'pending:';

/**
 * Reserves each of the tenant's events for `leaseMs` (an expired reservation is taken over), the hash kept for
 * `windowSeconds`; one result per event, in order. When Redis fails part-way, the reservations made are released
 * and the error thrown: the request is retried whole.
 */
export async function reserveEvents(
  redis: PioneerRedis,
  { tenantId, events, leaseMs, windowSeconds }: { tenantId: string; events: readonly EventRef[]; leaseMs: number; windowSeconds: number },
): Promise<Reservation[]> {
  if (events.length === 0) return [];
  // one tenant's keys: one hash slot, so one pipeline
  const pipe = scriptPipeline(redis);
  for (const e of events) pipe.reserveEvent(ingestKeys.event(tenantId, e.id), e.source, String(leaseMs), String(windowSeconds));
  const replies = (await pipe.exec()) ?? [];
  let failed: unknown;
  const out: Reservation[] = events.map((_, n) => {
    const [err, value] = replies[n] ?? [new Error('no reply'), null];
    if (err) {
      failed ??= err;
      return { status: 'pending' };
    }
    if (value === null) return { status: 'reserved' };
    const stored = String(value);
    return stored.startsWith(PENDING) ? { status: 'pending' } : { status: 'recorded', record: JSON.parse(stored) as IngestRecord };
  });
  if (failed !== undefined) {
    await releaseEvents(redis, { tenantId, events: events.filter((_, n) => !replies[n]?.[0] && replies[n]?.[1] === null) }).catch(() => {});
    throw failed;
  }
  return out;
}

/** Gives reservations back (the events were not produced): a retry may produce them. */
export async function releaseEvents(redis: PioneerRedis, { tenantId, events }: { tenantId: string; events: readonly EventRef[] }): Promise<void> {
  if (events.length === 0) return;
  const tx = redis.pipeline();
  for (const e of events) tx.hdel(ingestKeys.event(tenantId, e.id), e.source);
  await tx.exec();
}

/** Replaces the tenant's reservations with the records of where Kafka put the events. */
export async function recordEvents(redis: PioneerRedis, { tenantId, records }: { tenantId: string; records: readonly IngestRecord[] }): Promise<void> {
  if (records.length === 0) return;
  const tx = redis.pipeline();
  for (const r of records) tx.hset(ingestKeys.event(tenantId, r.id), r.source, JSON.stringify(r));
  await tx.exec();
}

/** One source's entry for an event id: being produced, or its record. */
export type KnownEvent = { id: string; source: string; status: 'pending' } | (IngestRecord & { status: 'accepted' });

/**
 * What is known of the tenant's event id within the window (of `source` only, when given), by source; and until
 * when it is remembered (ms since the epoch; null when not known).
 */
export async function lookupEvent(
  redis: PioneerRedis,
  { tenantId, id, source }: { tenantId: string; id: string; source?: string | undefined },
): Promise<{ entries: KnownEvent[]; rememberedUntilMs: number | null }> {
  const key = ingestKeys.event(tenantId, id);
  const [all, ttl] = await Promise.all([redis.hgetall(key), redis.pttl(key)]);
  const entries = Object.entries(all)
    .filter(([src]) => source === undefined || src === source)
    .map(([src, value]): KnownEvent => (value.startsWith(PENDING) ? { id, source: src, status: 'pending' } : { ...(JSON.parse(value) as IngestRecord), status: 'accepted' }))
    .sort((a, b) => a.source.localeCompare(b.source));
  return { entries, rememberedUntilMs: ttl > 0 ? Date.now() + ttl : null };
}
