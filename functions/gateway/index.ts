/**
 * The gateway function: a subscription's events over Server-Sent Events (Accept: text/event-stream) or as
 * JSON pages. Resumes after `Last-Event-ID` or `?after=`, or from `?since=<RFC 3339>`. An SSE connection waits
 * for its stream's next entries through the instance's shared blocking readers (platform/redis/stream-readers.ts:
 * PIONEER_SSE_READERS connections, however many streams are open), and only when its socket has taken the last
 * chunk, so a slow client slows its own reads and nothing else. Concurrent SSE connections are limited per
 * tenant (429): a stream holds one of the tenant's slots (platform/redis/sse-slots.ts), taken atomically.
 */
import { z } from 'zod';
import type { Context } from 'hono';
import { commonSchema, env, requireRedis } from '../../platform/config/env.ts';
import { coldReadsSchema, sourceSchema } from '../../platform/config/source.ts';
import { ColdEntry, tieredStreamsFor, type TieredReader } from '../../platform/tiers/cold-reader.ts';
import { defineFunction } from '../../platform/runtime/contract.ts';
import { createApp } from '../../platform/http/app.ts';
import { CursorExpiredError, HttpError } from '../../platform/errors.ts';
import { createRedis, redisReachable } from '../../platform/redis/client.ts';
import { releaseSseSlot, renewSseSlot, takeSseSlot } from '../../platform/redis/sse-slots.ts';
import { createStreamReaders } from '../../platform/redis/stream-readers.ts';
import { assertCursor, bufferStats, cursorBeforeTime, cursorTime, isCursor, isHot, streamKey, tiers, toEntries, type StreamEntry, type Tiers } from '../../platform/redis/streams.ts';
import { createFlowCounter } from '../../platform/insights/flow.ts';
import { createTenantStore } from '../../platform/store/tenants.ts';
import { createSubscriptionStore, type Subscription } from '../../platform/store/subscriptions.ts';
import { authenticate, type TenantContext } from '../../platform/auth/authenticate.ts';
import { loadSubscription, READ_ROLES, requireTenant, type SubscriptionEnv } from '../../platform/http/tenant-scope.ts';
import { counter, gauge } from '../../platform/telemetry/metrics.ts';

const config = commonSchema.extend({
  // events older than the hot window are derived again from the source topics, as the route derived them
  ...sourceSchema.shape,
  ...coldReadsSchema.shape,
  PIONEER_SSE_HEARTBEAT_MS: env.int(100, 120000).default(15000),
  PIONEER_SSE_MAX_PER_TENANT: env.int(1, 100000).default(50),
  PIONEER_SSE_READ_COUNT: env.int(1, 10000).default(500),
  /** Redis connections that wait for new events on behalf of all of this instance's event streams */
  PIONEER_SSE_READERS: env.int(1, 64).default(8),
  /** how long a reading connection waits after a read that brought events before its next read: a few ms of
   *  latency for fewer, larger reads (each costs Redis work in proportion to the streams waiting on it) */
  PIONEER_SSE_READ_LINGER_MS: env.int(0, 1000).default(10),
  PIONEER_PAGE_MAX: env.int(1, 10000).default(1000),
  PIONEER_SSE_RETRY_MS: env.int(0, 600000).default(2000),
}).refine(...requireRedis);

const sanitize = (s: string) => s.replace(/[\r\n]/g, ' ');

/**
 * The SSE messages of entries (`id:` the cursor, `event:` the type without line breaks, `data:` the event), as
 * bytes: an entry derived from the source topics whose record's bytes are its text (ColdEntry) is copied from
 * them once, where text would decode them, join them and encode them again.
 */
export function sseBytes(entries: readonly StreamEntry[]): Buffer {
  const types = new Array<string>(entries.length);
  let size = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const type = e.type.includes('\n') || e.type.includes('\r') ? sanitize(e.type) : e.type;
    types[i] = type;
    const bytes = e instanceof ColdEntry && e.byteLength > 0 ? e.byteLength : Buffer.byteLength(e.event);
    // "id: " cursor "\nevent: " type "\ndata: " event "\n\n" (a cursor is ASCII)
    size += 4 + e.cursor.length + 8 + Buffer.byteLength(type) + 7 + bytes + 2;
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    at += out.write('id: ', at, 'latin1');
    at += out.write(e.cursor, at, 'latin1');
    at += out.write('\nevent: ', at, 'latin1');
    at += out.write(types[i]!, at, 'utf8');
    at += out.write('\ndata: ', at, 'latin1');
    if (e instanceof ColdEntry && e.byteLength > 0) at += e.copyTo(out, at);
    else at += out.write(e.event, at, 'utf8');
    out[at++] = 0x0a;
    out[at++] = 0x0a;
  }
  return out;
}

/** The cursor to read after: Last-Event-ID, ?after= or ?since=; 400 naming the field when malformed. */
function startCursor(c: Context): { cursor: string; given: boolean } {
  const header = c.req.header('last-event-id');
  const after = c.req.query('after');
  const since = c.req.query('since');
  if ([header, after, since].filter((v) => v !== undefined).length > 1)
    throw HttpError.badRequest('query:after', 'give only one of Last-Event-ID, after and since');
  if (header !== undefined) {
    if (!isCursor(header)) throw HttpError.badRequest('header:Last-Event-ID', `not a cursor (expected <ms>-<seq>): ${header.slice(0, 64)}`);
    return { cursor: header, given: true };
  }
  if (after !== undefined) {
    if (!isCursor(after)) throw HttpError.badRequest('query:after', `not a cursor (expected <ms>-<seq>): ${after.slice(0, 64)}`);
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
    const redis = createRedis(cfg, { name: 'gateway' });
    const readers = createStreamReaders({
      redis, size: cfg.PIONEER_SSE_READERS, count: cfg.PIONEER_SSE_READ_COUNT, lingerMs: cfg.PIONEER_SSE_READ_LINGER_MS, log: log.child({ component: 'stream-readers' }),
    });
    const tenants = createTenantStore(redis);
    const subs = createSubscriptionStore(redis);
    const tiered = tieredStreamsFor(cfg, { redis, store: subs, log, metrics, user: 'gateway' });
    const open = gauge(metrics, 'pioneer_gateway_sse_connections', 'Open SSE connections');
    const sent = counter(metrics, 'pioneer_gateway_events_sent_total', 'Events sent to clients', ['mode']);
    const flow = createFlowCounter(redis, 'delivered');
    /** counts entries sent to a tenant's client: the metric by mode, the tenant's flow by type */
    const delivered = (tenantId: string, mode: 'json' | 'sse', entries: readonly StreamEntry[]) => {
      sent.inc({ mode }, entries.length);
      flow.addEach(tenantId, entries.map((e) => e.type));
    };
    const streams = new Set<() => void>();
    let closing = false;

    const app = createApp({ name: 'gateway', log, metrics, ready: async () => ({ redis: await redisReachable(redis) }) });
    app.use('/v1/*', authenticate(tenants));

    app.get('/v1/subscriptions/:id/events', loadSubscription(subs, READ_ROLES), async (c) => {
      const { tenant: t, subscription: sub } = c.var;
      const start = startCursor(c);
      // without a cursor, a reader starts at the oldest event of the hot window
      const startTiers = start.given ? await assertCursor(redis, { tenantId: t.tenantId, subId: sub.id, cursor: start.cursor }) : await tiers(redis, { tenantId: t.tenantId, subId: sub.id });
      const cursor = start.given ? start.cursor : startTiers.trimmed;
      const wantsSse = (c.req.header('accept') ?? '').includes('text/event-stream');
      if (!wantsSse) return page(c, t, sub, cursor);
      return sse(c, t, sub, streamKey(t.tenantId, sub.id), cursor, startTiers);
    });

    /** The tenant's subscriptions and what each holds in its buffer: how much is waiting, from when to when. */
    app.get('/v1/stats', requireTenant(READ_ROLES), async (c) => {
      const t = c.var.tenant;
      const list = await subs.list(t.tenantId);
      const stats = await bufferStats(redis, { tenantId: t.tenantId, subIds: list.map((sub) => sub.id) });
      let buffered = 0;
      const data = list.map((sub, n) => {
        const { length, oldestCursor, newestCursor } = stats[n]!;
        buffered += length;
        return {
          id: sub.id,
          ...(sub.name ? { name: sub.name } : {}),
          buffered: length,
          oldest_cursor: oldestCursor,
          newest_cursor: newestCursor,
          oldest_time: cursorTime(oldestCursor),
          newest_time: cursorTime(newestCursor),
        };
      });
      return c.json({ tenant_id: t.tenantId, subscriptions: data.length, buffered, data });
    });

    async function page(c: Context, t: TenantContext, sub: Subscription, cursor: string) {
      const limitRaw = c.req.query('limit') ?? '100';
      const limit = Number(limitRaw);
      if (!/^\d+$/.test(limitRaw) || limit < 1 || limit > cfg.PIONEER_PAGE_MAX)
        throw HttpError.badRequest('query:limit', `must be an integer from 1 to ${cfg.PIONEER_PAGE_MAX}`);
      // a chain of cold pages keeps its reader (and its Kafka consumer) from one page to the next
      const parkKey = (after: string) => `${t.tenantId}/${sub.id}/${after}`;
      const reader = tiered.unpark(parkKey(cursor)) ?? tiered.reader({ tenantId: t.tenantId, subId: sub.id });
      let entries: StreamEntry[];
      let hasMore: boolean;
      try {
        ({ entries, hasMore } = await reader.read(cursor, limit));
      } catch (err) {
        await reader.close();
        throw err;
      }
      if (reader.cold && entries.length > 0) tiered.park(parkKey(entries[entries.length - 1]!.cursor), reader);
      else await reader.close();
      delivered(t.tenantId, 'json', entries);
      const body =
        `{"data":[${entries.map((e) => `{"cursor":"${e.cursor}","event":${e.event}}`).join(',')}],` +
        `"next_cursor":${JSON.stringify(entries.length ? entries[entries.length - 1]!.cursor : cursor)},"has_more":${hasMore}}`;
      return c.body(body, 200, { 'content-type': 'application/json' });
    }

    async function sse(c: Context<SubscriptionEnv>, t: TenantContext, sub: Subscription, key: string, from: string, startTiers: Tiers) {
      if (closing) throw new HttpError(503, 'shutting_down', 'the gateway is shutting down; reconnect', { headers: { 'retry-after': '1' } });
      const ttlMs = cfg.PIONEER_SSE_HEARTBEAT_MS * 3;
      const took = await takeSseSlot(redis, { tenantId: t.tenantId, max: cfg.PIONEER_SSE_MAX_PER_TENANT, ttlMs });
      if (!took.taken)
        throw new HttpError(429, 'too_many_streams', `at most ${cfg.PIONEER_SSE_MAX_PER_TENANT} concurrent event streams per tenant`, {
          headers: { 'retry-after': String(Math.ceil(cfg.PIONEER_SSE_HEARTBEAT_MS / 1000)) },
        });
      const slot = took.slot;
      const reader: TieredReader = tiered.reader({ tenantId: t.tenantId, subId: sub.id });
      // a cursor older than the hot window: its first events are read before the answer, so that one older than
      // the source topics keep (410) or too many cold reads at once (503) is the answer's status, not a cut stream
      let first: StreamEntry[] = [];
      let catchingUp = !isHot(from, startTiers);
      if (catchingUp) {
        try {
          const read = await reader.read(from, cfg.PIONEER_SSE_READ_COUNT);
          first = read.entries;
          catchingUp = read.cold;
        } catch (err) {
          await reader.close();
          await releaseSseSlot(redis, { slot }).catch(() => {});
          throw err;
        }
      }

      const encoder = new TextEncoder();
      const slog = c.get('log').child({ subscription: sub.id, tenant: t.tenantId });
      const waits = new AbortController();
      let cursor = first.length > 0 ? first[first.length - 1]!.cursor : from;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        streams.delete(abort);
        open.dec();
        clearInterval(renewal);
        waits.abort();
        reader.close().catch(() => {});
        releaseSseSlot(redis, { slot }).catch(() => {});
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
      // the slot is held while the stream is open, however busy or slow its client: renewed on a timer, not by reads
      const renewal = setInterval(() => {
        renewSseSlot(redis, { slot, ttlMs }).then(
          (held) => {
            if (held || done) return;
            slog.warn('event stream lost its slot (its lease expired); closing so the client reconnects');
            abort();
          },
          () => {}, // Redis away: the reads fail and close the stream
        );
      }, cfg.PIONEER_SSE_HEARTBEAT_MS);
      renewal.unref();
      let controllerRef: ReadableStreamDefaultController<Uint8Array> | undefined;
      streams.add(abort);
      open.inc();
      slog.info({ from }, 'event stream opened');

      const body = new ReadableStream<Uint8Array>(
        {
          start(controller) {
            controllerRef = controller;
            controller.enqueue(encoder.encode(`retry: ${cfg.PIONEER_SSE_RETRY_MS}\n: connected to ${sub.id}\n\n`));
            if (first.length > 0) {
              delivered(t.tenantId, 'sse', first);
              controller.enqueue(sseBytes(first));
            }
          },
          async pull(controller) {
            if (done) return;
            try {
              // older than the hot window (at the start, or trimmed past a slow client): the tiered reader serves
              // it, from the source topics, until the stream is back in the hot window
              if (catchingUp) {
                const { entries, cold } = await reader.read(cursor, cfg.PIONEER_SSE_READ_COUNT);
                if (done) return;
                if (!cold) catchingUp = false;
                if (entries.length > 0) {
                  cursor = entries[entries.length - 1]!.cursor;
                  delivered(t.tenantId, 'sse', entries);
                  controller.enqueue(sseBytes(entries));
                  return;
                }
                if (cold) return;
              }
              const raw = await readers.next({ key, cursor, timeoutMs: cfg.PIONEER_SSE_HEARTBEAT_MS, signal: waits.signal });
              if (done) return;
              if (raw && !isHot(cursor, await tiers(redis, { tenantId: t.tenantId, subId: sub.id }))) {
                // the hot window moved past this stream's cursor: what XREAD skipped comes from the cold tier
                catchingUp = true;
                return;
              }
              if (!raw) {
                // quiet: a heartbeat, and a check that the subscription still exists
                if (!(await subs.exists(t.tenantId, sub.id))) {
                  if (done) return;
                  controller.enqueue(encoder.encode(`event: pioneer.subscription.deleted\ndata: {"code":"subscription_deleted"}\n\n`));
                  finish();
                  controller.close();
                  return;
                }
                if (done) return;
                controller.enqueue(encoder.encode(`: heartbeat ${new Date().toISOString()}\n\n`));
                return;
              }
              const entries = toEntries(raw);
              cursor = entries[entries.length - 1]!.cursor;
              delivered(t.tenantId, 'sse', entries);
              controller.enqueue(sseBytes(entries));
            } catch (err) {
              if (done) return;
              if (err instanceof CursorExpiredError) {
                // the source topics no longer hold what comes next: say so before the stream ends (a reconnect gets 410)
                controller.enqueue(encoder.encode(`event: pioneer.cursor.expired\ndata: ${JSON.stringify({ code: err.code, cursor: err.cursor, oldest_cursor: err.oldestCursor })}\n\n`));
                finish();
                controller.close();
                return;
              }
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
        readers.close();
        await tiered.close();
        await flow.close();
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  },
});
