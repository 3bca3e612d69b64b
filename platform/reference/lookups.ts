/**
 * Reference records as transforms look them up: a reader bound to one tenant, over an in-process cache in front of
 * Redis (platform/reference/store.ts describes the data and the design).
 *
 * A record read is kept `ttlMs` (default REFERENCE_CACHE_MS): the route evaluates a partition's events one after
 * the other, and events of the same account follow each other, so a busy key costs one Redis read per period and
 * instance, not one per event; a record changed or deleted reaches lookups at most `ttlMs` after the reference
 * function wrote it. A key that has no record is kept as well (as missing), for the same time. Concurrent lookups
 * of the same key share one read. The cache holds at most `maxEntries` keys and `maxBytes` of record text: past
 * either, the oldest entries go first.
 *
 * A Redis that fails or is slow fails the lookup with ReferenceUnavailableError (retriable), never with a
 * "no record": the route's batch is retried, the event is not set aside.
 */
import { PioneerError } from '../errors.ts';
import type { Redis } from '../redis/client.ts';
import { readReference } from './store.ts';

export const REFERENCE_CACHE_MS = 1000;

/** Looks one record up for a tenant fixed beforehand: its data's JSON text, or null when there is none. */
export type ReferenceReader = (table: string, key: string) => Promise<string | null>;

/** Redis could not answer a lookup: the work is retried, the event is not set aside. */
export class ReferenceUnavailableError extends PioneerError {
  constructor(cause: unknown) {
    super(`reference data unavailable: ${(cause as Error)?.message ?? String(cause)}`, { code: 'reference_unavailable', retriable: true, cause });
  }
}

export interface ReferenceLookups {
  /** A reader of `tenantId`'s records only. */
  readerFor(tenantId: string): ReferenceReader;
}

export interface ReferenceLookupOptions {
  redis: Redis;
  ttlMs?: number;
  maxEntries?: number;
  maxBytes?: number;
  /** told of every lookup: whether the cache answered it or Redis did */
  counted?: (from: 'cache' | 'redis') => void;
}

interface Entry {
  text: string | null;
  at: number;
}

export function createReferenceLookups(opts: ReferenceLookupOptions): ReferenceLookups {
  const { redis, ttlMs = REFERENCE_CACHE_MS, maxEntries = 100_000, maxBytes = 64 * 1024 * 1024, counted } = opts;
  const cache = new Map<string, Entry>();
  const reading = new Map<string, Promise<string | null>>();
  let bytes = 0;

  function remember(id: string, text: string | null): void {
    const old = cache.get(id);
    if (old) {
      bytes -= old.text?.length ?? 0;
      cache.delete(id);
    }
    if (ttlMs <= 0) return;
    cache.set(id, { text, at: Date.now() });
    bytes += text?.length ?? 0;
    // a Map iterates in insertion order: the first entries are the oldest reads
    for (const [k, e] of cache) {
      if (cache.size <= maxEntries && bytes <= maxBytes) break;
      cache.delete(k);
      bytes -= e.text?.length ?? 0;
    }
  }

  async function read(tenantId: string, table: string, key: string, id: string): Promise<string | null> {
    try {
      const text = await readReference(redis, tenantId, table, key);
      remember(id, text);
      return text;
    } catch (err) {
      throw new ReferenceUnavailableError(err);
    } finally {
      reading.delete(id);
    }
  }

  return {
    readerFor(tenantId) {
      return (table, key) => {
        const id = `${tenantId}\n${table}\n${key}`;
        const hit = cache.get(id);
        if (hit && Date.now() - hit.at < ttlMs) {
          counted?.('cache');
          return Promise.resolve(hit.text);
        }
        counted?.('redis');
        let pending = reading.get(id);
        if (!pending) reading.set(id, (pending = read(tenantId, table, key, id)));
        return pending;
      };
    },
  };
}
