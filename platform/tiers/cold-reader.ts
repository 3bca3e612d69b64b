/**
 * A subscription's events behind one cursor, whichever tier holds them (platform/redis/streams.ts describes the
 * tiers and the marks). A reader asks for the entries after a cursor: while the hot window holds them they come
 * from Redis; when the cursor is older, the runs after it are derived again from the source topics, each with
 * the matching spec and replay its mark names, and get the ids they had, so the reader sees what a reader that
 * never left saw, then continues into the hot window with no gap and no duplicate.
 *
 *   marks after the cursor (a chunk of at most `chunk` entries) → one ColdSource read of each partition's span
 *   (platform/tiers/cold-source.ts) → each record of a run passed over unless route-core's recordPrefilter says
 *   it may be the run's (the tenant's and one of the spec's types, told from its bytes), the rest decoded and
 *   matched against the run that holds its offset (platform/routing/route-core.ts deriveEvent: the route's own
 *   rules) → the run's events get its ids, their records' bytes copied into the reader's ByteArena
 *
 * A subscription changed since: a run is derived with the spec it was matched with (the subscription store
 * keeps every spec a subscription had), not today's, so a reader gets what was appended. A run that derives
 * to a different number of events than its mark says (a decoding setting changed since) is served as far as it
 * goes, never with ids of the next run, and counted in pioneer_cold_runs_mismatched_total. A transform that looks
 * reference records up (`$lookup`) reads them as they are now, not as they were when the route appended the event:
 * a record changed since changes the event derived again (docs/transforms.md).
 *
 * A reader that goes cold holds one ColdSource (its connections to the partitions' leaders, and a fetch per
 * partition) until it is back in the hot window or closed; an instance holds at most `maxSources` at once, and a
 * reader past that answers ColdReadsBusyError (503); one tenant's readers hold at most `maxSourcesPerTenant` of
 * them, and its reader past that answers ColdReadsLimitError (429), so that one tenant reading far back on many
 * streams cannot leave every other tenant's old cursors without a source.
 */
import type { z } from 'zod';
import type { CommonConfig } from '../config/env.ts';
import { fetchOptions } from '../kafka/client.ts';
import type { PartitionFetchOptions } from '../kafka/partition-fetch.ts';
import { decodingOf, type coldReadsSchema, type sourceSchema } from '../config/source.ts';
import { CursorExpiredError, HttpError } from '../errors.ts';
import type { SourceDecoding } from '../events/route-decoding.ts';
import type { Redis } from '../redis/client.ts';
import {
  assertCursor, compareIds, lastIdOf, marksAfter, oldestResumable, readHotPage, runIds, tiers, type Mark, type StreamEntry,
} from '../redis/streams.ts';
import { deriveEvent, recordPrefilter, type DerivedEvent } from '../routing/route-core.ts';
import { createReferenceLookups } from '../reference/lookups.ts';
import { compileSubscription, matcherOf, type SubscriptionMatcher } from '../store/subscription-index.ts';
import type { SubscriptionStore } from '../store/subscriptions.ts';
import type { Logger } from '../telemetry/logger.ts';
import { counter, gauge, histogram, type Registry } from '../telemetry/metrics.ts';
import { createColdSource, decodeRangeRecord, RangeGoneError, type BatchRecord, type ColdSource, type PartitionRange } from './cold-source.ts';

/**
 * Copies of records' bytes, made into large buffers one after another rather than into a buffer of each record's
 * own: a cold step keeps a few thousand records' bytes until they are sent, and one object per record fewer is
 * that much less for the collector to copy and promote. A buffer is let go once no entry holds a place in it.
 */
export class ByteArena {
  #buf: Buffer | null = null;
  #at = 0;
  /** a copy too large for the arena, in a buffer of its own */
  #big: Buffer | null = null;

  constructor(readonly size = 256 * 1024) {}

  /**
   * Copies `bytes` in; returns where the copy starts in `held`, the buffer holding it (until the next copy). No
   * object per copy: a cold step copies thousands.
   */
  copy(bytes: Uint8Array): number {
    if (bytes.length > this.size >>> 2) {
      this.#big = Buffer.from(bytes);
      return 0;
    }
    this.#big = null;
    if (this.#buf === null || this.#at + bytes.length > this.#buf.length) {
      this.#buf = Buffer.allocUnsafeSlow(this.size);
      this.#at = 0;
    }
    const start = this.#at;
    this.#buf.set(bytes, start);
    this.#at += bytes.length;
    return start;
  }

  /** the buffer that holds the last copy */
  get held(): Buffer {
    return this.#big ?? this.#buf!;
  }

}

/**
 * An entry derived from the source topics. When the record's bytes are the stored text, it holds a copy of them
 * (in `arena` when given) and makes the text only when asked (webhooks, JSON pages): an SSE stream writes the
 * bytes as they are (functions/gateway, with byteLength and copyTo).
 */
export class ColdEntry implements StreamEntry {
  #event: string | undefined;
  #buf: Buffer | undefined;
  #start = 0;
  /** the length of the record's bytes, when they are the event's stored text (else 0) */
  readonly byteLength: number = 0;

  constructor(
    /** its id; a cold step derives an entry before it knows which of its run's ids is its own, and sets it then */
    public cursor: string,
    readonly type: string,
    json: string | Buffer,
    arena?: ByteArena,
  ) {
    if (typeof json === 'string') this.#event = json;
    else {
      // a copy: the record's value is a view of the whole fetch response, which entries read ahead would keep
      if (arena) {
        this.#start = arena.copy(json);
        this.#buf = arena.held;
      } else this.#buf = Buffer.from(json);
      this.byteLength = json.length;
    }
  }

  /** the record's bytes, when they are the event's stored text */
  get bytes(): Buffer | undefined {
    return this.#buf?.subarray(this.#start, this.#start + this.byteLength);
  }

  /** Writes the record's bytes into `out` at `at` (when it holds them); returns how many. */
  copyTo(out: Buffer, at: number): number {
    return this.#buf === undefined ? 0 : this.#buf.copy(out, at, this.#start, this.#start + this.byteLength);
  }

  get event(): string {
    return (this.#event ??= this.#buf!.toString('utf8', this.#start, this.#start + this.byteLength));
  }
}

/** A kept spec of a subscription: its matcher, and which records may match it (told from their bytes). */
interface SpecMatcher {
  matcher: SubscriptionMatcher;
  mayMatch: (topic: string, record: BatchRecord) => boolean;
}

export interface TieredPage {
  entries: StreamEntry[];
  /** more entries may follow the last one (always true while the page came from the cold tier) */
  hasMore: boolean;
  cold: boolean;
}

/** A reader of one subscription's events. Not shared: one reader per SSE stream, webhook lane or page chain. */
export interface TieredReader {
  /** Up to `limit` entries after `after`; CursorExpiredError when neither tier resumes after it. */
  read(after: string, limit: number): Promise<TieredPage>;
  /** Whether its last read came from the cold tier. */
  readonly cold: boolean;
  close(): Promise<void>;
}

export interface TieredStreams {
  reader(opts: { tenantId: string; subId: string }): TieredReader;
  /**
   * Keeps a reader that read cold for the request of the next page (`key`: its tenant, subscription and the
   * cursor it stopped at), so that a chain of pages pays the cold source's start once; closed unless taken
   * within the park time, or sooner when another reader needs its source.
   */
  park(key: string, reader: TieredReader): void;
  unpark(key: string): TieredReader | null;
  /** cold sources open now */
  active(): number;
  close(): Promise<void>;
}

/** events a reader's first cold step derives at most (its later steps take more, up to the chunk) */
const FIRST_STEP = 250;

/** Too many readers of this instance read from the source topics at once. */
export class ColdReadsBusyError extends HttpError {
  constructor(max: number) {
    super(503, 'cold_reads_busy', `this instance serves at most ${max} reads older than the hot window at once; retry shortly`, { headers: { 'retry-after': '5' } });
  }
}

/** Too many readers of one tenant read from the source topics at once on this instance. */
export class ColdReadsLimitError extends HttpError {
  constructor(max: number) {
    super(429, 'cold_reads_limit', `at most ${max} reads older than the hot window per tenant at once on one instance; retry once one of yours is back in the hot window`, { headers: { 'retry-after': '5' } });
  }
}

export interface TieredStreamsOptions {
  redis: Redis;
  /** the brokers and settings the cold sources fetch with */
  kafka: PartitionFetchOptions;
  decoding: SourceDecoding;
  store: SubscriptionStore;
  log: Logger;
  metrics: Registry;
  /** cold sources this instance holds at most */
  maxSources: number;
  /** cold sources the readers of one tenant hold at most (default: all of maxSources) */
  maxSourcesPerTenant?: number;
  /**
   * entries derived per cold step (default 4,000: a step's fixed costs, its marks read from Redis, its ranges
   * started and ended, paid per 4,000 events; a reader holds up to two steps' entries, the one served and the next)
   */
  chunk?: number;
  /** how long a parked reader waits for its next page */
  parkMs?: number;
}

/** The tiered streams of a function that reads subscription streams (`user` names its consumer groups), from its configuration. */
export function tieredStreamsFor(
  cfg: z.infer<typeof sourceSchema> & z.infer<typeof coldReadsSchema> & Parameters<typeof fetchOptions>[0] & Pick<CommonConfig, 'PIONEER_KAFKA_CLIENT_ID'>,
  deps: { redis: Redis; store: SubscriptionStore; log: Logger; metrics: Registry; user: string },
): TieredStreams {
  return createTieredStreams({
    redis: deps.redis, kafka: fetchOptions(cfg, `${cfg.PIONEER_KAFKA_CLIENT_ID}-${deps.user}-cold`), store: deps.store, metrics: deps.metrics, log: deps.log.child({ component: 'cold-reads' }),
    decoding: decodingOf(cfg), maxSources: cfg.PIONEER_COLD_READS_MAX,
    maxSourcesPerTenant: cfg.PIONEER_COLD_READS_MAX_PER_TENANT,
  });
}

export function createTieredStreams(opts: TieredStreamsOptions): TieredStreams {
  const { redis, kafka, decoding, store, log, metrics, maxSources, chunk = 4000, parkMs = 30_000 } = opts;
  const maxPerTenant = Math.min(opts.maxSourcesPerTenant ?? maxSources, maxSources);
  const open = new Set<ColdSource>();
  /** the tenant whose reader holds each open source, and how many each tenant holds */
  const holder = new Map<ColdSource, string>();
  const held = new Map<string, number>();
  let starting = 0;
  const tenantOf = new WeakMap<TieredReader, string>();
  const parked = new Map<string, { reader: TieredReader; timer: NodeJS.Timeout }>();
  const unpark = (key: string): TieredReader | null => {
    const p = parked.get(key);
    if (!p) return null;
    parked.delete(key);
    clearTimeout(p.timer);
    return p.reader;
  };
  const inProgress = gauge(metrics, 'pioneer_cold_reads_in_progress', 'Readers reading events older than the hot window from the source topics');
  const behind = gauge(metrics, 'pioneer_cold_read_behind_seconds', 'How far behind the newest event the furthest-behind cold reader is (by cursor time)');
  const served = counter(metrics, 'pioneer_cold_events_total', 'Events served from the cold tier (derived again from the source topics)');
  const mismatched = counter(metrics, 'pioneer_cold_runs_mismatched_total', 'Runs that derived to a different number of events than their mark says');
  const stepSeconds = histogram(metrics, 'pioneer_cold_read_step_seconds', 'Time to derive one chunk of cold events', [], [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);
  const lag = new Map<TieredReader, number>();
  // a transform's lookups read the reference records as they are now, not as they were when the route appended
  const lookups = createReferenceLookups({ redis });
  const report = () => {
    inProgress.set(open.size);
    behind.set(lag.size === 0 ? 0 : Math.max(...lag.values()));
  };

  async function takeSource(tenantId: string): Promise<ColdSource> {
    // a parked reader gives its source up before a reader that is reading goes without: the tenant's own first
    // when the tenant is at its share, else anyone's when the instance is full
    if ((held.get(tenantId) ?? 0) >= maxPerTenant) {
      const own = [...parked].find(([, p]) => tenantOf.get(p.reader) === tenantId);
      if (own) await unpark(own[0])!.close();
      if ((held.get(tenantId) ?? 0) >= maxPerTenant) throw new ColdReadsLimitError(maxPerTenant);
    }
    if (open.size + starting >= maxSources && parked.size > 0) await unpark(parked.keys().next().value!)!.close();
    if (open.size + starting >= maxSources) throw new ColdReadsBusyError(maxSources);
    // checked again after the waits above, and counted before the consumer starts (no wait between the checks and
    // the counts), so that readers starting together cannot pass the bounds together
    if ((held.get(tenantId) ?? 0) >= maxPerTenant) throw new ColdReadsLimitError(maxPerTenant);
    starting++;
    held.set(tenantId, (held.get(tenantId) ?? 0) + 1);
    let source: ColdSource;
    try {
      source = await createColdSource({
        kafka: { ...kafka, onRetry: (r) => log.warn({ ...r, tenant: tenantId }, 'a cold read fetch failed and is tried again (a broker away, a leader moving)') },
      });
    } catch (err) {
      release(tenantId);
      throw err;
    } finally {
      starting--;
    }
    open.add(source);
    holder.set(source, tenantId);
    report();
    return source;
  }
  function release(tenantId: string): void {
    const n = (held.get(tenantId) ?? 1) - 1;
    if (n > 0) held.set(tenantId, n);
    else held.delete(tenantId);
  }
  async function dropSource(source: ColdSource): Promise<void> {
    if (open.delete(source)) {
      release(holder.get(source)!);
      holder.delete(source);
    }
    report();
    await source.close();
  }

  /**
   * The matcher of the subscription as it was when its digest was `spec`, and the prefilter of that spec's tenant
   * and types (route-core's recordPrefilter: records it rejects are never decoded), compiled once per reader.
   */
  function matcherCache(tenantId: string, subId: string) {
    const cache = new Map<string, SpecMatcher | null>();
    return async (spec: string): Promise<SpecMatcher | null> => {
      if (cache.has(spec)) return cache.get(spec)!;
      const found = await store.specOf(tenantId, subId, spec);
      let matcher: SpecMatcher | null = null;
      try {
        if (found) {
          const sub = {
            id: subId, tenant_id: tenantId, created_at: '', updated_at: '', filters: found.filters ?? [],
            types: found.types ?? undefined, source: found.source ?? undefined, ...(found.transform ? { transform: found.transform } : {}),
          };
          matcher = { matcher: matcherOf([compileSubscription(sub)]), mayMatch: recordPrefilter(tenantId, found.types ?? [], decoding) };
        }
      } catch (err) {
        log.error({ err, subscription: subId, spec }, 'a kept matching spec does not compile; its runs derive to nothing');
      }
      cache.set(spec, matcher);
      return matcher;
    };
  }

  return {
    reader({ tenantId, subId }) {
      let source: ColdSource | null = null;
      const matcherOfSpec = matcherCache(tenantId, subId);
      const references = lookups.readerFor(tenantId);
      /** entries derived ahead of the caller, and the cursor they follow */
      let ahead: StreamEntry[] = [];
      let aheadAfter: string | null = null;
      /** the next cold step, started while the caller takes the current one (reading Kafka overlaps serving) */
      let prefetch: { after: string; result: Promise<{ value: StreamEntry[] | null } | { err: unknown }> } | null = null;
      const settlePrefetch = async (): Promise<void> => {
        const p = prefetch;
        prefetch = null;
        if (p) await p.result;
      };
      const nextStep = async (after: string): Promise<StreamEntry[] | null> => {
        if (prefetch?.after === after) {
          const p = prefetch;
          prefetch = null;
          const r = await p.result;
          if ('err' in r) throw r.err;
          return r.value;
        }
        await settlePrefetch();
        return coldStep(after);
      };
      const expired = (cursor: string, oldest: string) => new CursorExpiredError({ cursor, subscriptionId: subId, oldestCursor: oldest });

      const reader: TieredReader = {
        cold: false,
        async read(after, limit) {
          // what a previous cold step derived ahead of this cursor
          if (aheadAfter !== null) {
            const at = aheadAfter === after ? 0 : ahead.findIndex((e) => e.cursor === after) + 1;
            if (at > 0 || aheadAfter === after) {
              const entries = ahead.slice(at, at + limit);
              if (entries.length > 0) {
                ahead = ahead.slice(at + entries.length);
                aheadAfter = entries[entries.length - 1]!.cursor;
                return page(entries, true, true);
              }
            }
            ahead = [];
            aheadAfter = null;
          }
          const hot = await readHotPage(redis, { tenantId, subId, after, limit });
          if (hot) {
            await settlePrefetch();
            if (source) {
              const s = source;
              source = null;
              await dropSource(s);
            }
            lag.delete(reader);
            report();
            return page(hot.entries, hot.hasMore, false);
          }
          const t = await assertCursor(redis, { tenantId, subId, cursor: after });
          const started = process.hrtime.bigint();
          const derived = await nextStep(after);
          stepSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
          if (derived === null) {
            // no run after the cursor: nothing was appended between it and the hot window
            const fromHot = await readHotPage(redis, { tenantId, subId, after: compareIds(after, t.trimmed) < 0 ? t.trimmed : after, limit });
            return page(fromHot?.entries ?? [], fromHot?.hasMore ?? true, false);
          }
          served.inc(derived.length);
          if (derived.length > 0) {
            const from = derived[derived.length - 1]!.cursor;
            prefetch = { after: from, result: coldStep(from).then((value) => ({ value }), (err: unknown) => ({ err })) };
          }
          const entries = derived.slice(0, limit);
          ahead = derived.slice(limit);
          aheadAfter = entries.length > 0 ? entries[entries.length - 1]!.cursor : null;
          if (entries.length > 0) lag.set(reader, Math.max(0, (Date.now() - Number(entries[entries.length - 1]!.cursor.split('-')[0])) / 1000));
          report();
          return page(entries, true, true);
        },
        async close() {
          lag.delete(reader);
          ahead = [];
          aheadAfter = null;
          await settlePrefetch();
          if (source) {
            const s = source;
            source = null;
            await dropSource(s);
          }
          report();
        },
      };

      function page(entries: StreamEntry[], hasMore: boolean, cold: boolean): TieredPage {
        (reader as { cold: boolean }).cold = cold;
        return { entries, hasMore, cold };
      }

      /** marks a cold step reads (at most a chunk's worth of one-event runs), from how many the last step took */
      const maxMarks = Math.max(1, Math.ceil(chunk / 4));
      /**
       * events a step derives at most: a reader's first step is small, so that its first page goes out without
       * waiting for a whole chunk to be derived; each step after it takes four times as many, up to `chunk`
       */
      let stepSize = Math.min(chunk, FIRST_STEP);
      let markCount = Math.min(maxMarks, 32);
      /** where the entries of this reader's cold steps keep their records' bytes */
      const arena = new ByteArena();
      /** The entries of the runs after `after`, derived again (at least one run's worth); null when no run follows it. */
      async function coldStep(after: string): Promise<StreamEntry[] | null> {
        // runs that give nothing after the cursor (they derived to fewer events than marked) are passed over, so
        // that a reader never asks for the same runs again and again
        for (let from = after; ; ) {
          const step = await coldRuns(from, after);
          if (step === null || step.entries.length > 0) return step?.entries ?? null;
          from = step.through;
        }
      }

      /** The entries after `after` of the runs after `from` (at most `stepSize` events' worth), and the last id those runs hold. */
      async function coldRuns(from: string, after: string): Promise<{ entries: StreamEntry[]; through: string } | null> {
        const marks: Mark[] = [];
        let total = 0;
        const read = await marksAfter(redis, { tenantId, subId, after: from, count: markCount });
        for (const m of read) {
          if (marks.length > 0 && total + m.count > stepSize) break;
          marks.push(m);
          total += m.count;
        }
        // the next step asks for as many marks as this one took and a few more (runs are a few hundred events
        // long while the route is busy), twice as many when it took every one it read and stayed under the chunk
        markCount = read.length === markCount && marks.length === read.length && total < stepSize ? Math.min(maxMarks, markCount * 2) : Math.min(maxMarks, marks.length + 8);
        stepSize = Math.min(chunk, stepSize * 4);
        if (marks.length === 0) return null;
        const hole = marks.findIndex((m) => m.field === '');
        if (hole === 0) {
          // a run whose source positions were unknown cannot be derived again: resume after it, or after the
          // trimmed marker when the rest of it is still in the hot window
          const { trimmed } = await tiers(redis, { tenantId, subId });
          const end = lastIdOf(marks[0]!);
          throw expired(after, compareIds(trimmed, end) < 0 && compareIds(trimmed, after) > 0 ? trimmed : end);
        }
        const runs = hole > 0 ? marks.slice(0, hole) : marks;
        // each run's events, matched with its own spec; a partition's runs in offset order
        // per run, its records' events in offset order (derived as they arrive; a transform's evaluation is async)
        // a record's bytes go into the arena as it is derived (its entry's id is set once the run's are known), so
        // that nothing of the fetch response outlives the record's turn
        const results = new Map<Mark, (ColdEntry | Promise<DerivedEvent | null>)[]>(runs.map((m) => [m, []]));
        const byField = new Map<string, Mark[]>();
        for (const m of runs) {
          const list = byField.get(m.field);
          if (list) list.push(m);
          else byField.set(m.field, [m]);
        }
        const matchers = new Map<Mark, SpecMatcher | null>();
        for (const m of runs) matchers.set(m, await matcherOfSpec(m.spec));
        const ranges: PartitionRange[] = [];
        // per range, its runs in offset order with their offsets as numbers once, and the run the records reached
        const runsOf = new Map<PartitionRange, { list: Mark[]; from: number[]; to: number[]; at: number }>();
        for (const [field, list] of byField) {
          const slash = field.lastIndexOf('/');
          const topic = field.slice(0, slash);
          const partition = Number(field.slice(slash + 1));
          // offsets as numbers (exact: the source refuses ranges past 2^53), compared once per record
          const from = list.map((m) => Number(m.fromOffset));
          const to = list.map((m) => Number(m.toOffset));
          const range = { topic, partition, from: BigInt(list[0]!.fromOffset), to: BigInt(list[list.length - 1]!.toOffset) };
          ranges.push(range);
          runsOf.set(range, { list, from, to, at: 0 });
        }
        const onRecord = (range: PartitionRange, m: BatchRecord, offset: number) => {
          const state = runsOf.get(range)!;
          while (state.at < state.list.length && state.to[state.at]! < offset) state.at++;
          const run = state.list[state.at];
          if (!run || offset < state.from[state.at]!) return; // between runs: no event of this subscription
          const matcher = matchers.get(run);
          if (!matcher || !matcher.mayMatch(range.topic, m)) return;
          const record = decodeRangeRecord(range, m, offset);
          const derived = deriveEvent(record, { topic: range.topic, decoding, matcher: matcher.matcher, tenantId, references, replay: run.replay || undefined });
          if (derived instanceof Promise) {
            derived.catch(() => {}); // awaited below, once the step's records are read
            results.get(run)!.push(derived);
          } else if (derived !== null) results.get(run)!.push(new ColdEntry('', derived.type, derived.json, arena));
        };
        source ??= await takeSource(tenantId);
        try {
          await source.read(ranges, onRecord);
        } catch (err) {
          if (err instanceof RangeGoneError) throw expired(after, await oldestAfterRetention(err));
          // the consumer may be in any state now: a new one for the next step
          const s = source;
          source = null;
          if (s) await dropSource(s);
          throw err;
        }
        const out: StreamEntry[] = [];
        for (const run of runs) {
          const events: ColdEntry[] = [];
          for (const derived of results.get(run)!) {
            if (!(derived instanceof Promise)) events.push(derived);
            else {
              const e = await derived;
              if (e !== null) events.push(new ColdEntry('', e.type, e.json, arena));
            }
          }
          if (events.length !== run.count) {
            mismatched.inc();
            log.warn({ subscription: subId, run: run.first, marked: run.count, derived: events.length }, 'a cold run derived to a different number of events than its mark says');
          }
          const ids = runIds(run);
          const n = Math.min(events.length, ids.length);
          // the run's ids ascend: those after the cursor are the ones from the first of them on
          let k = 0;
          if (n > 0 && compareIds(ids[0]!, after) <= 0) {
            for (let hi = n; k < hi; ) {
              const mid = (k + hi) >> 1;
              if (compareIds(ids[mid]!, after) > 0) hi = mid;
              else k = mid + 1;
            }
          }
          for (; k < n; k++) {
            const e = events[k]!;
            e.cursor = ids[k]!;
            out.push(e);
          }
        }
        return { entries: out, through: lastIdOf(runs[runs.length - 1]!) };
      }

      /** The oldest cursor after which every run can still be derived, once a topic's retention deleted a range's start. */
      async function oldestAfterRetention(err: RangeGoneError): Promise<string> {
        // a partition's runs are in offset order: those starting before its earliest offset come first
        let cursor = oldestResumable(await tiers(redis, { tenantId, subId }));
        let last = cursor;
        for (;;) {
          const marks = await marksAfter(redis, { tenantId, subId, after: cursor, count: 500 });
          for (const m of marks) {
            if (m.field !== err.field) continue;
            if (BigInt(m.fromOffset) >= err.earliest) return last;
            last = lastIdOf(m);
          }
          if (marks.length < 500) return last;
          cursor = lastIdOf(marks[marks.length - 1]!);
        }
      }

      tenantOf.set(reader, tenantId);
      return reader;
    },
    park(key, reader) {
      unpark(key)?.close().catch(() => {});
      const timer = setTimeout(() => void unpark(key)?.close().catch(() => {}), parkMs);
      timer.unref();
      parked.set(key, { reader, timer });
    },
    unpark,
    active: () => open.size,
    async close() {
      for (const key of [...parked.keys()]) await unpark(key)?.close().catch(() => {});
      await Promise.allSettled([...open].map((s) => s.close()));
      open.clear();
      holder.clear();
      held.clear();
      report();
    },
  };
}
