/**
 * The export function: seeding and recovery for a subscription.
 *   POST /v1/exports, GET /v1/exports/{id}, GET /v1/exports/{id}/file   an interval of the buffered stream, or a
 *                                                                         snapshot of the newest event per key, as a
 *                                                                         gzipped NDJSON file with a manifest
 *   POST /v1/subscriptions/{id}/replay, GET /v1/subscriptions/{id}/replays/{replayId}
 *                                                                         a past interval re-derived from Kafka
 * Both run asynchronously in the instance that accepted them (202 with a resource to poll); their state is in
 * Redis. See exports.ts, snapshots.ts and replays.ts; docs/exports.md for users.
 */
import { Readable } from 'node:stream';
import { z } from 'zod';
import { commonSchema, env, requireRedis } from '../../platform/config/env.ts';
import { defineFunction } from '../../platform/runtime/contract.ts';
import { createApp, readJson } from '../../platform/http/app.ts';
import { parseOrThrow } from '../../platform/http/problem.ts';
import { HttpError } from '../../platform/errors.ts';
import { createRedis, redisReachable } from '../../platform/redis/client.ts';
import { createKafka, fetchOptions, kafkaProbe, kafkaSecurity } from '../../platform/kafka/client.ts';
import { createTenantStore } from '../../platform/store/tenants.ts';
import { createSubscriptionStore, type Subscription } from '../../platform/store/subscriptions.ts';
import { authenticate, type TenantContext } from '../../platform/auth/authenticate.ts';
import { findSubscription, loadSubscription, READ_ROLES, requireTenant, WRITE_ROLES } from '../../platform/http/tenant-scope.ts';
import { bufferLimitsOf, bufferSchema, coldReadsSchema, decodingOf, sourceSchema } from '../../platform/config/source.ts';
import { isId } from '../../platform/ids.ts';
import { counter } from '../../platform/telemetry/metrics.ts';
import { createExporter } from './exports.ts';
import { createReplayer } from './replays.ts';
import { createSnapshotter } from './snapshots.ts';
import { tieredStreamsFor } from '../../platform/tiers/cold-reader.ts';

const config = commonSchema.extend({
  // the same source topics, decoding and buffer limits as the route: a replay derives what the route derived
  ...sourceSchema.shape,
  ...bufferSchema.shape,
  ...coldReadsSchema.shape,
  /** where export files are written; every export instance must see the same directory (a shared volume) */
  PIONEER_EXPORT_DIR: z.string().min(1).default('.run/exports'),
  /** how long export and replay records are kept in Redis */
  PIONEER_EXPORT_TTL_HOURS: env.int(1, 24 * 365).default(168),
  PIONEER_EXPORT_PAGE: env.int(1, 100_000).default(1000),
  /** lease of a running export or replay: renewed every third of it; a dead instance's work reads as failed after it */
  PIONEER_EXPORT_LEASE_MS: env.int(1000, 600_000).default(30_000),
  /** a snapshot without `state_topic` keeps per key the newest event of these types from the source topics */
  PIONEER_SNAPSHOT_TYPES: env.list().default(['balance.snapshot']),
  /** a snapshot starts once its subscription is unchanged this long: every route instance matches with it by then */
  PIONEER_SNAPSHOT_SETTLE_MS: env.int(0, 600_000).default(5000),
  /** memory the newest events of the tenant's keys may take in the partitions a snapshot reads at once; more fails it */
  PIONEER_SNAPSHOT_MEMORY_MB: env.int(1, 65_536).default(256),
  /** snapshots one instance writes at once (each reads whole topics, fetched straight from the partitions' leaders) */
  PIONEER_SNAPSHOTS_MAX: env.int(1, 100).default(2),
}).refine(...requireRedis);
export type ExportConfig = z.infer<typeof config>;

const time = z.iso.datetime({ offset: true, error: 'must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z' });
const replayBody = z.strictObject({ since: time, until: time.optional() });
const exportBody = z
  .strictObject({
    subscription_id: z.string().min(1).max(64),
    kind: z.enum(['interval', 'snapshot']).default('interval'),
    from: time.optional(),
    to: time.optional(),
    /** a snapshot's compacted state topic (one of the source topics) */
    state_topic: z.string().min(1).max(249).optional(),
  })
  .superRefine((b, ctx) => {
    if (b.kind === 'snapshot') {
      for (const field of ['from', 'to'] as const)
        if (b[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'is not taken by a snapshot (the newest event per key, cut at the stream\'s head)' });
    } else if (b.state_topic !== undefined) ctx.addIssue({ code: 'custom', path: ['state_topic'], message: 'is taken by kind "snapshot" only' });
  });

export default defineFunction({
  name: 'export',
  config,
  defaultPort: 8085,
  async create(cfg, { log, metrics }) {
    const redis = createRedis(cfg, { name: 'export' });
    const kafka = createKafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId: `${cfg.PIONEER_KAFKA_CLIENT_ID}-export`, log, ...kafkaSecurity(cfg) });
    const tenants = createTenantStore(redis);
    const subs = createSubscriptionStore(redis);
    const recordTtlMs = cfg.PIONEER_EXPORT_TTL_HOURS * 3600_000;
    // an export reaches back as far as a reader does: older than the hot window, from the source topics
    const tiered = tieredStreamsFor(cfg, { redis, store: subs, log, metrics, user: 'export' });
    const exporter = createExporter({
      redis, tiered, log: log.child({ component: 'exports' }), dir: cfg.PIONEER_EXPORT_DIR, pageSize: cfg.PIONEER_EXPORT_PAGE, leaseMs: cfg.PIONEER_EXPORT_LEASE_MS, recordTtlMs,
    });
    const replayer = createReplayer({
      redis, kafka, log: log.child({ component: 'replays' }), topics: cfg.PIONEER_SOURCE_TOPICS,
      decoding: decodingOf(cfg), limits: bufferLimitsOf(cfg), leaseMs: cfg.PIONEER_EXPORT_LEASE_MS, recordTtlMs,
    });
    const snapshots = createSnapshotter({
      redis, kafka, fetch: fetchOptions(cfg, `${cfg.PIONEER_KAFKA_CLIENT_ID}-export-snapshots`), log: log.child({ component: 'snapshots' }), exporter, dir: cfg.PIONEER_EXPORT_DIR, topics: cfg.PIONEER_SOURCE_TOPICS,
      decoding: decodingOf(cfg), snapshotTypes: cfg.PIONEER_SNAPSHOT_TYPES, settleMs: cfg.PIONEER_SNAPSHOT_SETTLE_MS,
      memoryBytes: cfg.PIONEER_SNAPSHOT_MEMORY_MB * 1024 * 1024, maxRunning: cfg.PIONEER_SNAPSHOTS_MAX, leaseMs: cfg.PIONEER_EXPORT_LEASE_MS, recordTtlMs,
      loadSubscription: (tenantId, subId) => findSubscription(subs, tenantId, subId),
    });
    const started = counter(metrics, 'pioneer_export_jobs_started_total', 'Exports and replays started', ['kind']);

    const probe = kafkaProbe(kafka);
    const app = createApp({
      name: 'export',
      log,
      metrics,
      ready: async () => {
        const [r, kafkaUp] = await Promise.all([redisReachable(redis), probe.reachable()]);
        return { redis: r, kafka: kafkaUp };
      },
    });
    app.use('/v1/*', authenticate(tenants));

    /** The caller's subscription named in a request body's `field`: 404 naming the field otherwise. */
    async function subscriptionIn(t: TenantContext, id: string, field: string): Promise<Subscription> {
      const sub = await findSubscription(subs, t.tenantId, id);
      if (!sub) throw new HttpError(404, 'not_found', `${field}: subscription not found`, { errors: [{ field, message: 'no such subscription' }] });
      return sub;
    }

    // ─── replays ──────────────────────────────────────────────────────────────────────────────────────────
    app.post('/v1/subscriptions/:id/replay', loadSubscription(subs, WRITE_ROLES), async (c) => {
      const sub = c.var.subscription;
      const body = parseOrThrow(replayBody, await readJson(c));
      const now = Date.now();
      const sinceMs = Date.parse(body.since);
      if (sinceMs > now) throw HttpError.badRequest('since', 'is in the future');
      let untilMs = now;
      if (body.until !== undefined) {
        untilMs = Date.parse(body.until);
        if (untilMs <= sinceMs) throw HttpError.badRequest('until', 'must be after since');
        untilMs = Math.min(untilMs, now);
      }
      const replay = await replayer.start(sub, sinceMs, untilMs, body.until !== undefined && untilMs < now);
      started.inc({ kind: 'replay' });
      return c.json(replay, 202, { location: `/v1/subscriptions/${sub.id}/replays/${replay.id}` });
    });

    app.get('/v1/subscriptions/:id/replays/:replayId', loadSubscription(subs, READ_ROLES), async (c) => {
      const { tenant: t, subscription: sub } = c.var;
      const id = c.req.param('replayId');
      const replay = isId('rpl', id) ? await replayer.get(t.tenantId, sub.id, id) : null;
      if (!replay) throw HttpError.notFound('replay');
      return c.json(replay);
    });

    // ─── exports ──────────────────────────────────────────────────────────────────────────────────────────
    app.post('/v1/exports', requireTenant(WRITE_ROLES), async (c) => {
      const t = c.var.tenant;
      const body = parseOrThrow(exportBody, await readJson(c));
      const sub = await subscriptionIn(t, body.subscription_id, 'subscription_id');
      if (body.kind === 'snapshot') {
        const record = await snapshots.start(sub, body.state_topic ?? null);
        started.inc({ kind: 'snapshot' });
        return c.json(record, 202, { location: `/v1/exports/${record.id}` });
      }
      const now = Date.now();
      const fromMs = body.from === undefined ? null : Date.parse(body.from);
      const toMs = body.to === undefined ? null : Date.parse(body.to);
      if (fromMs !== null && fromMs > now) throw HttpError.badRequest('from', 'is in the future');
      if (fromMs !== null && toMs !== null && toMs <= fromMs) throw HttpError.badRequest('to', 'must be after from');
      const record = await exporter.start(sub, fromMs, toMs);
      started.inc({ kind: 'export' });
      return c.json(record, 202, { location: `/v1/exports/${record.id}` });
    });

    app.get('/v1/exports/:id', requireTenant(READ_ROLES), async (c) => {
      const t = c.var.tenant;
      const id = c.req.param('id');
      const record = isId('exp', id) ? await exporter.get(t.tenantId, id) : null;
      if (!record) throw HttpError.notFound('export');
      return c.json(record);
    });

    app.get('/v1/exports/:id/file', requireTenant(READ_ROLES), async (c) => {
      const t = c.var.tenant;
      const id = c.req.param('id');
      if (!isId('exp', id)) throw HttpError.notFound('export');
      const { stream, bytes } = await exporter.file(t.tenantId, id);
      return new Response(Readable.toWeb(stream) as ReadableStream<Uint8Array>, {
        status: 200,
        headers: {
          'content-type': 'application/gzip',
          'content-length': String(bytes),
          'content-disposition': `attachment; filename="${id}.ndjson.gz"`,
        },
      });
    });

    return {
      name: 'export',
      app,
      async close() {
        await probe.close();
        await replayer.close();
        await snapshots.close();
        await exporter.close();
        await tiered.close();
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  },
});
