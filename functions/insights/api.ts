/**
 * The insights API (read-only; tenant and consumer keys, each reading its own tenant only; admin keys get 403):
 *   GET /v1/insights/ads/{campaignId}/{metric}?from=&to=&granularity=total|hour|day
 *   GET /v1/insights/ads/{campaignId}/{metric}/{fromDate}[/{endDate}]        dates, endDate inclusive (default today)
 *   GET /v1/insights/flow?from=&to=                                           the tenant's events per type and minute
 * A campaign the tenant's events never named answers 404 (another tenant's too); every bad parameter a 400 naming
 * it, and every range is bounded: at most 400 days, at most PIONEER_INSIGHTS_MAX_SERIES_POINTS points.
 */
import type { Context } from 'hono';
import { z } from 'zod';
import { HttpError } from '../../platform/errors.ts';
import type { App } from '../../platform/http/app.ts';
import { READ_ROLES, requireTenant, type TenantEnv } from '../../platform/http/tenant-scope.ts';
import type { PioneerRedis } from '../../platform/redis/client.ts';
import { bucketStart, cover, seriesIntervals, UncoverableRange, WIDTH_MS, type Retention } from '../../platform/insights/buckets.ts';
import { MAX_CAMPAIGN_ID } from '../../platform/insights/events.ts';
import { campaignSeen, METRICS, readFigures, readFlow, type Metric } from '../../platform/insights/store.ts';
import { readStageFlow } from '../../platform/insights/flow.ts';

/** The longest range a query may ask for. */
export const MAX_RANGE_DAYS = 400;
/**
 * The relative error stated with an estimated distinct count (a bucket past PIONEER_INSIGHTS_EXACT_UP_TO
 * customers): Redis' HyperLogLog (16384 registers) has a standard error of 0.81 %, and 2 % is about 2.5 of them
 * (docs/insights.md has what was measured).
 */
export const ERROR_BOUND = 0.02;

const GRANULARITIES = ['total', 'hour', 'day'] as const;
type Granularity = (typeof GRANULARITIES)[number];

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const rfc3339 = z.iso.datetime({ offset: true });

/** A date (midnight UTC) or an RFC 3339 time on a whole minute, in ms; 400 naming `field` otherwise. */
function parseTime(raw: string, field: string, datesOnly = false): number {
  const d = DATE.exec(raw);
  if (d) {
    const ms = Date.UTC(Number(d[1]), Number(d[2]) - 1, Number(d[3]));
    if (new Date(ms).toISOString().slice(0, 10) !== raw) throw HttpError.badRequest(field, `not a calendar date: ${raw.slice(0, 40)}`);
    return ms;
  }
  if (datesOnly) throw HttpError.badRequest(field, 'must be a date, e.g. 2026-11-30');
  if (!rfc3339.safeParse(raw).success) throw HttpError.badRequest(field, 'must be an RFC 3339 time (2026-11-30T10:00:00Z) or a date (2026-11-30)');
  const ms = Date.parse(raw);
  if (!Number.isFinite(ms)) throw HttpError.badRequest(field, 'must be an RFC 3339 time (2026-11-30T10:00:00Z) or a date (2026-11-30)');
  if (ms % WIDTH_MS.m !== 0) throw HttpError.badRequest(field, 'must fall on a whole minute: figures are kept per minute');
  return ms;
}

const ceilMinute = (ms: number) => Math.ceil(ms / WIDTH_MS.m) * WIDTH_MS.m;

export interface InsightsApiOptions {
  redis: PioneerRedis;
  retention: Retention;
  maxSeriesPoints: number;
  now?: () => number;
}

export function registerInsightsApi(app: App, opts: InsightsApiOptions): void {
  const { redis, retention, maxSeriesPoints } = opts;
  const now = opts.now ?? Date.now;

  function checkRange(fromMs: number, toMs: number, fields: { from: string; to: string }) {
    if (toMs <= fromMs) throw HttpError.badRequest(fields.to, 'must be after from');
    if (toMs - fromMs > MAX_RANGE_DAYS * WIDTH_MS.d) throw HttpError.badRequest(fields.to, `the range is at most ${MAX_RANGE_DAYS} days`);
  }

  function coverOrThrow(fromMs: number, toMs: number, fields: { from: string; to: string }) {
    try {
      return cover(fromMs, toMs, retention, now());
    } catch (err) {
      if (err instanceof UncoverableRange) throw HttpError.badRequest(err.end === 'from' ? fields.from : fields.to, err.message);
      throw err;
    }
  }

  /** The caller's campaign named by the path: another tenant's (or one never seen) is 404 before anything else is judged. */
  async function campaignOf(c: Context<TenantEnv>): Promise<string> {
    const campaignId = c.req.param('campaignId') ?? '';
    if (campaignId.length > MAX_CAMPAIGN_ID || !(await campaignSeen(redis, requireCaller(c), campaignId))) throw HttpError.notFound('campaign');
    return campaignId;
  }

  async function answer(c: Context<TenantEnv>, campaignId: string, range: { fromMs: number; toMs: number; fields: { from: string; to: string } }) {
    const tenantId = requireCaller(c);
    const metricRaw = c.req.param('metric') ?? '';
    const granularityRaw = c.req.query('granularity') ?? 'total';
    if (!(METRICS as readonly string[]).includes(metricRaw)) throw HttpError.badRequest('path:metric', `must be one of ${METRICS.join(', ')}`);
    if (!(GRANULARITIES as readonly string[]).includes(granularityRaw)) throw HttpError.badRequest('query:granularity', `must be one of ${GRANULARITIES.join(', ')}`);
    const metric = metricRaw as Metric;
    const granularity = granularityRaw as Granularity;
    const { fromMs, toMs, fields } = range;
    checkRange(fromMs, toMs, fields);
    const intervals = granularity === 'total' ? [] : seriesIntervals(fromMs, toMs, granularity === 'hour' ? 'h' : 'd');
    if (intervals.length > maxSeriesPoints)
      throw HttpError.badRequest('query:granularity', `${granularity} gives ${intervals.length} points for this range, at most ${maxSeriesPoints}: use day or a shorter range`);
    const total = coverOrThrow(fromMs, toMs, fields);
    const covers = [total, ...intervals.map(([a, b]) => coverOrThrow(a, b, fields))];
    const figures = await readFigures(redis, tenantId, campaignId, metric, covers);
    const [all, ...points] = figures;
    const estimate = figures.some((f) => f.estimate);
    return c.json({
      campaignId, metric, from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), granularity,
      value: all!.value, events: all!.events, estimate, ...(estimate ? { errorBound: ERROR_BOUND } : {}),
      series: intervals.map(([a], i) => ({ start: new Date(a).toISOString(), value: points[i]!.value, events: points[i]!.events, ...(points[i]!.estimate ? { estimate: true } : {}) })),
    });
  }

  const requireCaller = (c: Context<TenantEnv>): string => c.var.tenant.tenantId;

  app.get('/v1/insights/ads/:campaignId/:metric', requireTenant(READ_ROLES), async (c) => {
    const campaignId = await campaignOf(c);
    const fields = { from: 'query:from', to: 'query:to' };
    const fromRaw = c.req.query('from');
    const toRaw = c.req.query('to');
    const nowMs = now();
    let toMs = toRaw === undefined ? null : parseTime(toRaw, fields.to);
    const fromMs = fromRaw === undefined ? bucketStart((toMs ?? nowMs + 1) - 1, 'd') : parseTime(fromRaw, fields.from);
    toMs ??= Math.max(ceilMinute(nowMs), fromMs + WIDTH_MS.m);
    return answer(c, campaignId, { fromMs, toMs, fields });
  });

  async function pathForm(c: Context<TenantEnv>) {
    const campaignId = await campaignOf(c);
    const fields = { from: 'path:fromDate', to: 'path:endDate' };
    if (c.req.query('from') !== undefined || c.req.query('to') !== undefined)
      throw HttpError.badRequest(c.req.query('from') !== undefined ? 'query:from' : 'query:to', 'the path gives the range: leave from and to out');
    const fromMs = parseTime(c.req.param('fromDate') ?? '', fields.from, true);
    const end = c.req.param('endDate');
    const toMs = (end === undefined ? bucketStart(now(), 'd') : parseTime(end, fields.to, true)) + WIDTH_MS.d;
    return answer(c, campaignId, { fromMs, toMs, fields });
  }
  app.get('/v1/insights/ads/:campaignId/:metric/:fromDate', requireTenant(READ_ROLES), pathForm);
  app.get('/v1/insights/ads/:campaignId/:metric/:fromDate/:endDate', requireTenant(READ_ROLES), pathForm);

  /**
   * The tenant's events per type and minute as they reached the source topics, beside the entries the route
   * appended to its subscriptions and those delivered in that minute (default: the last hour).
   */
  app.get('/v1/insights/flow', requireTenant(READ_ROLES), async (c) => {
    const tenantId = requireCaller(c);
    const fields = { from: 'query:from', to: 'query:to' };
    const nowMs = now();
    const fromRaw = c.req.query('from');
    const toRaw = c.req.query('to');
    const toMs = toRaw === undefined ? ceilMinute(nowMs) : parseTime(toRaw, fields.to);
    const fromMs = fromRaw === undefined ? toMs - 60 * WIDTH_MS.m : parseTime(fromRaw, fields.from);
    if (toMs <= fromMs) throw HttpError.badRequest(fields.to, 'must be after from');
    const minutes = (toMs - fromMs) / WIDTH_MS.m;
    if (minutes > maxSeriesPoints) throw HttpError.badRequest(fields.to, `the range is at most ${maxSeriesPoints} minutes`);
    if (fromMs + retention.m + WIDTH_MS.m <= nowMs) throw HttpError.badRequest(fields.from, `minutes are kept for ${retention.m / 3_600_000} h`);
    const first = fromMs / WIDTH_MS.m;
    const span = Array.from({ length: minutes }, (_, i) => first + i);
    const [flows, routed, delivered] = await Promise.all([
      readFlow(redis, tenantId, span), readStageFlow(redis, tenantId, 'routed', span), readStageFlow(redis, tenantId, 'delivered', span),
    ]);
    const sum = (types: Record<string, number>) => Object.values(types).reduce((a, b) => a + b, 0);
    return c.json({
      from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(),
      series: flows.map((types, i) => ({
        start: new Date((first + i) * WIDTH_MS.m).toISOString(), events: sum(types), types,
        routed: { events: sum(routed[i]!), types: routed[i]! }, delivered: { events: sum(delivered[i]!), types: delivered[i]! },
      })),
    });
  });
}
