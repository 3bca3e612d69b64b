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
 * the export reads as failed.
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
import type { TieredStreams } from '../../platform/tiers/cold-reader.ts';
import type { Subscription } from '../../platform/store/subscriptions.ts';
import type { Logger } from '../../platform/telemetry/logger.ts';

export interface ExportManifest {
  export_id: string;
  subscription_id: string;
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
}

export interface ExportRecord {
  id: string;
  subscription_id: string;
  status: 'running' | 'completed' | 'failed';
  interval: { from: string | null; to: string | null };
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

export function createExporter(opts: ExporterOptions) {
  const { redis, tiered, log, dir, pageSize, leaseMs, recordTtlMs } = opts;
  const running = new Map<string, Promise<void>>();

  const fileOf = (tenantId: string, id: string) => join(dir, tenantId, `${id}.ndjson.gz`);
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
      id, subscription_id: sub.id, status: 'running',
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
    const tmp = `${path}.tmp`;
    try {
      await mkdir(join(dir, t), { recursive: true });
      let count = 0;
      let first: string | null = null;
      let last = startAfter;
      // hot or cold, page by page, up to the end bound (entries appended after the start are not in the file)
      const reader = tiered.reader({ tenantId: t, subId: sub.id });
      async function* lines(): AsyncGenerator<string> {
        if (endBound === null) return;
        let after = startAfter;
        try {
          for (;;) {
            const { entries } = await reader.read(after, pageSize);
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
      const hash = createHash('sha256');
      let bytes = 0;
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          bytes += chunk.length;
          cb(null, chunk);
        },
      });
      await pipeline(Readable.from(lines()), createGzip(), tap, createWriteStream(tmp, { mode: 0o640 }));
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
      const manifest: ExportManifest = {
        export_id: record.id, subscription_id: sub.id, format: 'ndjson+gzip', file: `${record.id}.ndjson.gz`,
        count, bytes, sha256: hash.digest('hex'), interval: record.interval, start_after: startAfter, first_cursor: first, end_cursor: last,
        source_positions: sourcePositions, created_at: record.created_at,
      };
      await writeFile(join(dir, t, `${record.id}.manifest.json`), JSON.stringify(manifest, null, 2) + '\n');
      record.status = 'completed';
      record.manifest = manifest;
      elog.info({ count, bytes }, 'export written');
    } catch (err) {
      record.status = 'failed';
      record.error = (err as Error).message;
      await unlink(tmp).catch(() => {});
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
      return { ...again, status: 'failed', error: 'interrupted: the instance writing it stopped; start a new export' };
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
    async close(): Promise<void> {
      await Promise.allSettled([...running.values()]);
    },
  };
}

export type Exporter = ReturnType<typeof createExporter>;
