/**
 * The consumer: one subscription streamed over SSE from the gateway into a handler, once and in order.
 *
 *   connect (Last-Event-ID = checkpoint) → parse → batch (≤ maxBatchEvents, ≤ maxBatchWaitMs) → drop events
 *   already handed over (cursor at or before the checkpoint, or `source`+`id` in the recent window, unless the
 *   event carries `pioneerreplay`: a replay is a deliberate re-delivery) → handler
 *   (retried with backoff until it succeeds, never skipped) → checkpoint (atomic file) → next batch
 *
 * Reconnects with exponential backoff and jitter after network errors, 5xx and 429 (honouring Retry-After),
 * after the server closed the stream, and when no byte arrived for `missedHeartbeats` heartbeats. Ends with a
 * ConsumerError for what retrying cannot fix: a refused key (401/403), an unknown or deleted subscription
 * (the gateway's 404, or the `pioneer.subscription.deleted` event), a URL that is not the gateway (any other
 * 404), an expired cursor (410 `cursor_expired`), a bad request.
 */
import { ConsumerError } from './errors.ts';
import { compareCursors, cursorTime, isCursor } from './cursor.ts';
import { SseParser, type SseMessage } from './sse-parser.ts';
import { DEFAULT_BACKOFF, parseRetryAfter, retryDelay, type BackoffPolicy } from './backoff.ts';
import { createCheckpointStore, type Checkpoint, type CheckpointStore } from './checkpoint.ts';
import { eventKey, RecentIds } from './recent-ids.ts';
import { toHandler, type CloudEvent, type Delivery, type Handler, type HandlerFunction } from './handler.ts';
import { silentLogger, type Logger } from './logger.ts';

export const SUBSCRIPTION_DELETED_EVENT = 'pioneer.subscription.deleted';
/** The CloudEvent extension the platform sets on events a replay re-delivered (its value: the replay id). */
export const REPLAY_EXTENSION = 'pioneerreplay';

export interface ConsumerOptions {
  /** the gateway's base URL, e.g. https://pioneer.example.com */
  url: string;
  apiKey: string;
  subscription: string;
  handler: Handler | HandlerFunction;
  /** a checkpoint store, or the path of the checkpoint file */
  checkpoint: CheckpointStore | string;
  /** where to start when there is no checkpoint yet: after this cursor (default: the start of the buffer) */
  startAfter?: string | null;
  maxBatchEvents?: number;
  maxBatchWaitMs?: number;
  /** the gateway's heartbeat interval (PIONEER_SSE_HEARTBEAT_MS there) */
  heartbeatMs?: number;
  /** reconnect after this many heartbeat intervals without a byte */
  missedHeartbeats?: number;
  /** reconnect delays */
  backoff?: BackoffPolicy;
  /** delays between tries of a failing batch */
  handlerBackoff?: BackoffPolicy;
  /** how many recently handed-over event ids to remember against re-derived duplicates */
  recentIdsWindow?: number;
  /** how often to log a progress line (0: never) */
  progressIntervalMs?: number;
  log?: Logger;
  fetch?: typeof globalThis.fetch;
  userAgent?: string;
}

export interface ConsumerStats {
  cursor: string | null;
  lastEventTime: string | null;
  /** events handed to the handler by this process */
  handled: number;
  /** events dropped as already handed over */
  duplicatesDropped: number;
  reconnects: number;
  batches: number;
}

interface StreamOutcome {
  /** the server closed the stream (or a failing handler had it dropped) without an error */
  reason: 'ended' | 'handler_recovered' | 'stopped';
  healthy: boolean;
}

const TIMEOUT = Symbol('timeout');

export class Consumer {
  private readonly opts: Required<Omit<ConsumerOptions, 'checkpoint' | 'handler' | 'startAfter'>> & { startAfter: string | null };
  private readonly handler: Handler;
  private readonly store: CheckpointStore;
  private readonly log: Logger;
  private recent: RecentIds;
  private checkpoint: Checkpoint | null = null;
  private stopping = false;
  private readonly hardStop = new AbortController();
  private readonly stopSignal = new AbortController();
  private connection: AbortController | null = null;
  private dropConnection = false;
  private serverRetryMs: number | undefined;
  /** the last connection delivered events or lived a heartbeat interval: the backoff starts over */
  private connectionHealthy = false;
  private running: Promise<void> | null = null;
  private readonly stats: ConsumerStats = { cursor: null, lastEventTime: null, handled: 0, duplicatesDropped: 0, reconnects: 0, batches: 0 };

  constructor({
    url,
    apiKey,
    subscription,
    handler,
    checkpoint,
    startAfter = null,
    maxBatchEvents = 500,
    // 0: a batch is what arrived while the last one was handled; its size grows with the load by itself
    maxBatchWaitMs = 0,
    heartbeatMs = 15_000,
    missedHeartbeats = 3,
    backoff = DEFAULT_BACKOFF,
    handlerBackoff = DEFAULT_BACKOFF,
    recentIdsWindow = 10_000,
    progressIntervalMs = 10_000,
    log = silentLogger,
    fetch = globalThis.fetch,
    userAgent = 'pioneer-consumer/0.1',
  }: ConsumerOptions) {
    if (!/^https?:\/\//.test(url)) throw new ConsumerError('bad_config', `url must be an http(s) URL, got "${url}"`);
    if (!apiKey) throw new ConsumerError('bad_config', 'apiKey is required');
    if (!subscription) throw new ConsumerError('bad_config', 'subscription is required');
    if (startAfter !== null && !isCursor(startAfter)) throw new ConsumerError('bad_config', `startAfter must be a cursor like 1767225600000-0, got "${startAfter}"`);
    if (!(maxBatchEvents >= 1)) throw new ConsumerError('bad_config', 'maxBatchEvents must be at least 1');
    this.opts = {
      url: url.replace(/\/+$/, ''), apiKey, subscription, startAfter, maxBatchEvents, maxBatchWaitMs, heartbeatMs, missedHeartbeats, backoff,
      handlerBackoff, recentIdsWindow, progressIntervalMs, log, fetch, userAgent,
    };
    this.handler = toHandler(handler);
    this.store = typeof checkpoint === 'string' ? createCheckpointStore(checkpoint) : checkpoint;
    this.log = log.child({ component: 'consumer', subscription });
    this.recent = new RecentIds(recentIdsWindow);
  }

  /** Where the consumer stands, and what it did in this process. */
  status(): ConsumerStats {
    return { ...this.stats };
  }

  /**
   * Streams until `stop()` (resolves) or a terminal error (rejects with a ConsumerError). The handler is closed
   * either way.
   */
  run(): Promise<void> {
    this.running ??= this.loop();
    return this.running;
  }

  /**
   * Stops gracefully: the batch in the handler finishes and is checkpointed, nothing after it starts. With
   * `{ now: true }` the handler's signal is aborted too (a second Ctrl-C).
   */
  async stop({ now = false } = {}): Promise<void> {
    this.stopping = true;
    this.stopSignal.abort();
    if (now) this.hardStop.abort();
    this.connection?.abort();
    await this.running?.catch(() => {});
  }

  private async loop(): Promise<void> {
    const progress = this.opts.progressIntervalMs > 0 ? this.startProgress() : null;
    try {
      await this.init();
      let attempt = 0;
      while (!this.stopping) {
        let delay: number;
        try {
          const outcome = await this.streamOnce();
          if (outcome.reason === 'stopped' || this.stopping) break;
          if (outcome.reason === 'handler_recovered') {
            attempt = 0;
            continue;
          }
          attempt = outcome.healthy ? 1 : attempt + 1;
          const base = this.serverRetryMs ?? this.opts.backoff.initialMs;
          delay = retryDelay(attempt, { policy: { ...this.opts.backoff, initialMs: Math.max(1, base) } });
          this.log.info('the server closed the stream; reconnecting', { delay_ms: delay });
        } catch (err) {
          if (this.stopping) break;
          const e = asConsumerError(err);
          if (!e.retriable) throw e;
          attempt = this.connectionHealthy ? 1 : attempt + 1;
          delay = retryDelay(attempt, { policy: this.opts.backoff, ...(e.retryAfterMs !== undefined ? { retryAfterMs: e.retryAfterMs } : {}) });
          this.log.warn('stream interrupted; reconnecting', { code: e.code, error: e.message, attempt, delay_ms: delay });
        }
        this.stats.reconnects++;
        await sleep(delay, this.stopSignal.signal);
      }
      this.log.info('stopped', { cursor: this.checkpoint?.cursor ?? null, handled: this.stats.handled });
    } finally {
      if (progress) clearInterval(progress);
      await this.handler.close?.();
    }
  }

  private async init(): Promise<void> {
    const loaded = await this.store.load();
    const { subscription, startAfter, recentIdsWindow } = this.opts;
    if (loaded && loaded.subscription !== subscription)
      throw new ConsumerError(
        'checkpoint_mismatch',
        `the checkpoint ${this.store.path} belongs to subscription ${loaded.subscription}, not ${subscription}; use another directory per subscription`,
      );
    if (loaded && startAfter !== null && loaded.cursor !== startAfter)
      this.log.warn('a checkpoint exists; the start cursor is ignored', { checkpoint: loaded.cursor, start_after: startAfter });
    const cp: Checkpoint = loaded ?? {
      subscription, cursor: startAfter, updatedAt: new Date().toISOString(), lastEventTime: null, events: 0, recent: [],
    };
    this.recent = new RecentIds(recentIdsWindow, cp.recent);
    if (this.handler.recover) {
      const held = await this.handler.recover(cp.cursor, Math.max(1, recentIdsWindow));
      if (held.length > 0) {
        for (const h of held) this.recent.add(eventKey(h.source, h.id));
        const last = held[held.length - 1]!;
        this.log.info('the handler already holds events after the checkpoint; moving the checkpoint to them', {
          from: cp.cursor, to: last.cursor, events: held.length,
        });
        cp.cursor = last.cursor;
        cp.lastEventTime = last.time ?? cp.lastEventTime;
        cp.events += held.length;
        await this.save(cp);
      }
    }
    this.checkpoint = cp;
    this.stats.cursor = cp.cursor;
    this.stats.lastEventTime = cp.lastEventTime;
    this.log.info('starting', { cursor: cp.cursor, checkpoint: this.store.path });
  }

  private async streamOnce(): Promise<StreamOutcome> {
    const ac = new AbortController();
    this.connection = ac;
    this.dropConnection = false;
    this.connectionHealthy = false;
    if (this.stopping) return { reason: 'stopped', healthy: false };
    const idleMs = this.opts.heartbeatMs * this.opts.missedHeartbeats;
    const cursor = this.checkpoint!.cursor;
    const url = `${this.opts.url}/v1/subscriptions/${encodeURIComponent(this.opts.subscription)}/events`;
    const connectTimer = setTimeout(() => ac.abort(new ConsumerError('heartbeat_missed', `no answer from ${url} within ${idleMs} ms`, { retriable: true })), idleMs);
    let res: Response;
    try {
      res = await this.opts.fetch(url, {
        headers: {
          authorization: `Bearer ${this.opts.apiKey}`,
          accept: 'text/event-stream',
          'user-agent': this.opts.userAgent,
          ...(cursor ? { 'last-event-id': cursor } : {}),
        },
        signal: ac.signal,
      });
    } catch (err) {
      if (this.stopping) return { reason: 'stopped', healthy: false };
      if (ac.signal.reason instanceof ConsumerError) throw ac.signal.reason;
      throw new ConsumerError('network', `cannot reach ${this.opts.url}: ${describe(err)}`, { retriable: true, cause: err });
    } finally {
      clearTimeout(connectTimer);
    }
    if (res.status !== 200) throw await httpError(res, this.opts.subscription, cursor, url);
    const type = res.headers.get('content-type') ?? '';
    if (!type.includes('text/event-stream') || !res.body) {
      await res.body?.cancel().catch(() => {});
      throw new ConsumerError('protocol', `expected an event stream, got ${type || 'no content type'}`, { retriable: true });
    }
    this.log.info('connected', { after: cursor });

    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const pending: Delivery[] = [];
    let terminal: ConsumerError | null = null;
    let protocolError: ConsumerError | null = null;
    const parser = new SseParser({
      onRetry: (ms) => (this.serverRetryMs = ms),
      onMessage: (m: SseMessage) => {
        if (terminal || protocolError) return;
        if (m.event === SUBSCRIPTION_DELETED_EVENT) {
          terminal = new ConsumerError('subscription_deleted', `subscription ${this.opts.subscription} was deleted; there is nothing more to consume`);
          return;
        }
        if (!m.id || !isCursor(m.id)) {
          protocolError = new ConsumerError('protocol', `an event without a valid cursor (id: ${m.id ?? 'none'})`, { retriable: true });
          return;
        }
        let event: CloudEvent;
        try {
          event = JSON.parse(m.data) as CloudEvent;
        } catch (err) {
          protocolError = new ConsumerError('protocol', `the event at ${m.id} is not JSON`, { retriable: true, cause: err });
          return;
        }
        pending.push({ cursor: m.id, event, json: m.data });
      },
    });

    const connectedAt = Date.now();
    let healthy = false;
    let lastActivity = Date.now();
    let firstPendingAt = 0;
    let readP: Promise<ReadableStreamReadResult<Uint8Array>> | null = null;
    try {
      for (;;) {
        if (this.stopping) return { reason: 'stopped', healthy };
        if (this.dropConnection) return { reason: 'handler_recovered', healthy };
        if (protocolError) throw protocolError;
        if (pending.length > 0 && firstPendingAt === 0) firstPendingAt = Date.now();
        const now = Date.now();
        const flushAll = terminal !== null || (pending.length > 0 && now - firstPendingAt >= this.opts.maxBatchWaitMs);
        if (pending.length >= this.opts.maxBatchEvents || (flushAll && pending.length > 0)) {
          await this.deliver(pending.splice(0, this.opts.maxBatchEvents));
          healthy = this.connectionHealthy = true;
          lastActivity = Date.now();
          firstPendingAt = pending.length > 0 ? Date.now() : 0;
          continue;
        }
        if (terminal) throw terminal;
        if (!healthy && now - connectedAt >= this.opts.heartbeatMs) healthy = this.connectionHealthy = true;
        const idleDeadline = lastActivity + idleMs;
        if (now >= idleDeadline)
          throw new ConsumerError('heartbeat_missed', `no data or heartbeat for ${idleMs} ms; the connection is presumed dead`, { retriable: true });
        const wait = Math.min(idleDeadline, pending.length > 0 ? firstPendingAt + this.opts.maxBatchWaitMs : Infinity) - now;
        if (!readP) {
          readP = reader.read();
          readP.catch(() => {}); // an abort while the handler runs must not become an unhandled rejection
        }
        const r = await raceTimeout(readP, wait);
        if (r === TIMEOUT) continue;
        readP = null;
        if (r.done) {
          parser.push(decoder.decode());
          while (pending.length > 0 && !this.stopping) await this.deliver(pending.splice(0, this.opts.maxBatchEvents));
          if (terminal) throw terminal;
          if (protocolError) throw protocolError;
          return { reason: this.stopping ? 'stopped' : 'ended', healthy: healthy || Date.now() - connectedAt >= this.opts.heartbeatMs };
        }
        lastActivity = Date.now();
        parser.push(decoder.decode(r.value, { stream: true }));
      }
    } catch (err) {
      if (this.stopping) return { reason: 'stopped', healthy };
      if (this.dropConnection && !(err instanceof ConsumerError)) return { reason: 'handler_recovered', healthy };
      if (err instanceof ConsumerError) throw err;
      throw new ConsumerError('network', `the event stream broke: ${describe(err)}`, { retriable: true, cause: err });
    } finally {
      ac.abort();
      reader.cancel().catch(() => {});
      this.connection = null;
    }
  }

  /** Hands one batch to the handler (retrying until it succeeds or the consumer stops), then checkpoints. */
  private async deliver(batch: Delivery[]): Promise<void> {
    const cp = this.checkpoint!;
    const fresh: Delivery[] = [];
    const keys: string[] = [];
    const inBatch = new Set<string>();
    let last: string | null = cp.cursor;
    for (const d of batch) {
      if (compareCursors(d.cursor, last) <= 0) {
        this.stats.duplicatesDropped++;
        continue;
      }
      last = d.cursor;
      const key = eventKey(String(d.event.source), String(d.event.id));
      // a replay's events are a deliberate re-delivery (marked pioneerreplay = the replay id): never dropped here
      const replayed = typeof d.event[REPLAY_EXTENSION] === 'string';
      if (!replayed && (this.recent.has(key) || inBatch.has(key))) {
        this.stats.duplicatesDropped++;
        this.log.info('dropped an event already handed over (re-derived with a new cursor)', { cursor: d.cursor, source: d.event.source, id: d.event.id });
        continue;
      }
      if (!replayed) inBatch.add(key);
      fresh.push(d);
      keys.push(key);
    }
    if (last === cp.cursor) return;
    if (fresh.length > 0 && !(await this.handleWithRetry(fresh))) return;
    for (const k of keys) this.recent.add(k);
    const lastFresh = fresh[fresh.length - 1];
    const next: Checkpoint = {
      subscription: cp.subscription,
      cursor: last,
      updatedAt: new Date().toISOString(),
      lastEventTime: lastFresh ? (typeof lastFresh.event.time === 'string' ? lastFresh.event.time : new Date(cursorTime(lastFresh.cursor)).toISOString()) : cp.lastEventTime,
      events: cp.events + fresh.length,
      recent: this.recent.toArray(),
    };
    await this.save(next);
    this.checkpoint = next;
    this.stats.cursor = next.cursor;
    this.stats.lastEventTime = next.lastEventTime;
    this.stats.handled += fresh.length;
    this.stats.batches++;
  }

  /** true once the handler accepted the batch; false when the consumer stopped while it kept failing. */
  private async handleWithRetry(batch: Delivery[]): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.handler.handle(batch, { subscription: this.opts.subscription, signal: this.hardStop.signal, attempt });
        if (attempt > 1) this.log.info('the handler recovered', { attempts: attempt, first: batch[0]!.cursor });
        return true;
      } catch (err) {
        if (err instanceof ConsumerError && !err.retriable) throw err;
        if (this.stopping) {
          this.log.warn('stopping while the handler fails; the batch will be handed over again at the next start', { first: batch[0]!.cursor });
          return false;
        }
        if (attempt === 1) {
          // progress stops until this batch is handled: let go of the connection meanwhile, reconnect after
          this.dropConnection = true;
          this.connection?.abort();
        }
        const delay = retryDelay(attempt, { policy: this.opts.handlerBackoff });
        this.log.warn('the handler failed; retrying the same batch', { attempt, delay_ms: delay, first: batch[0]!.cursor, events: batch.length, error: describe(err) });
        await sleep(delay, this.stopSignal.signal);
        if (this.stopping) return false;
      }
    }
  }

  private async save(cp: Checkpoint): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.store.save(cp);
        return;
      } catch (err) {
        if (this.hardStop.signal.aborted) throw err;
        const delay = retryDelay(attempt, { policy: this.opts.handlerBackoff });
        this.log.error('cannot write the checkpoint; retrying', { attempt, delay_ms: delay, error: describe(err) });
        await sleep(delay, this.hardStop.signal);
      }
    }
  }

  private startProgress(): NodeJS.Timeout {
    let lastCount = 0;
    let lastAt = Date.now();
    const t = setInterval(() => {
      const now = Date.now();
      const n = this.stats.handled;
      const rate = ((n - lastCount) * 1000) / Math.max(1, now - lastAt);
      lastCount = n;
      lastAt = now;
      const cursor = this.stats.cursor;
      this.log.info('progress', {
        events_per_s: Math.round(rate),
        handled: n,
        cursor,
        last_event_time: this.stats.lastEventTime,
        position_age_ms: cursor ? now - cursorTime(cursor) : null,
        duplicates_dropped: this.stats.duplicatesDropped,
        reconnects: this.stats.reconnects,
      });
    }, this.opts.progressIntervalMs);
    t.unref();
    return t;
  }
}

/**
 * The gateway's own 404 for the stream of a subscription the key's tenant does not have: problem+json with
 * `code` not_found and the title "subscription not found". Every other 404 (a Pioneer function without this
 * route answers not_found "no route for GET …"; another server answers what it likes) means the URL is wrong.
 */
function isSubscriptionNotFound(problem: Record<string, unknown> | undefined, contentType: string): boolean {
  return /json/i.test(contentType) && problem?.['code'] === 'not_found' && /\bsubscription\b.*\bnot found\b/i.test(String(problem['title'] ?? ''));
}

/**
 * The terminal or retriable error for a non-200 answer to `url` (default: the response's own URL), with the
 * server's own words.
 */
export async function httpError(res: Response, subscription: string, cursor: string | null, url: string = res.url): Promise<ConsumerError> {
  let problem: Record<string, unknown> | undefined;
  const text = await res.text().catch(() => '');
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === 'object') problem = parsed as Record<string, unknown>;
  } catch {
    // not JSON
  }
  const said = String(problem?.['title'] ?? problem?.['detail'] ?? text.replace(/\s+/g, ' ').trim().slice(0, 200)) || res.statusText;
  const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
  const extra = { status: res.status, ...(problem ? { problem } : {}), ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
  const s = res.status;
  if (s === 401) return new ConsumerError('unauthorized', `the API key was refused (401: ${said}); check the key (PIONEER_API_KEY)`, extra);
  if (s === 403) return new ConsumerError('forbidden', `the API key may not read subscription ${subscription} (403: ${said}); use a tenant or consumer key of its tenant`, extra);
  const contentType = res.headers.get('content-type') ?? '';
  if (s === 404 && isSubscriptionNotFound(problem, contentType))
    return new ConsumerError(
      'subscription_not_found',
      `subscription ${subscription} was not found (404 from the gateway at ${url}): it was deleted, or it belongs to another tenant ` +
        `than the key; check the subscription id and the API key`,
      extra,
    );
  if (s === 404) {
    const pioneer = /json/i.test(contentType) && typeof problem?.['type'] === 'string' && problem['type'].startsWith('https://pioneer.dev/problems/');
    return new ConsumerError(
      'route_not_found',
      `no such route here: ${url} answered 404 (${pioneer ? `a Pioneer function, but not the gateway: "${said}"` : `${contentType || 'no content type'}: "${said}"`}), ` +
        `which is not the gateway's answer for an unknown subscription. Check the URL (PIONEER_URL, --url): give the gateway's base ` +
        `URL, under which /v1/subscriptions/{id}/events streams, not another function's port or another server`,
      extra,
    );
  }
  if (s === 410 || problem?.['code'] === 'cursor_expired') {
    const oldest = problem?.['oldest_cursor'];
    const detail = typeof problem?.['detail'] === 'string' ? ` ${problem['detail']}` : '';
    return new ConsumerError(
      'cursor_expired',
      `cursor ${cursor ?? '(start)'} has expired: events after it are older than the subscription keeps (410 cursor_expired).${detail}` +
        (oldest ? ` The oldest available cursor is ${String(oldest)}: resume after it (--start-after) to miss nothing newer.` : ''),
      extra,
    );
  }
  if (s === 429) return new ConsumerError('rate_limited', `too many streams (429: ${said})`, { ...extra, retriable: true });
  if (s >= 500) return new ConsumerError('server_error', `the gateway answered ${s}: ${said}`, { ...extra, retriable: true });
  return new ConsumerError('bad_request', `the gateway refused the request (${s}: ${said})`, extra);
}

function asConsumerError(err: unknown): ConsumerError {
  if (err instanceof ConsumerError) return err;
  return new ConsumerError('network', describe(err), { retriable: true, cause: err });
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return `${err.message}${cause}`;
  }
  return String(err);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function raceTimeout<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMEOUT> {
  if (ms === Infinity) return p;
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => resolve(TIMEOUT), Math.max(0, ms));
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
