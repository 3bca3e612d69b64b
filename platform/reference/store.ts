/**
 * Reference data in Redis, and the one module that reads and writes it: the records a subscription's transform
 * enriches its events with (`$lookup('accounts', accountId)`: account id to holder and segment).
 *
 * Design.
 * - Source. Each table is one compacted Kafka topic, bound to its name by PIONEER_REFERENCE_TOPICS
 *   (`accounts=pioneer.reference.accounts`). A record is a CloudEvent (structured or binary; or a plain record
 *   adapted by PIONEER_TOPIC_MAPPINGS, as on the source topics) carrying `tenantid`; its `data` is the record
 *   a lookup returns. Its Kafka key is `<tenantid>/<lookup key>` (platform/reference/names.ts): compaction keeps
 *   the latest record per Kafka key across all tenants, so the tenant is part of the key, and a tombstone (no
 *   value) says by its key alone whose record it deletes. A record whose `data` is null deletes too, for hosts
 *   that do not pass tombstones on. A record whose `tenantid` is not the key's tenant is refused.
 * - Writer. The reference function (functions/reference/) is Kafka-triggered on those topics with its own consumer
 *   group: the route never waits on a reference topic, and a reference topic's backlog never holds an event up.
 *   It writes each tenant's records of a batch in source order with put-references-1.lua, one call per tenant and
 *   table and chunk; a re-delivered batch writes the same values again (the latest record of a key wins, as in
 *   the topic itself). Reading a topic again from its start (a new consumer group, a Redis that lost its data)
 *   rebuilds the tables: compaction keeps every key's latest record.
 * - Bounds, on what a tenant's records control: the table is one of the configured ones (its name checked by
 *   REFERENCE_TABLE_PATTERN), a lookup key of at most MAX_REFERENCE_KEY_LENGTH characters, a record's data of at
 *   most PIONEER_REFERENCE_MAX_RECORD_BYTES as JSON, at most PIONEER_REFERENCE_MAX_RECORDS records per tenant and
 *   table (taken in the script, atomically: a new key beyond it is refused; a record of a key the table holds
 *   replaces it), and only tenants that exist. A record refused goes to the dead-letter topic with the reason and
 *   counts in pioneer_reference_refused_total{reason}.
 * - Isolation by construction: every table of a tenant lives under the tenant's hash tag, and a lookup is bound to
 *   the tenant of the event being transformed (the route binds it, platform/routing/route-core.ts); a
 *   transform names a table and a key, never a tenant, so no expression reaches another tenant's records.
 * - Readers. The route, replays and the cold tier look records up through platform/reference/lookups.ts: an
 *   in-process cache per (tenant, table, key) kept PIONEER_REFERENCE_CACHE_MS (default 1 s), so a busy account
 *   costs Redis one read a second per instance, and an update reaches lookups within that plus the reference
 *   function's lag (seconds). The cold tier and replays derive old events with the records as they are now, not
 *   as they were when the route first appended the event.
 *
 * Keys (built in platform/redis/keys.ts, under the tenant's hash tag: one Redis Cluster slot per tenant):
 *
 *   {t:T}:ref:<table>                hash   lookup key -> the data of the latest record with that key, as JSON text.
 *                                           Written by put-references-1.lua only (at most MAX records; HDEL on a
 *                                           delete); read by HGET. No expiry: a record stays until deleted.
 */
import type { PioneerRedis, Redis } from '../redis/client.ts';
import { referenceKeys } from '../redis/keys.ts';

/** One record of a batch, in source order: a put (its data as JSON) or a delete. */
export type ReferenceOperation = { key: string; data: string } | { key: string; data: null };

export interface PutOutcome {
  written: number;
  deleted: number;
  /** indexes (0-based, into the operations given) of the puts refused: the table was full */
  refused: number[];
}

/** Operations per script call: a call holds Redis for a short while only, and its arguments stay small. */
export const PUT_CHUNK = 500;

/**
 * Applies one tenant's operations on one table, in order, at most `maxRecords` records in the table. Chunks go one
 * after the other (never concurrently), so the table sees the operations in source order.
 */
export async function putReferences(
  redis: PioneerRedis, tenantId: string, table: string, ops: readonly ReferenceOperation[], maxRecords: number,
): Promise<PutOutcome> {
  const out: PutOutcome = { written: 0, deleted: 0, refused: [] };
  for (let i = 0; i < ops.length; i += PUT_CHUNK) {
    const args: string[] = [String(maxRecords)];
    for (const op of ops.slice(i, i + PUT_CHUNK)) args.push(op.data === null ? 'd' : 'p', op.key, op.data ?? '');
    const reply = await redis.putReferences(referenceKeys.table(tenantId, table), ...args);
    out.written += Number(reply[0]);
    out.deleted += Number(reply[1]);
    for (const n of reply.slice(2)) out.refused.push(i + Number(n) - 1);
  }
  return out;
}

/** The data of the tenant's record `key` of `table` (JSON text), or null when there is none. */
export async function readReference(redis: Redis, tenantId: string, table: string, key: string): Promise<string | null> {
  return redis.hget(referenceKeys.table(tenantId, table), key);
}

/** How many records the tenant's table holds. */
export async function countReferences(redis: Redis, tenantId: string, table: string): Promise<number> {
  return redis.hlen(referenceKeys.table(tenantId, table));
}
