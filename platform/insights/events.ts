/**
 * Insights events: what the insights function counts, read from a source CloudEvent. An event is one when its type
 * is `ad.impression`, `ad.click`, `product.view` or `cart.add`, or ends with `.` and one of them
 * (`com.shop.ad.click`). Its `time` is required (event time decides the buckets) and its JSON `data` carries
 * `customerId` (all four kinds), `campaignId` (impressions and clicks; `adId` optional) and `productId` (cart.add).
 * A record of these types without them throws MalformedRecordError with the reason (it goes to the dead-letter
 * topic). Ids are bounded and free of control characters, so that they fit in a Redis key and a Lua member.
 */
import { MalformedRecordError } from '../errors.ts';
import type { CloudEventJson } from '../events/cloudevent.ts';

export const INSIGHTS_KINDS = ['ad.impression', 'ad.click', 'product.view', 'cart.add'] as const;
export type InsightsKind = (typeof INSIGHTS_KINDS)[number];

/** The longest campaign id (also what the API accepts in its path) and customer or product id. */
export const MAX_CAMPAIGN_ID = 128;
export const MAX_CUSTOMER_ID = 256;

export interface InsightsEvent {
  kind: InsightsKind;
  timeMs: number;
  customerId: string;
  /** impressions and clicks */
  campaignId?: string;
  adId?: string;
  productId?: string;
}

const SUFFIXES = INSIGHTS_KINDS.map((kind) => `.${kind}`);

/** The kind of `type` when it is an insights type, else null. */
export function insightsKindOf(type: string): InsightsKind | null {
  for (let i = 0; i < INSIGHTS_KINDS.length; i++) if (type === INSIGHTS_KINDS[i] || type.endsWith(SUFFIXES[i]!)) return INSIGHTS_KINDS[i]!;
  return null;
}

const CONTROL = /[\u0000-\u001f\u007f]/;

function id(data: Record<string, unknown>, name: string, max: number, required: boolean): string | undefined {
  const v = data[name];
  if (v === undefined || v === null) {
    if (required) throw new MalformedRecordError(`data.${name}: is required on this insights event`);
    return undefined;
  }
  if (typeof v !== 'string' || v.length === 0 || v.length > max || CONTROL.test(v))
    throw new MalformedRecordError(`data.${name}: must be a string of 1-${max} characters without control characters`);
  return v;
}

/**
 * The insights event `event` is, or null when its type is no insights type. Throws MalformedRecordError naming
 * the missing or invalid field otherwise.
 */
export function insightsEventOf(event: CloudEventJson): InsightsEvent | null {
  const kind = insightsKindOf(String(event.type ?? ''));
  if (!kind) return null;
  if (typeof event.time !== 'string') throw new MalformedRecordError('time: is required on insights events (event time decides the buckets)');
  const timeMs = Date.parse(event.time);
  if (!Number.isFinite(timeMs)) throw new MalformedRecordError(`time: not an RFC 3339 time: ${String(event.time).slice(0, 64)}`);
  const data = event.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new MalformedRecordError('data: insights events carry a JSON object');
  const d = data as Record<string, unknown>;
  const out: InsightsEvent = { kind, timeMs, customerId: id(d, 'customerId', MAX_CUSTOMER_ID, true)! };
  if (kind === 'ad.impression' || kind === 'ad.click') {
    out.campaignId = id(d, 'campaignId', MAX_CAMPAIGN_ID, true)!;
    const adId = id(d, 'adId', MAX_CUSTOMER_ID, false);
    if (adId !== undefined) out.adId = adId;
  }
  if (kind === 'cart.add') out.productId = id(d, 'productId', MAX_CUSTOMER_ID, true)!;
  return out;
}
