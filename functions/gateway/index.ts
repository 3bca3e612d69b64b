/**
 * The gateway function: a subscription's events over Server-Sent Events (Accept: text/event-stream) or as
 * JSON pages. Resumes after `Last-Event-ID` or `?after=`, or from `?since=<RFC 3339>`. An SSE connection reads
 * its stream with a blocking XREAD of its own, only when the socket has taken the last chunk, so a slow
 * client slows its own reads and nothing else. Concurrent SSE connections are limited per tenant (429).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Context } from 'hono';
import { commonSchema, env } from '../../platform/config/env.ts';
import { defineFunction } from '../../platform/runtime/contract.ts';
import { createApp, type AppEnv } from '../../platform/http/app.ts';
import { HttpError } from '../../platform/errors.ts';
import { createRedis, redisReachable } from '../../platform/redis/client.ts';
import { keys } from '../../platform/redis/keys.ts';
import { assertCursorAvailable, cursorBeforeTime, CURSOR_RE, toEntries, type StreamEntry } from '../../platform/redis/streams.ts';
import { createTenantStore } from '../../platform/store/tenants.ts';
import { createSubscriptionStore, type Subscription } from '../../platform/store/subscriptions.ts';
import { authenticate, tenantOf, type TenantContext } from '../../platform/auth/authenticate.ts';
import { isId } from '../../platform/ids.ts';
import { counter, gauge } from '../../platform/telemetry/metrics.ts';

const config = commonSchema.pick({ PIONEER_REDIS_URL: true }).extend({
  PIONEER_SSE_HEARTBEAT_MS: env.int(100, 120000).default(15000),
  PIONEER_SSE_MAX_PER_TENANT: env.int(1, 100000).default(50),
  PIONEER_SSE_READ_COUNT: env.int(1, 10000).default(500),
  PIONEER_PAGE_MAX: env.int(1, 10000).default(1000),
  PIONEER_SSE_RETRY_MS: env.int(0, 600000).default(2000),
});

const sanitize = (s: string) => s.replace(/[\r\n]/g, ' ');

export function formatSse(entries: StreamEntry[]): string {
  let out = '';
  for (const e of entries) out += `id: ${e.cursor}\nevent: ${sanitize(e.type)}\ndata: ${e.event}\n\n`;
  return out;
}

/** The cursor to read after: Last-Event-ID, ?after= or ?since=; 400 naming the field when malformed. */
function startCursor(c: Context<AppEnv>): { cursor: string; given: boolean } {
  const header = c.req.header('last-event-id');
  const after = c.req.query('after');
  const since = c.req.query('since');
  if ([header, after, since].filter((v) => v !== undefined).length > 1)
    throw HttpError.badRequest('query:after', 'give only one of Last-Event-ID, after and since');
  if (header !== undefined) {
    if (!CURSOR_RE.test(header)) throw HttpError.badRequest('header:Last-Event-ID', `not a cursor (expected <ms>-<seq>): ${header.slice(0, 64)}`);
    return { cursor: header, given: true };
  }
  if (after !== undefined) {
    if (!CURSOR_RE.test(after)) throw HttpError.badRequest('query:after', `not a cursor (expected <ms>-<seq>): ${after.slice(0, 64)}`);
    return { cursor: after, given: true };
  }
  if (since !== undefined) {
    const parsed = z.iso.datetime({ offset: true }).safeParse(since);
    if (!parsed.success) throw HttpError.badRequest('query:since', 'must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z');
    return { cursor: cursorBeforeTime(Date.parse(since)), given: true };
  }
  return { cursor: '0-0', given: false };
}

export default defineFunction({
  name: 'gateway',
  config,
  defaultPort: 8083,
  async create(cfg, { log, metrics }) {
    const redis = createRedis(cfg.PIONEER_REDIS_URL, { name: 'gateway' });
    const tenants = createTenantStore(redis);
    const subs = createSubscriptionStore(redis);
    const open = gauge(metrics, 'pioneer_gateway_sse_connections', 'Open SSE connections');
    const sent = counter(metrics, 'pioneer_gateway_events_sent_total', 'Events sent to clients', ['mode']);
    const streams = new Set<() => void>();
    let closing = false;

    const app = createApp({ name: 'gateway', log, metrics, ready: async () => ({ redis: await redisReachable(redis) }) });
    app.use('/v1/*', authenticate(tenants));

    async function subscriptionOf(t: TenantContext, id: string): Promise<Subscription> {
      const sub = isId('sub', id) ? await subs.get(t.tenantId, id) : null;
      if (!sub) throw HttpError.notFound('subscription');
      return sub;
    }

    app.get('/v1/subscriptions/:id/events', async (c) => {
      const t = tenantOf(c.get('auth'), ['tenant', 'consumer']);
      const sub = await subscriptionOf(t, c.req.param('id'));
      const { cursor, given } = startCursor(c);
      const key = keys.stream(t.tenantId, sub.id);
      if (given) await assertCursorAvailable(redis, { stream: key, positions: keys.positions(t.tenantId, sub.id) }, cursor, sub.id);
      const wantsSse = (c.req.header('accept') ?? '').includes('text/event-stream');
      if (!wantsSse) return page(c, key, cursor);
      return sse(c, t, sub, key, cursor);
    });

    /** The tenant's subscriptions and what each holds in its buffer: how much is waiting, from when to when. */
    app.get('/v1/stats', async (c) => {
      const t = tenantOf(c.get('auth'), ['tenant', 'consumer']);
      const list = await subs.list(t.tenantId);
      const tx = redis.pipeline();
      for (const sub of list) {
        const key = keys.stream(t.tenantId, sub.id);
        tx.xlen(key).xrange(key, '-', '+', 'COUNT', 1).xrevrange(key, '+', '-', 'COUNT', 1);
      }
      const results = (await tx.exec()) ?? [];
      const cursorAt = (i: number) => ((results[i]?.[1] as [string, string[]][] | undefined)?.[0]?.[0] ?? null);
      const timeOf = (cursor: string | null) => (cursor ? new Date(Number(cursor.split('-')[0])).toISOString() : null);
      let buffered = 0;
      const data = list.map((sub, n) => {
        const length = Number(results[n * 3]?.[1] ?? 0);
        const oldest = cursorAt(n * 3 + 1);
        const newest = cursorAt(n * 3 + 2);
        buffered += length;
        return {
          id: sub.id,
          ...(sub.name ? { name: sub.name } : {}),
          buffered: length,
          oldest_cursor: oldest,
          newest_cursor: newest,
          oldest_time: timeOf(oldest),
          newest_time: timeOf(newest),
        };
      });
      return c.json({ tenant_id: t.tenantId, subscriptions: data.length, buffered, data });
    });

    async function page(c: Context<AppEnv>, key: string, cursor: string) {
      const limitRaw = c.req.query('limit') ?? '100';
      const limit = Number(limitRaw);
      if (!/^\d+$/.test(limitRaw) || limit < 1 || limit > cfg.PIONEER_PAGE_MAX)
        throw HttpError.badRequest('query:limit', `must be an integer from 1 to ${cfg.PIONEER_PAGE_MAX}`);
      const raw = (await redis.xrange(key, `(${cursor}`, '+', 'COUNT', limit + 1)) as [string, string[]][];
      const entries = toEntries(raw.slice(0, limit));
      sent.inc({ mode: 'json' }, entries.length);
      const body =
        `{"data":[${entries.map((e) => `{"cursor":"${e.cursor}","event":${e.event}}`).join(',')}],` +
        `"next_cursor":${JSON.stringify(entries.length ? entries[entries.length - 1]!.cursor : cursor)},"has_more":${raw.length > limit}}`;
      return c.body(body, 200, { 'content-type': 'application/json' });
    }

    async function sse(c: Context<AppEnv>, t: TenantContext, sub: Subscription, key: string, from: string) {
      if (closing) throw new HttpError(503, 'shutting_down', 'the gateway is shutting down; reconnect', { headers: { 'retry-after': '1' } });
      const leases = keys.sseLeases(t.tenantId);
      const lease = randomUUID();
      const leaseTtl = cfg.PIONEER_SSE_HEARTBEAT_MS * 3;
      const now = Date.now();
      const counted = await redis.multi().zremrangebyscore(leases, '-inf', now).zcard(leases).exec();
      const count = Number(counted?.[1]?.[1] ?? 0);
      if (count >= cfg.PIONEER_SSE_MAX_PER_TENANT)
        throw new HttpError(429, 'too_many_streams', `at most ${cfg.PIONEER_SSE_MAX_PER_TENANT} concurrent event streams per tenant`, {
          headers: { 'retry-after': String(Math.ceil(cfg.PIONEER_SSE_HEARTBEAT_MS / 1000)) },
        });
      await redis.zadd(leases, now + leaseTtl, lease);

      const reader = redis.duplicate();
      reader.on('error', () => {});
      const encoder = new TextEncoder();
      const slog = c.get('log').child({ subscription: sub.id, tenant: t.tenantId });
      let cursor = from;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        streams.delete(abort);
        open.dec();
        reader.disconnect();
        redis.zrem(leases, lease).catch(() => {});
        slog.info({ cursor }, 'event stream closed');
      };
      const abort = () => {
        finish();
        try {
          controllerRef?.close();
        } catch {
          // already closed
        }
      };
      let controllerRef: ReadableStreamDefaultController<Uint8Array> | undefined;
      streams.add(abort);
      open.inc();
      slog.info({ from }, 'event stream opened');

      const body = new ReadableStream<Uint8Array>(
        {
          start(controller) {
            controllerRef = controller;
            controller.enqueue(encoder.encode(`retry: ${cfg.PIONEER_SSE_RETRY_MS}\n: connected to ${sub.id}\n\n`));
          },
          async pull(controller) {
            if (done) return;
            try {
              const res = (await reader.xread('COUNT', cfg.PIONEER_SSE_READ_COUNT, 'BLOCK', cfg.PIONEER_SSE_HEARTBEAT_MS, 'STREAMS', key, cursor)) as
                | [string, [string, string[]][]][]
                | null;
              if (done) return;
              if (!res || res.length === 0 || res[0]![1].length === 0) {
                // quiet: a heartbeat, the lease renewed, and a check the subscription still exists
                const checked = await redis.multi().exists(keys.subscription(t.tenantId, sub.id)).zadd(leases, Date.now() + leaseTtl, lease).exec();
                const exists = checked?.[0]?.[1] === 1;
                if (!exists) {
                  controller.enqueue(encoder.encode(`event: pioneer.subscription.deleted\ndata: {"code":"subscription_deleted"}\n\n`));
                  finish();
                  controller.close();
                  return;
                }
                controller.enqueue(encoder.encode(`: heartbeat ${new Date().toISOString()}\n\n`));
                return;
              }
              const entries = toEntries(res[0]![1]);
              cursor = entries[entries.length - 1]!.cursor;
              sent.inc({ mode: 'sse' }, entries.length);
              controller.enqueue(encoder.encode(formatSse(entries)));
            } catch (err) {
              if (done) return;
              slog.warn({ err }, 'event stream read failed; closing so the client reconnects');
              finish();
              controller.error(err);
            }
          },
          cancel() {
            finish();
          },
        },
        { highWaterMark: 1 },
      );
      return new Response(body, {
        status: 200,
        headers: {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          'x-accel-buffering': 'no',
          connection: 'keep-alive',
        },
      });
    }

    /** Event streams never end by themselves: end them so that a stopping host need not wait; clients reconnect. */
    function drain() {
      closing = true;
      for (const abort of [...streams]) abort();
    }

    return {
      name: 'gateway',
      app,
      drain,
      async close() {
        drain();
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  },
});
