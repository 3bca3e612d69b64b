/**
 * Exports: an interval of one subscription's events, from either tier (the hot window in Redis, older events derived
 * again from the source topics: platform/tiers/cold-reader.ts), written to a gzipped NDJSON file, one line
 * per event in stream order, `{"cursor":"<entry id>","event":{…}}` (the same lines the SDK's FileSink writes),
 * with a manifest: count, sha256 and size of the file, the interval, the first and last cursor included
 * (`end_cursor`: a consumer seeded from the file continues live after it) and the source positions where it
 * ends (per "<topic>/<partition>" the last offset included), known when the export reaches the stream's head.
 *
 * The stream's head and the subscription's positions hash are read together when the export starts
 * (platform/redis/streams.ts `snapshot`), so the file is a consistent prefix: appends made while it is written are not in it (they are after
 * `end_cursor`). Files go to PIONEER_EXPORT_DIR/<tenant>/<exp>.ndjson.gz (written to a temp name, fsync'd,
 * renamed) with <exp>.manifest.json beside it; several instances need that directory on a shared volume.
 * A writer holds a lease (platform/jobs/records.ts, where the export's record is kept too); if its instance dies
 * the export reads as failed (and the temp file it left is removed when that is first reported).
 * A snapshot (`kind: snapshot`, the newest event per key) is the same record, file and manifest, written by
 * snapshots.ts; this module serves both.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { newId } from '../../platform/ids.ts';
import { HttpError } from '../../platform/errors.ts';
import { exportLease, readExport, saveExport } from '../../platform/jobs/records.ts';
import type { PioneerRedis } from '../../platform/redis/client.ts';
import { compareIds, cursorBeforeTime, cursorTime, oldestResumable, snapshot, tiers } from '../../platform/redis/streams.ts';
import { ColdReadsBusyError, ColdReadsLimitError, type TieredStreams } from '../../platform/tiers/cold-reader.ts';
import type { Subscription } from '../../platform/store/subscriptions.ts';
import type { Logger } from '../../platform/telemetry/logger.ts';

/** How often an export waiting for a cold source tries again, and for how long at most before it fails. */
const COLD_SLOT_WAIT_MS = 2000;
const COLD_SLOT_PATIENCE_MS = 10 * 60_000;

export type ExportKind = 'interval' | 'snapshot';

export interface ExportManifest {
  export_id: string;
  subscription_id: string;
  /** an interval of the stream, or a snapshot of the newest event per key (snapshots.ts) */
  kind: ExportKind;
  format: 'ndjson+gzip';
  file: string;
  count: number;
  bytes: number;
  sha256: string;
  interval: { from: string | null; to: string | null };
  /** the export holds the entries after this cursor ("0-0": from the start of the buffer) */
  start_after: string;
  first_cursor: string | null;
  /** the last cursor included (start_after when the export is empty): continue live after it */
  end_cursor: string;
  /** per "<topic>/<partition>" the last source offset included; null when the export ends before the stream's head */
  source_positions: Record<string, string> | null;
  created_at: string;
  /** a snapshot's state topic; null when it read the source topics' newest events of the snapshot types */
  state_topic?: string | null;
  /** a snapshot's types when it read the source topics (PIONEER_SNAPSHOT_TYPES); null with a state topic */
  snapshot_types?: string[] | null;
  /** the subscription's newest stream entry at a snapshot's cut (null: none): end_cursor is at or after it */
  stream_head?: string | null;
  /** a snapshot's keys left out because the subscription's transform failed on their newest event */
  set_aside?: number;
}

/** How far a snapshot is (its record's `progress`, saved as it reads). */
export interface SnapshotProgress {
  /** "settling" (waiting until every route instance matches with the subscription as it is), "reading", "writing" */
  phase: 'settling' | 'reading' | 'writing';
  partitions: number;
  partitions_done: number;
  /** source records up to the cut (an upper bound: compaction and retention may have removed some) */
  records: number;
  records_read: number;
  /** events written to the file so far (one per key) */
  written: number;
}

export interface ExportRecord {
  id: string;
  subscription_id: string;
  kind: ExportKind;
  status: 'running' | 'completed' | 'failed';
  interval: { from: string | null; to: string | null };
  /** a snapshot's state topic (null: the source topics) */
  state_topic?: string | null;
  /** a snapshot's progress; null once it ended and for an interval */
  progress?: SnapshotProgress | null;
  created_at: string;
  completed_at: string | null;
  manifest: ExportManifest | null;
  error: string | null;
}

export interface ExporterOptions {
  redis: PioneerRedis;
  tiered: TieredStreams;
  log: Logger;
  dir: string;
  pageSize: number;
  leaseMs: number;
  recordTtlMs: number;
}

/** The file of a tenant's export, and its manifest beside it. */
export function exportPaths(dir: string, tenantId: string, id: string): { dir: string; file: string; manifest: string } {
  return { dir: join(dir, tenantId), file: join(dir, tenantId, `${id}.ndjson.gz`), manifest: join(dir, tenantId, `${id}.manifest.json`) };
}

/**
 * Writes `lines` gzipped to `path` (a temp name, fsync'd, renamed: the file appears whole or not at all) and
 * answers its size and SHA-256; the temp file is removed when it fails.
 */
export async function writeExportFile(path: string, lines: AsyncIterable<string>): Promise<{ bytes: number; sha256: string }> {
  const tmp = `${path}.tmp`;
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  try {
    await pipeline(Readable.from(lines), createGzip(), tap, createWriteStream(tmp, { mode: 0o640 }));
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  return { bytes, sha256: hash.digest('hex') };
}

export function createExporter(opts: ExporterOptions) {
  const { redis, tiered, log, dir, pageSize, leaseMs, recordTtlMs } = opts;
  const running = new Map<string, Promise<void>>();

  const fileOf = (tenantId: string, id: string) => exportPaths(dir, tenantId, id).file;
  const save = (tenantId: string, r: ExportRecord) => saveExport(redis, { tenantId, record: r, ttlMs: recordTtlMs });
  const lease = (tenantId: string, exportId: string) => exportLease(redis, { tenantId, exportId });

  /** `fromMs`/`toMs` validated by the caller; throws 400 `from` when the buffer no longer holds it. */
  async function start(sub: Subscription, fromMs: number | null, toMs: number | null): Promise<ExportRecord> {
    const t = sub.tenant_id;
    const { head, sourcePositions: positions } = await snapshot(redis, { tenantId: t, subId: sub.id });
    // the oldest point the tiers resume from: the hot window, or before it as far as the marks reach
    const oldest = oldestResumable(await tiers(redis, { tenantId: t, subId: sub.id }));
    let startAfter = fromMs === null ? '0-0' : cursorBeforeTime(fromMs);
    if (compareIds(startAfter, oldest) < 0) {
      if (fromMs !== null) {
        const at = oldest === '0-0' ? null : cursorTime(oldest);
        const err = HttpError.badRequest(
          'from',
          `older than the subscription's retention${at ? `; events after ${at} can be exported` : ''}. Replay the subscription from Kafka for older events`,
          'from_before_buffer',
        );
        err.extra['oldest_available'] = at;
        throw err;
      }
      startAfter = oldest;
    }
    const bound = toMs === null ? head : cursorBeforeTime(toMs);
    // the export reaches the head: the positions hash, read with it, says where it ends in the source
    const reachesHead = head === null || bound === null || compareIds(head, bound) <= 0;
    const endBound = head === null ? null : reachesHead ? head : bound!;
    const sourcePositions: Record<string, string> | null = reachesHead ? positions : null;

    const id = newId('exp');
    const record: ExportRecord = {
      id, subscription_id: sub.id, kind: 'interval', status: 'running',
      interval: { from: fromMs === null ? null : new Date(fromMs).toISOString(), to: toMs === null ? null : new Date(toMs).toISOString() },
      created_at: new Date().toISOString(), completed_at: null, manifest: null, error: null,
    };
    // a new id: nobody holds its lease yet
    await lease(t, id).tryTake({ owner: id, ttlMs: leaseMs });
    await save(t, record);
    const job = write(sub, record, startAfter, endBound, sourcePositions).finally(() => running.delete(id));
    running.set(id, job);
    return record;
  }

  async function write(sub: Subscription, record: ExportRecord, startAfter: string, endBound: string | null, sourcePositions: Record<string, string> | null): Promise<void> {
    const t = sub.tenant_id;
    const elog = log.child({ export: record.id, subscription: sub.id, tenant: t });
    const held = lease(t, record.id);
    const owner = record.id;
    const renew = setInterval(() => void held.renew({ owner, ttlMs: leaseMs }).catch(() => {}), Math.max(100, Math.floor(leaseMs / 3)));
    renew.unref();
    const path = fileOf(t, record.id);
    try {
      await mkdir(join(dir, t), { recursive: true });
      let count = 0;
      let first: string | null = null;
      let last = startAfter;
      // hot or cold, page by page, up to the end bound (entries appended after the start are not in the file)
      const reader = tiered.reader({ tenantId: t, subId: sub.id });
      // a read older than the hot window waits for a free cold source (this instance's or this tenant's are all
      // taken): an export is a background job, not a request to refuse
      const readWhenServed = async (after: string) => {
        for (let waited = 0; ; waited += COLD_SLOT_WAIT_MS) {
          try {
            return await reader.read(after, pageSize);
          } catch (err) {
            if (!(err instanceof ColdReadsBusyError || err instanceof ColdReadsLimitError) || waited >= COLD_SLOT_PATIENCE_MS) throw err;
            if (waited === 0) elog.info({ reason: err.message }, 'export waits for a cold source');
            await new Promise((resolve) => setTimeout(resolve, COLD_SLOT_WAIT_MS));
          }
        }
      };
      async function* lines(): AsyncGenerator<string> {
        if (endBound === null) return;
        let after = startAfter;
        try {
          for (;;) {
            const { entries } = await readWhenServed(after);
            const within = entries.filter((e) => compareIds(e.cursor, endBound) <= 0);
            if (within.length === 0) return;
            let out = '';
            for (const e of within) {
              out += `{"cursor":"${e.cursor}","event":${e.event}}\n`;
              first ??= e.cursor;
              last = e.cursor;
              count++;
            }
            yield out;
            after = within[within.length - 1]!.cursor;
            if (within.length < entries.length || compareIds(after, endBound) >= 0) return;
          }
        } finally {
          await reader.close();
        }
      }
      const { bytes, sha256 } = await writeExportFile(path, lines());
      const manifest: ExportManifest = {
        export_id: record.id, subscription_id: sub.id, kind: 'interval', format: 'ndjson+gzip', file: `${record.id}.ndjson.gz`,
        count, bytes, sha256, interval: record.interval, start_after: startAfter, first_cursor: first, end_cursor: last,
        source_positions: sourcePositions, created_at: record.created_at,
      };
      await writeFile(join(dir, t, `${record.id}.manifest.json`), JSON.stringify(manifest, null, 2) + '\n');
      record.status = 'completed';
      record.manifest = manifest;
      elog.info({ count, bytes }, 'export written');
    } catch (err) {
      record.status = 'failed';
      record.error = (err as Error).message;
      elog.error({ err }, 'export failed');
    } finally {
      clearInterval(renew);
      record.completed_at = new Date().toISOString();
      await save(t, record).catch((err) => elog.error({ err }, 'cannot record the end of the export'));
      await held.release({ owner }).catch(() => {});
    }
  }

  /** The export, or null; a `running` export whose writer is gone is reported as failed (interrupted). */
  async function get(tenantId: string, id: string): Promise<ExportRecord | null> {
    const [r, writer] = await Promise.all([readExport<ExportRecord>(redis, { tenantId, exportId: id }), lease(tenantId, id).holder()]);
    if (!r) return null;
    if (r.status === 'running' && writer === null && !running.has(id)) {
      const again = (await readExport<ExportRecord>(redis, { tenantId, exportId: id })) ?? r;
      if (again.status !== 'running') return again;
      // what the writer left half-written goes (the directory is shared by every instance)
      await unlink(`${fileOf(tenantId, id)}.tmp`).catch(() => {});
      return { ...again, status: 'failed', progress: null, error: 'interrupted: the instance writing it stopped; start a new export' };
    }
    return r;
  }

  /** The completed export's file as a stream, with its size; 409 while it is not ready. */
  async function file(tenantId: string, id: string): Promise<{ stream: Readable; bytes: number; record: ExportRecord }> {
    const record = await get(tenantId, id);
    if (!record) throw HttpError.notFound('export');
    if (record.status !== 'completed')
      throw new HttpError(409, record.status === 'failed' ? 'export_failed' : 'export_not_ready', `the export is ${record.status}${record.error ? `: ${record.error}` : ''}`, {
        extra: { status: record.status },
      });
    const path = fileOf(tenantId, id);
    let bytes: number;
    try {
      bytes = (await stat(path)).size;
    } catch {
      throw new HttpError(404, 'export_file_missing', 'the export file is not on this instance: PIONEER_EXPORT_DIR must be a volume every export instance shares');
    }
    return { stream: createReadStream(path), bytes, record };
  }

  return {
    start,
    get,
    file,
    /** Counts a job this instance runs (a snapshot) as running until it settles: `get` reads it so. */
    track(id: string, job: Promise<void>): void {
      running.set(id, job.finally(() => running.delete(id)));
    },
    async close(): Promise<void> {
      await Promise.allSettled([...running.values()]);
    },
  };
}

export type Exporter = ReturnType<typeof createExporter>;
