/**
 * Judging one tenant's records of a partition batch, before anything is written: which are insights events to
 * count, which go to the dead-letter topic and why (a required field missing, later than the allowed lateness
 * behind the tenant's watermark on the partition, further ahead than the clock-skew bound, one campaign past the
 * tenant's limit), and where the watermark stands after each. A pure function of the records, the tenant's
 * position and the clock, so that a batch judged again after a crash comes out the same (the clock aside).
 *
 * The watermark is the tenant's own on the partition (the newest event time accepted there), not the
 * partition's: another tenant's clock cannot make this one's events late, and the watermark lives under the
 * tenant's hash tag, moved in the same script call as its figures.
 */
import type { InboundEvent } from '../../platform/events/inbound.ts';
import type { MalformedRecordError } from '../../platform/errors.ts';
import type { InsightsEvent, InsightsKind } from '../../platform/insights/events.ts';
import type { TenantPosition, TenantRecord } from '../../platform/insights/store.ts';

export type DeadLetterReason = 'invalid' | 'late' | 'future' | 'campaign_limit';

export interface DeadLetter {
  item: InboundEvent;
  reason: DeadLetterReason;
  message: string;
}

export interface JudgeLimits {
  latenessMs: number;
  futureSkewMs: number;
  maxCampaigns: number;
}

export interface Judged {
  records: TenantRecord[];
  deadLetters: DeadLetter[];
  /** accepted insights events by kind */
  accepted: Partial<Record<InsightsKind, number>>;
  /** records before the tenant's position: applied before (a re-delivery) */
  skipped: number;
}

/** One record of the tenant, read once (the insights event it is) before it is judged, as often as that takes. */
export interface TenantItem {
  item: InboundEvent;
  offset: bigint;
  /** the event's type and time as the record has them */
  type: string;
  time: unknown;
  /** the insights event it is; null when its type is no insights type; the error when a field is wrong */
  insights: InsightsEvent | null | MalformedRecordError;
}

const KIND_CODE = { 'ad.impression': 'i', 'ad.click': 'c', 'cart.add': 'a' } as const;

export function judgeTenantRecords(opts: {
  topic: string;
  partition: number;
  items: readonly TenantItem[];
  position: TenantPosition;
  campaigns: { known: Set<string>; count: number };
  limits: JudgeLimits;
  nowMs: number;
}): Judged {
  const { items, position, limits, nowMs } = opts;
  const out: Judged = { records: [], deadLetters: [], accepted: {}, skipped: 0 };
  const next = position.next === null ? null : BigInt(position.next);
  let watermark = position.watermark;
  const known = new Set(opts.campaigns.known);
  let campaignCount = opts.campaigns.count;
  for (const { item, offset, type, time, insights: parsed } of items) {
    if (next !== null && offset < next) {
      out.skipped++;
      continue;
    }
    const stamp = Number(item.record?.timestamp);
    const flowMinute = Math.floor((Number.isFinite(stamp) && stamp > 0 ? stamp : nowMs) / 60_000);
    const record: TenantRecord = { offset, flowMinute, type: type.length > 256 ? type.slice(0, 256) : type, watermarkAfter: watermark };
    out.records.push(record);
    if (parsed === null) continue;
    if (parsed instanceof Error) {
      out.deadLetters.push({ item, reason: 'invalid', message: parsed.message });
      continue;
    }
    const t = parsed.timeMs;
    if (t > nowMs + limits.futureSkewMs) {
      out.deadLetters.push({ item, reason: 'future', message: `time: ${String(time)} is more than ${limits.futureSkewMs / 1000} s ahead of the clock` });
      continue;
    }
    if (watermark !== null && t < watermark - limits.latenessMs) {
      out.deadLetters.push({
        item, reason: 'late',
        message: `time: ${String(time)} is more than the allowed lateness (${limits.latenessMs / 1000} s) behind the watermark ${new Date(watermark).toISOString()}`,
      });
      continue;
    }
    const campaign = parsed.campaignId;
    if (campaign !== undefined && !known.has(campaign)) {
      if (campaignCount >= limits.maxCampaigns) {
        out.deadLetters.push({ item, reason: 'campaign_limit', message: `data.campaignId: the tenant has ${campaignCount} campaigns, the most it may have` });
        continue;
      }
      known.add(campaign);
      campaignCount++;
    }
    watermark = watermark === null ? t : Math.max(watermark, t);
    record.watermarkAfter = watermark;
    out.accepted[parsed.kind] = (out.accepted[parsed.kind] ?? 0) + 1;
    if (parsed.kind === 'product.view') continue;
    record.event = {
      kind: KIND_CODE[parsed.kind], timeMs: t, customerId: parsed.customerId, campaignId: campaign ?? '',
      // the reference tells cart.add events apart (attribution); impressions and clicks need none
      ref: parsed.kind === 'cart.add' ? `${opts.topic}/${opts.partition}/${offset}` : '',
    };
  }
  return out;
}
