/**
 * A generator of realistic ad sessions for the insights tests, and the exact answers computed from them
 * independently of the function: customers see impressions of campaigns over some hours, some click, some of the
 * clickers fill a basket minutes to hours later, some baskets come with no click at all. Records are spread over
 * the partitions at random (so a click may be processed after its cart event), each partition shuffled within
 * the allowed lateness. Seeded, so a failure repeats.
 */
import { randomBytes } from 'node:crypto';
import type { Message } from 'kafkajs';

export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface AdEvent {
  tenant: string;
  kind: 'ad.impression' | 'ad.click' | 'cart.add' | 'product.view';
  type: string;
  timeMs: number;
  customerId: string;
  campaignId?: string;
  partition: number;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;

/** Sessions of `customers` customers of `tenant` over [startMs, startMs + spanMs), on `campaigns`. */
export function sessions(opts: { tenant: string; campaigns: string[]; customers: number; startMs: number; spanMs: number; partitions: number; seed: number }): AdEvent[] {
  const rnd = seededRandom(opts.seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const out: AdEvent[] = [];
  const at = (ms: number) => Math.floor(Math.min(ms, opts.startMs + opts.spanMs - 1) / 1000) * 1000;
  const push = (e: Omit<AdEvent, 'partition' | 'tenant'>) => out.push({ ...e, tenant: opts.tenant, partition: Math.floor(rnd() * opts.partitions) });
  for (let n = 0; n < opts.customers; n++) {
    const customerId = `cust-${opts.seed}-${n}`;
    const visits = 1 + Math.floor(rnd() * 4);
    for (let v = 0; v < visits; v++) {
      const campaignId = pick(opts.campaigns);
      const t = opts.startMs + rnd() * opts.spanMs;
      // a brand's prefix on some types: `com.shop.ad.click` is an ad.click too
      const prefixed = rnd() < 0.3 ? 'com.shop.' : '';
      push({ kind: 'ad.impression', type: `${prefixed}ad.impression`, timeMs: at(t), customerId, campaignId });
      if (rnd() < 0.2) push({ kind: 'ad.impression', type: 'ad.impression', timeMs: at(t + rnd() * 10 * MINUTE), customerId, campaignId });
      if (rnd() < 0.45) {
        const click = at(t + rnd() * 5 * MINUTE);
        push({ kind: 'ad.click', type: `${prefixed}ad.click`, timeMs: click, customerId, campaignId });
        push({ kind: 'product.view', type: 'product.view', timeMs: at(click + 30_000), customerId });
        // most baskets within the hour, some after it (outside a 1 h window)
        if (rnd() < 0.6) push({ kind: 'cart.add', type: 'cart.add', timeMs: at(click + rnd() * 90 * MINUTE), customerId });
      }
    }
    if (rnd() < 0.1) push({ kind: 'cart.add', type: 'cart.add', timeMs: at(opts.startMs + rnd() * opts.spanMs), customerId });
  }
  // shuffle: out of order within each partition (within hours) and across partitions
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The record of an event, structured mode, for its partition. */
export function adRecord(e: Pick<AdEvent, 'tenant' | 'type' | 'timeMs' | 'customerId' | 'campaignId'> & { partition?: number; data?: Record<string, unknown> }): Message & { partition?: number } {
  const data = e.data ?? {
    customerId: e.customerId,
    ...(e.campaignId !== undefined ? { campaignId: e.campaignId, adId: `ad-${e.campaignId}` } : {}),
    ...(e.type.endsWith('cart.add') ? { productId: 'sku-1' } : {}),
  };
  const ce = {
    specversion: '1.0', id: randomBytes(8).toString('hex'), source: '/shop', type: e.type, tenantid: e.tenant,
    time: new Date(e.timeMs).toISOString(), datacontenttype: 'application/json', data,
  };
  return { value: JSON.stringify(ce), headers: { 'content-type': 'application/cloudevents+json' }, ...(e.partition !== undefined ? { partition: e.partition } : {}) };
}

export type Metric = 'impressions' | 'clicks' | 'clickToBasket';

/** One counted occurrence: the customer, in the bucket of `timeMs`. */
interface Hit { timeMs: number; customerId: string }

/** The exact answers: hits per (tenant, campaign, metric), attribution computed from all clicks in event time. */
export class Expected {
  private readonly hits = new Map<string, Hit[]>();

  constructor(events: readonly AdEvent[], windowMs: number) {
    const add = (tenant: string, campaign: string, metric: Metric, hit: Hit) => {
      const k = `${tenant}\n${campaign}\n${metric}`;
      let list = this.hits.get(k);
      if (!list) this.hits.set(k, (list = []));
      list.push(hit);
    };
    const clicks = new Map<string, { timeMs: number; campaignId: string }[]>();
    for (const e of events) {
      if (e.kind === 'ad.impression') add(e.tenant, e.campaignId!, 'impressions', e);
      if (e.kind === 'ad.click') {
        add(e.tenant, e.campaignId!, 'clicks', e);
        const k = `${e.tenant}\n${e.customerId}`;
        clicks.set(k, [...(clicks.get(k) ?? []), { timeMs: e.timeMs, campaignId: e.campaignId! }]);
      }
    }
    for (const e of events) {
      if (e.kind !== 'cart.add') continue;
      const campaigns = new Set((clicks.get(`${e.tenant}\n${e.customerId}`) ?? []).filter((c) => c.timeMs <= e.timeMs && c.timeMs >= e.timeMs - windowMs).map((c) => c.campaignId));
      for (const c of campaigns) add(e.tenant, c, 'clickToBasket', e);
    }
  }

  /** Distinct customers and events of (tenant, campaign, metric) in [fromMs, toMs). */
  figures(tenant: string, campaign: string, metric: Metric, fromMs: number, toMs: number): { value: number; events: number } {
    const hits = (this.hits.get(`${tenant}\n${campaign}\n${metric}`) ?? []).filter((h) => h.timeMs >= fromMs && h.timeMs < toMs);
    return { value: new Set(hits.map((h) => h.customerId)).size, events: hits.length };
  }
}

export { MINUTE, HOUR };
