/**
 * Shared blocking readers of subscription streams ({t:T}:stream:<sub>, platform/redis/streams.ts): a small fixed
 * pool of Redis connections per process, each blocked in one XREAD over every stream key that has a waiting
 * reader on it, handing each waiter the entries after its own cursor. A process with N open event streams holds
 * `size` reading connections, not N.
 *
 * - A waiter is one read of one event stream: `next({ key, cursor, timeoutMs })` resolves with the entries after
 *   `cursor` as soon as there are any, or null after `timeoutMs` (the caller's heartbeat). An SSE stream asks
 *   only when its socket has taken the previous chunk, so a slow client delays only its own reads: while it is
 *   not waiting, its key is in no call.
 * - A key always goes to the same connection (by a hash of the key), so the waiters of one key share it: the
 *   call reads after the smallest of their cursors, and each waiter gets the entries after its own.
 * - Wake-up: a waiter that arrives while its connection is blocked in a call that does not cover its key and
 *   cursor has that call ended with CLIENT UNBLOCK (sent on the command connection, `wakeDelayMs` later so that
 *   arrivals coalesce into one restart), and the call is made again at once with every waiter. CLIENT UNBLOCK
 *   names a connection, not a key: nothing is written, and no key outside the streams enters a call. The next
 *   call is made a moment after one returns (the next turn of the event loop, or `lingerMs`, below), so the
 *   streams that just took their entries and ask again at once are in it without a wake-up. Should CLIENT UNBLOCK be refused (an ACL without
 *   `+client|unblock`), the connection falls back to short blocks (FALLBACK_BLOCK_MS) and says so once.
 * - Cost: Redis ends a blocked call as soon as one of its keys gets an entry, and every call registers all of
 *   its keys again, so a call costs Redis (and this process) work in proportion to its keys. After a call that
 *   brought entries a connection waits `lingerMs` before the next one, so that under a steady flow one call
 *   takes several events: each waiting stream is registered at most about once per `lingerMs`, however many
 *   events flow, at the price of up to `lingerMs` of latency for an event that lands in that pause.
 * - Redis Cluster: a Cluster refuses a call whose keys lie in several slots, and a tenant's keys share one slot
 *   (its hash tag {t:T}). There, each slot with waiting streams gets a reader of its own, on a connection to
 *   the master that serves it (its wake-ups go to that master too), opened on the slot's first wait and closed
 *   IDLE_READER_MS after its last: connections grow with the slots of the tenants that have open streams on
 *   this instance (at most 16,384), not with the streams. A call that fails
 *   (the master failed over, the slot moved) fails its waiters and drops the reader; the client's slot map is
 *   refreshed, and the streams' reconnections find the new master.
 * - A failed call (Redis away) fails its waiters, whose streams close so that their clients reconnect; the
 *   connection tries again after a pause.
 */
import type { Cluster, Redis } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { isCluster, masterOf } from './client.ts';
import type { Logger } from '../telemetry/logger.ts';
import { compareIds } from './streams.ts';

/** A stream entry as XREAD returns it: its id (the cursor) and its field/value list. */
export type RawEntry = [id: string, fields: string[]];

export interface StreamWait {
  key: string;
  /** the entries after this id are wanted */
  cursor: string;
  /** resolve with null when nothing came within this time */
  timeoutMs: number;
  /** resolves the wait with null at once */
  signal?: AbortSignal;
}

export interface StreamReaders {
  /** The entries after `cursor` (at most `count`) as soon as there are any; null on timeout or abort. */
  next(wait: StreamWait): Promise<RawEntry[] | null>;
  /** reading connections held (the pool's size) */
  readonly connections: number;
  /** Resolves every waiter with null and closes the connections. */
  close(): void;
}

export interface StreamReadersOptions {
  /** the command connection: duplicated for the readers, and carries the wake-ups */
  redis: Redis;
  /** reading connections */
  size?: number;
  /** most entries handed to one waiter at a time */
  count?: number;
  /** how long one call blocks when nothing wakes it (waiters time out on their own) */
  blockMs?: number;
  /** how long a wake-up waits for more arrivals before ending the call */
  wakeDelayMs?: number;
  /** how long a connection waits after a call that brought entries before the next call */
  lingerMs?: number;
  log?: Logger;
}

/** Blocks of a connection whose wake-ups Redis refuses: a waiter that arrives meanwhile waits at most this. */
export const FALLBACK_BLOCK_MS = 50;
/** Tries of CLIENT UNBLOCK that found the call not yet blocked (it was still on its way to Redis). */
const UNBLOCK_TRIES = 20;

interface Waiter {
  key: string;
  cursor: string;
  done(entries: RawEntry[] | null, err?: Error): void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** FNV-1a: spreads keys over the connections, the same key always to the same one. */
function hashOf(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The first entry of `entries` (ascending ids) after `cursor`. */
function firstAfter(entries: RawEntry[], cursor: string): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareIds(entries[mid]![0], cursor) > 0) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

class Reader {
  private readonly conn: Redis;
  private clientId: number | null = null;
  /** key -> its waiters and the smallest of their cursors */
  private readonly waiting = new Map<string, { waiters: Set<Waiter>; min: string }>();
  /** key -> cursor of the call in flight; null while none is */
  private inflight: Map<string, string> | null = null;
  private generation = 0;
  private wakeFor = -1;
  private kick: (() => void) | null = null;
  private blockMs: number;
  private closed = false;

  constructor(
    /** carries the wake-ups (CLIENT UNBLOCK): a connection to the same server as `conn` */
    private readonly control: Redis,
    conn: Redis,
    private readonly opts: Required<Omit<StreamReadersOptions, 'redis' | 'size' | 'log'>> & { log?: Logger; onFailure?: (reader: Reader) => void },
  ) {
    this.blockMs = opts.blockMs;
    this.conn = conn;
    // after a reconnect the connection has another id: no wake-up until the next call has learnt it
    this.conn.on('close', () => (this.clientId = null));
    void this.run();
  }

  add(w: Waiter): void {
    const entry = this.waiting.get(w.key);
    if (!entry) this.waiting.set(w.key, { waiters: new Set([w]), min: w.cursor });
    else {
      entry.waiters.add(w);
      if (compareIds(w.cursor, entry.min) < 0) entry.min = w.cursor;
    }
    if (this.kick) {
      this.kick();
      return;
    }
    const inCall = this.inflight?.get(w.key);
    if (this.inflight && (inCall === undefined || compareIds(inCall, w.cursor) > 0)) this.wake();
  }

  remove(w: Waiter): void {
    const entry = this.waiting.get(w.key);
    if (!entry?.waiters.delete(w)) return;
    if (entry.waiters.size === 0) this.waiting.delete(w.key);
    else if (w.cursor === entry.min) {
      let min: string | undefined;
      for (const o of entry.waiters) if (min === undefined || compareIds(o.cursor, min) < 0) min = o.cursor;
      entry.min = min!;
    }
  }

  /** Every waiter, each once (a copy: done() removes it). */
  private allWaiters(): Waiter[] {
    const all: Waiter[] = [];
    for (const { waiters } of this.waiting.values()) all.push(...waiters);
    return all;
  }

  /** No stream waits on this reader. */
  get idle(): boolean {
    return this.waiting.size === 0;
  }

  close(): void {
    this.closed = true;
    for (const w of this.allWaiters()) w.done(null);
    this.waiting.clear();
    this.kick?.();
    this.conn.disconnect();
  }

  /** Ends the call in flight (once per call), so that the next one takes the new waiters. */
  private wake(): void {
    const generation = this.generation;
    if (this.wakeFor === generation) return;
    this.wakeFor = generation;
    setTimeout(async () => {
      for (let i = 0; i < UNBLOCK_TRIES; i++) {
        if (this.closed || this.generation !== generation || !this.inflight || this.clientId === null) return;
        try {
          if ((await this.control.client('UNBLOCK', this.clientId)) === 1) return;
        } catch (err) {
          if (this.blockMs > FALLBACK_BLOCK_MS) {
            this.blockMs = FALLBACK_BLOCK_MS;
            this.opts.log?.warn({ err }, `CLIENT UNBLOCK refused: event streams wait with ${FALLBACK_BLOCK_MS} ms blocks instead`);
          }
          return;
        }
        await sleep(1); // the call had not reached Redis yet
      }
    }, this.opts.wakeDelayMs);
  }

  /** Fails every waiter with `err` and pauses before the next call; true when the reader is closed. */
  private async failed(err: Error, failures: number): Promise<boolean> {
    if (this.closed) return true;
    if (this.opts.onFailure) {
      // a reader of one Cluster slot: fail the waiters and let the next wait open a reader where the slot is now
      for (const w of this.allWaiters()) w.done(null, err);
      this.opts.onFailure(this);
      return true;
    }
    for (const w of this.allWaiters()) w.done(null, err);
    this.waiting.clear();
    await sleep(Math.min(100 * 2 ** failures, 2000));
    return this.closed;
  }

  private async run(): Promise<void> {
    let failures = 0;
    let brought = false;
    while (!this.closed) {
      if (this.waiting.size === 0) {
        await new Promise<void>((r) => (this.kick = r));
        this.kick = null;
        continue;
      }
      // the streams that just took entries ask again within this turn: one call for all of them. After a call
      // that brought entries, wait a moment longer: every call costs Redis work in proportion to its keys, so
      // under a steady flow of events one call should take several of them
      await (brought ? sleep(this.opts.lingerMs) : new Promise((r) => setImmediate(r)));
      brought = false;
      if (this.closed || this.waiting.size === 0) continue;
      let res: [string, RawEntry[]][] | null;
      try {
        this.clientId ??= (await this.conn.client('ID')) as number;
      } catch (err) {
        if (await this.failed(err as Error, failures++)) return;
        continue;
      }
      // the waiters may have gone while the connection's id was asked for
      if (this.closed || this.waiting.size === 0) continue;
      const keys: string[] = [];
      const cursors: string[] = [];
      const called = new Map<string, string>();
      for (const [key, { min }] of this.waiting) {
        keys.push(key);
        cursors.push(min);
        called.set(key, min);
      }
      try {
        this.inflight = called;
        this.generation++;
        res = (await this.conn.xread('COUNT', this.opts.count, 'BLOCK', this.blockMs, 'STREAMS', ...keys, ...cursors)) as [string, RawEntry[]][] | null;
        failures = 0;
      } catch (err) {
        this.inflight = null;
        if (await this.failed(err as Error, failures++)) return;
        continue;
      }
      this.inflight = null;
      brought = res !== null;
      for (const [key, entries] of res ?? []) {
        const entry = this.waiting.get(key);
        if (!entry || entries.length === 0) continue;
        const after = called.get(key)!;
        for (const w of [...entry.waiters]) {
          // a waiter that arrived during the call behind its cursor may miss what lies between: the next call serves it
          if (compareIds(w.cursor, after) < 0) continue;
          const from = firstAfter(entries, w.cursor);
          if (from < entries.length) w.done(from === 0 ? entries : entries.slice(from));
        }
      }
    }
  }
}

export function createStreamReaders({ redis, size = 8, count = 500, blockMs = 5000, wakeDelayMs = 1, lingerMs = 10, log }: StreamReadersOptions): StreamReaders {
  const settings = { count, blockMs, wakeDelayMs, lingerMs, log };
  const pick = isCluster(redis) ? clusterReaders(redis as unknown as Cluster, settings) : serverReaders(redis, size, settings);
  let closed = false;
  return {
    get connections() {
      return pick.connections();
    },
    next({ key, cursor, timeoutMs, signal }) {
      if (closed || signal?.aborted) return Promise.resolve(null);
      let found: Reader | Promise<Reader>;
      try {
        found = pick.readerFor(key);
      } catch (err) {
        return Promise.reject(err as Error);
      }
      if (!(found instanceof Promise)) return wait(found, { key, cursor, timeoutMs, signal });
      // the Cluster client is still learning where the slot is (after a failover): wait no longer than asked, so
      // that the caller's heartbeat goes on, and give up at once on an abort
      const startedAt = Date.now();
      return new Promise<RawEntry[] | null>((resolve, reject) => {
        const timer = setTimeout(() => resolve(null), timeoutMs);
        const onAbort = () => resolve(null);
        signal?.addEventListener('abort', onAbort, { once: true });
        found.then(
          (reader) => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            const left = timeoutMs - (Date.now() - startedAt);
            if (left <= 0 || signal?.aborted) resolve(null);
            else wait(reader, { key, cursor, timeoutMs: left, signal }).then(resolve, reject);
          },
          (err: Error) => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            reject(err);
          },
        );
      });
    },
    close() {
      closed = true;
      pick.close();
    },
  };

  function wait(reader: Reader, { key, cursor, timeoutMs, signal }: StreamWait): Promise<RawEntry[] | null> {
    if (closed || signal?.aborted) return Promise.resolve(null);
    return new Promise<RawEntry[] | null>((resolve, reject) => {
      const finish = (entries: RawEntry[] | null, err?: Error) => {
        reader.remove(w);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        pick.released(reader);
        if (err) reject(err);
        else resolve(entries);
      };
      const w: Waiter = { key, cursor, done: finish };
      const onAbort = () => finish(null);
      const timer = setTimeout(onAbort, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      reader.add(w);
    });
  }
}

type ReaderSettings = Required<Omit<StreamReadersOptions, 'redis' | 'size' | 'log'>> & { log?: Logger };

interface ReaderPool {
  /** the reader of `key`; a promise while it cannot be known yet (a Cluster client still learning its slots) */
  readerFor(key: string): Reader | Promise<Reader>;
  /** a waiter of `reader` is done */
  released(reader: Reader): void;
  connections(): number;
  close(): void;
}

/** One server: `size` readers, a key always on the same one. */
function serverReaders(redis: Redis, size: number, settings: ReaderSettings): ReaderPool {
  const readers = Array.from({ length: size }, () => new Reader(redis, quiet(redis.duplicate()), settings));
  return {
    readerFor: (key) => readers[hashOf(key) % size]!,
    released: () => {},
    connections: () => size,
    close: () => readers.forEach((r) => r.close()),
  };
}

/** How long a Cluster reader with no waiter keeps its connection, for streams that ask again. */
const IDLE_READER_MS = 30_000;

/** A Redis Cluster: a reader per hash tag (a tenant's slot), on a connection to the master serving it. */
function clusterReaders(cluster: Cluster, settings: ReaderSettings): ReaderPool {
  // a reader per slot: a call may name keys of one slot only, and a tenant's keys share one (its hash tag)
  const bySlot = new Map<number, { reader: Reader; idleTimer?: NodeJS.Timeout }>();
  const slotOf = new Map<Reader, number>();
  let ready: Promise<void> | null = null;
  const drop = (reader: Reader) => {
    const slot = slotOf.get(reader);
    if (slot === undefined) return;
    clearTimeout(bySlot.get(slot)?.idleTimer);
    bySlot.delete(slot);
    slotOf.delete(reader);
    reader.close();
  };
  const readerOf = (key: string): Reader => {
    const slot = calculateSlot(key);
    const entry = bySlot.get(slot);
    if (entry) {
      clearTimeout(entry.idleTimer);
      entry.idleTimer = undefined;
      return entry.reader;
    }
    const control = masterOf(cluster, key)?.node;
    if (!control) throw new Error(`no Redis Cluster master known for the slot of ${key}; the cluster is not ready`);
    // a connection to one node that fails (the node died, the slot moved) fails its call at once instead of
    // reconnecting to that node and sending the call again: the waiters' streams reconnect to the new master
    const conn = quiet(control.duplicate({ autoResendUnfulfilledCommands: false, retryStrategy: () => null, maxRetriesPerRequest: 0 }));
    const reader: Reader = new Reader(control, conn, {
      ...settings,
      onFailure: (failed) => {
        drop(failed);
        cluster.refreshSlotsCache();
      },
    });
    bySlot.set(slot, { reader });
    slotOf.set(reader, slot);
    return reader;
  };
  return {
    readerFor(key) {
      if (cluster.status === 'ready') return readerOf(key);
      // one wait for the client to learn its slots, shared by every stream asking meanwhile
      ready ??= new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          cluster.off('ready', onReady);
          reject(new Error('the Redis Cluster did not become ready within 10 s'));
        }, 10_000);
        const onReady = () => {
          clearTimeout(timer);
          resolve();
        };
        cluster.once('ready', onReady);
      }).finally(() => (ready = null));
      return ready.then(() => readerOf(key));
    },
    released(reader) {
      const slot = slotOf.get(reader);
      if (!reader.idle || slot === undefined) return;
      const entry = bySlot.get(slot)!;
      clearTimeout(entry.idleTimer);
      entry.idleTimer = setTimeout(() => drop(reader), IDLE_READER_MS);
      entry.idleTimer.unref();
    },
    connections: () => bySlot.size,
    close() {
      for (const reader of [...slotOf.keys()]) drop(reader);
    },
  };
}

function quiet(conn: Redis): Redis {
  conn.on('error', () => {
    // a failed call fails its waiters; ioredis reconnects by itself
  });
  return conn;
}
