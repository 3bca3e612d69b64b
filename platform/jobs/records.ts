/**
 * Export and replay jobs in Redis: their records, the leases of the instances running them, and a replay's
 * progress. Keys (tenant keys under the hash tag {t:T}; built in platform/redis/keys.ts as exportKeys):
 *   {t:T}:export:<exp>               string the export's record JSON: status, interval, manifest when done, error
 *                                           (expires after the caller's ttl; the file lives on disk)
 *   {t:T}:export:<exp>:lease         string held while an instance writes the export (a single-holder lease of
 *                                           platform/redis/leases.ts: expires unless renewed)
 *   {t:T}:replay:<sub>:<rpl>         string the replay's record JSON: status, interval, counts, error (expires after
 *                                           the caller's ttl)
 *   {t:T}:replay:<sub>:<rpl>:pos     hash   "<topic>/<partition>" -> last source offset the replay appended: its
 *                                           appends are deduplicated against it (append-events-n.lua, through
 *                                           platform/routing/route-core.ts), so a retried batch appends once
 *   {t:T}:replay:<sub>:active        string the id of the replay running on the subscription: one at a time; a
 *                                           single-holder lease that expires unless the instance running it renews it
 *   {t:T}:snapshot:<sub>:active      string the id of the snapshot export running on the subscription (it reads
 *                                           whole source topics: one at a time); a single-holder lease, as above
 * A record is written whole (SET with PX) by the instance running its job; readers tell an interrupted job by its
 * lease: a `running` record whose lease is gone was left by an instance that died.
 */
import type { PioneerRedis } from '../redis/client.ts';
import { exportKeys } from '../redis/keys.ts';
import * as leases from '../redis/leases.ts';

/** A job's record as stored: any JSON object with its id. */
export interface JobRecord {
  id: string;
}

/** A single-holder lease on one job (platform/redis/leases.ts), its key fixed. */
export interface JobLease {
  tryTake(opts: { owner: string; ttlMs: number }): Promise<leases.LeaseTake>;
  renew(opts: { owner: string; ttlMs: number }): Promise<boolean>;
  release(opts: { owner: string }): Promise<boolean>;
  /** the owner holding it, or null */
  holder(): Promise<string | null>;
}

function leaseOn(redis: PioneerRedis, key: string): JobLease {
  return {
    tryTake: ({ owner, ttlMs }) => leases.tryTake(redis, { key, owner, ttlMs }),
    renew: ({ owner, ttlMs }) => leases.renew(redis, { key, owner, ttlMs }),
    release: ({ owner }) => leases.release(redis, { key, owner }),
    holder: () => leases.holder(redis, { key }),
  };
}

async function readJson<R>(redis: PioneerRedis, key: string): Promise<R | null> {
  const json = await redis.get(key);
  return json === null ? null : (JSON.parse(json) as R);
}

// ─── exports ──────────────────────────────────────────────────────────────────────────────────────────────

/** Writes the export's record, kept for `ttlMs`. */
export async function saveExport(redis: PioneerRedis, { tenantId, record, ttlMs }: { tenantId: string; record: JobRecord; ttlMs: number }): Promise<void> {
  await redis.set(exportKeys.export(tenantId, record.id), JSON.stringify(record), 'PX', ttlMs);
}

/** The export's record, or null (none, or expired). */
export function readExport<R extends JobRecord>(redis: PioneerRedis, { tenantId, exportId }: { tenantId: string; exportId: string }): Promise<R | null> {
  return readJson<R>(redis, exportKeys.export(tenantId, exportId));
}

/** The lease of the instance writing the export; its owner is the export id. */
export function exportLease(redis: PioneerRedis, { tenantId, exportId }: { tenantId: string; exportId: string }): JobLease {
  return leaseOn(redis, exportKeys.exportLease(tenantId, exportId));
}

/** The lease of the snapshot export running on the subscription (one at a time); its owner is the export id. */
export function activeSnapshotLease(redis: PioneerRedis, { tenantId, subId }: { tenantId: string; subId: string }): JobLease {
  return leaseOn(redis, exportKeys.activeSnapshot(tenantId, subId));
}

// ─── replays ──────────────────────────────────────────────────────────────────────────────────────────────

/** Writes the replay's record, kept for `ttlMs`. */
export async function saveReplay(
  redis: PioneerRedis,
  { tenantId, subId, record, ttlMs }: { tenantId: string; subId: string; record: JobRecord; ttlMs: number },
): Promise<void> {
  await redis.set(exportKeys.replay(tenantId, subId, record.id), JSON.stringify(record), 'PX', ttlMs);
}

/** The replay's record, or null (none, or expired). */
export function readReplay<R extends JobRecord>(redis: PioneerRedis, { tenantId, subId, replayId }: { tenantId: string; subId: string; replayId: string }): Promise<R | null> {
  return readJson<R>(redis, exportKeys.replay(tenantId, subId, replayId));
}

/** The lease of the replay running on the subscription (one at a time); its owner is the replay id. */
export function activeReplayLease(redis: PioneerRedis, { tenantId, subId }: { tenantId: string; subId: string }): JobLease {
  return leaseOn(redis, exportKeys.activeReplay(tenantId, subId));
}

/**
 * The hash a replay's appends are deduplicated against instead of the subscription's positions (route-core's
 * `dedupKey`): a retried batch of the replay appends once, while the events the route appended are appended again.
 */
export function replayProgressKey({ tenantId, subId, replayId }: { tenantId: string; subId: string; replayId: string }): string {
  return exportKeys.replayProgress(tenantId, subId, replayId);
}

/** Keeps the replay's progress for `ttlMs` from now (with its record), once the replay ended. */
export async function expireReplayProgress(
  redis: PioneerRedis,
  { tenantId, subId, replayId, ttlMs }: { tenantId: string; subId: string; replayId: string; ttlMs: number },
): Promise<void> {
  await redis.pexpire(exportKeys.replayProgress(tenantId, subId, replayId), ttlMs);
}
