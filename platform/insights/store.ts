/**
 * The insights figures in Redis, and the one module that reads and writes them. Keys (built in
 * platform/redis/keys.ts; every one under the tenant's hash tag, so a tenant is one Redis Cluster slot):
 *
 *   {t:T}:ins:pos                    hash   "<topic>/<partition>" -> the next source offset applied for the tenant,
 *                                           "<topic>/<partition>:wm" -> the tenant's watermark there (ms): the
 *                                           newest event time accepted. Moved by the same script call that
 *                                           applies the events (apply-insights-1.lua), so a re-delivered record is
 *                                           skipped and an applied one is never lost: each counts once.
 *   {t:T}:ins:campaigns              set    the campaign ids the tenant's impressions and clicks named; the API
 *                                           answers 404 for any other. At most PIONEER_INSIGHTS_MAX_CAMPAIGNS.
 *   {t:T}:ins:b:<metric>:<r>:<n>:<c> hash   bucket n of resolution r (h hour, d day; buckets.ts) of
 *                                           campaign c for metric (impressions, clicks, clickToBasket): field ""
 *                                           the exact number of its events (HINCRBY), and its distinct customers
 *                                           as fields (value ""), exactly, while there are at most
 *                                           PIONEER_INSIGHTS_EXACT_UP_TO of them; once there are more they are
 *                                           dropped from the hash (which keeps the count alone) and
 *   {t:T}:ins:u:<metric>:<r>:<n>:<c> HLL    the same customers as a Redis HyperLogLog (PFADD, PFCOUNT), built then
 *                                           from the hash's customers: a bucket holds them in one of the two
 *                                           Both expire at the bucket's end plus its resolution's retention
 *                                           (minutes 48 h, hours 90 days, days 2 years by default).
 *   {t:T}:ins:g:<metric>:m:<h>:<c>   hash   the minute buckets of hour h (r = m above): field "<minute>" the
 *                                           minute's events, "<minute>|<customer>" each of its customers while at
 *                                           most PIONEER_INSIGHTS_EXACT_UP_TO, and "<minute>|" once it had more:
 *                                           then u:<metric>:m:<minute>:<c> has them. One hash per hour, so that a
 *                                           call writes the minutes of an hour with one HMGET and one HSET rather
 *                                           than three commands per minute bucket (a minute bucket mostly gets one
 *                                           or two events per call). It expires at the hour's end plus the minute
 *                                           retention. Minute buckets of the b: layout (earlier versions) are read
 *                                           beside it until they expire.
 *   {t:T}:ins:n:<metric>:<r>:<n>:<c> string buckets written before the hash: the number of events, and
 *   {t:T}:ins:x:<metric>:<r>:<n>:<c> set    the customers while at most PIONEER_INSIGHTS_EXACT_UP_TO (else u:
 *                                           has them; it had them from the first event too). No longer written;
 *                                           read beside the hash until they expire.
 *   {t:T}:ins:tmp                    HLL    a query's scratch HyperLogLog, or set for an exact union of hashes
 *                                           (count-customers-1.lua), deleted by the call that builds it
 *   {t:T}:ins:clk:<customer>         zset   the customer's clicks, "<ms>|<campaign>" scored by event time
 *   {t:T}:ins:crt:<customer>         zset   the customer's cart.add events (a reference each) by event time
 *   {t:T}:ins:att:<customer>         zset   "<campaign>\n<cart reference>" already attributed, by cart time
 *                                           These three keep what lies within lateness + attribution window of the
 *                                           newest entry a batch added (at most PIONEER_INSIGHTS_MAX_PER_CUSTOMER
 *                                           clicks and carts), and expire when the customer is idle that long.
 *   {t:T}:ins:flow:<minute>          hash   event type -> the tenant's events that reached the source topics in
 *                                           that minute (by the record's Kafka timestamp); kept as minutes are
 *
 * A query's range is covered by whole days, hours and minutes (buckets.ts); its distinct customers are the union
 * of the covering buckets' customers when each holds them exactly, else the estimate of one HyperLogLog holding the
 * buckets' HyperLogLogs and the customers held exactly; its events the sum of their counts (count-customers-1.lua).
 */
import type { PioneerRedis } from '../redis/client.ts';
import { insightsKeys } from '../redis/keys.ts';
import { positionField } from '../redis/keys.ts';
import type { Bucket, Retention } from './buckets.ts';
import { readCountHashes } from './flow.ts';

export const METRICS = ['impressions', 'clicks', 'clickToBasket'] as const;
export type Metric = (typeof METRICS)[number];

/** Where the tenant stands on one source partition. */
export interface TenantPosition {
  /** the next offset not yet applied; null when none was */
  next: string | null;
  /** the newest event time accepted there (ms); null when none */
  watermark: number | null;
}

export async function readTenantPosition(redis: PioneerRedis, tenantId: string, at: { topic: string; partition: number }): Promise<TenantPosition> {
  const field = positionField(at.topic, at.partition);
  const [next, wm] = await redis.hmget(insightsKeys.positions(tenantId), field, `${field}:wm`);
  return { next: next ?? null, watermark: wm === null || wm === undefined ? null : Number(wm) };
}

/** One record of the tenant, in source order, as the insights function judged it. */
export interface TenantRecord {
  offset: bigint;
  /** its minute (ms / 60000) and type, for the flow statistics */
  flowMinute: number;
  type: string;
  /** the insights event to count, when it is one and was accepted (campaignId for impressions and clicks, ref unique per event for cart.add) */
  event?: { kind: 'i' | 'c' | 'a'; timeMs: number; customerId: string; campaignId: string; ref: string };
  /** the tenant's watermark on the partition once this record is applied */
  watermarkAfter: number | null;
}

export interface ApplySettings {
  windowMs: number;
  retention: Retention;
  /** how long a customer's clicks and carts are kept behind the customer's newest (lateness + window) */
  customerKeepMs: number;
  maxPerCustomer: number;
  /** the most customers a bucket counts exactly (a set) before only its HyperLogLog does */
  exactMax: number;
  /**
   * records per script call (default APPLY_CHUNK): a long batch is applied in chunks, each moving the position
   * past its own records
   */
  chunk?: number;
}

export type ApplyOutcome = { applied: true; recorded: number; attributed: number } | { applied: false };

/**
 * Applies the tenant's records of one partition batch (offsets at or after `expected`, in order) and moves its
 * position past them, chunk by chunk, each chunk in one script call. `{ applied: false }` when the position is
 * no longer `expected` (another consumer applied the partition meanwhile): nothing of that chunk happened, and
 * the caller reads the position again and judges the records again.
 */
/**
 * Records per apply call. Redis runs a script alone: at about 15 µs per event (the insights benchmark, since an
 * hour's minute buckets share a hash; 20 µs with a hash per bucket, 100 µs before that) 1,000 records hold it some
 * 15 ms, so one tenant's busy partition cannot stall every other tenant's reads and appends for long, and a call
 * stays well within the client's command timeout (2,000 records at 100 µs took over 2 s on a loaded machine: the script ran,
 * the answer timed out, and the batch came again as already applied). A longer chunk shares more of its hour and
 * day buckets: 1,000 records write 1.1 buckets per event where 250 wrote 1.5.
 */
export const APPLY_CHUNK = 1000;

export async function applyTenantRecords(
  redis: PioneerRedis,
  tenantId: string,
  at: { topic: string; partition: number },
  expected: string | null,
  records: readonly TenantRecord[],
  s: ApplySettings,
): Promise<ApplyOutcome> {
  const size = s.chunk ?? APPLY_CHUNK;
  let current = expected;
  let recorded = 0;
  let attributed = 0;
  let watermark: number | null = null;
  const calls: string[][] = [];
  for (let i = 0; i < records.length; i += size) {
    const part = records.slice(i, i + size);
    const last = part[part.length - 1]!;
    const next = String(last.offset + 1n);
    watermark = last.watermarkAfter ?? watermark;
    const flow = new Map<string, number>();
    for (const r of part) {
      const k = `${r.flowMinute}\n${r.type}`;
      flow.set(k, (flow.get(k) ?? 0) + 1);
    }
    const args: string[] = [
      insightsKeys.prefix(tenantId), positionField(at.topic, at.partition), current ?? '', next, watermark === null ? '' : String(watermark),
      String(s.windowMs), String(s.retention.m), String(s.retention.h), String(s.retention.d), String(s.customerKeepMs), String(s.maxPerCustomer),
      String(s.exactMax), String(flow.size),
    ];
    for (const [k, n] of flow) {
      const [minute, type] = k.split('\n') as [string, string];
      args.push(minute, type, String(n));
    }
    for (const r of part) if (r.event) args.push(r.event.kind, String(r.event.timeMs), r.event.customerId, r.event.kind === 'a' ? r.event.ref : r.event.campaignId);
    calls.push(args);
    current = next;
  }
  // Two chunks' calls are in flight at a time, in order on one connection, and Redis runs them in that order: each
  // expects the position the one before moves to, so a chunk after a refused one is refused too, and Redis has the
  // next chunk as soon as it finishes one. (More at once would only queue: a call waiting behind many could outlast
  // the client's command timeout.)
  const pending: ReturnType<PioneerRedis['applyInsights']>[] = [];
  let refused = false;
  let failure: unknown = null;
  const settle = async (): Promise<void> => {
    try {
      const reply = await pending.shift()!;
      if (reply[0] !== 1) refused = true;
      else if (!refused) (recorded += Number(reply[1])), (attributed += Number(reply[2]));
    } catch (err) {
      failure ??= err;
    }
  };
  for (const args of calls) {
    if (pending.length >= IN_FLIGHT) await settle();
    if (refused || failure) break;
    pending.push(redis.applyInsights(insightsKeys.positions(tenantId), ...args));
  }
  while (pending.length > 0) await settle();
  if (failure) throw failure;
  return refused ? { applied: false } : { applied: true, recorded, attributed };
}

/** Apply calls of one tenant's partition batch in flight at once. */
const IN_FLIGHT = 2;

/** Which of `campaignIds` the tenant has seen, and how many it has in all. */
export async function knownCampaigns(redis: PioneerRedis, tenantId: string, campaignIds: readonly string[]): Promise<{ known: Set<string>; count: number }> {
  const key = insightsKeys.campaigns(tenantId);
  const [flags, count] = await Promise.all([campaignIds.length ? redis.smismember(key, ...campaignIds) : Promise.resolve([] as number[]), redis.scard(key)]);
  return { known: new Set(campaignIds.filter((_, i) => flags[i] === 1)), count };
}

export async function campaignSeen(redis: PioneerRedis, tenantId: string, campaignId: string): Promise<boolean> {
  return (await redis.sismember(insightsKeys.campaigns(tenantId), campaignId)) === 1;
}

export interface Figures {
  /** distinct customers */
  value: number;
  /** events, exactly */
  events: number;
  /** true when `value` is the HyperLogLog's estimate (a bucket outgrew its exact set) */
  estimate: boolean;
}

/** The most members the exact union of one figure may read before the figure is estimated instead. */
const UNION_LIMIT = 200_000;

const suffix = (metric: Metric, b: Bucket, campaignId: string) => `${metric}:${b.res}:${b.n}:${campaignId}`;

/**
 * The figures of each cover (a list of buckets), for one campaign and metric: distinct customers over the union
 * of a cover's buckets (exact where the buckets' sets allow, estimated otherwise), and their events summed; one
 * script call (count-customers-1.lua).
 */
export async function readFigures(redis: PioneerRedis, tenantId: string, campaignId: string, metric: Metric, covers: readonly (readonly Bucket[])[]): Promise<Figures[]> {
  const args = [insightsKeys.prefix(tenantId), String(UNION_LIMIT), String(covers.length), ...covers.map((c) => String(c.length))];
  for (const buckets of covers) for (const b of buckets) args.push(suffix(metric, b, campaignId));
  const reply = await redis.countCustomers(insightsKeys.campaigns(tenantId), ...args);
  return covers.map((_, i) => ({ value: Number(reply[3 * i]), events: Number(reply[3 * i + 1]), estimate: Number(reply[3 * i + 2]) === 1 }));
}

/** The tenant's events per type for each of `minutes` (ms / 60000), in order. */
export function readFlow(redis: PioneerRedis, tenantId: string, minutes: readonly number[]): Promise<Record<string, number>[]> {
  return readCountHashes(redis, minutes.map((m) => insightsKeys.flow(tenantId, m)));
}
