/**
 * Seeding a consumer from an export (POST /v1/exports on the platform): the export's gzipped NDJSON file, one
 * `{"cursor":"…","event":{…}}` per line in stream order, and its manifest (count, sha256, end_cursor, …).
 *
 *   verify (sha256 and size of the file, line count, cursors strictly increasing, the last one = end_cursor)
 *   → refuse when the checkpoint is ahead of the export's end, or behind its start (that would leave a gap)
 *   → hand the events after the checkpoint (and after what the handler already holds) to the handler in order
 *   → move the checkpoint to end_cursor
 *
 * `run` then continues live after end_cursor: every event the platform appended after the export has a greater
 * cursor, so nothing is missed and nothing is handed over twice. A seed interrupted by a crash can be run
 * again: the handler's `recover` (FileSink) reports what it already wrote and those events are skipped.
 *
 * A snapshot export (`kind: "snapshot"`: the newest event per key, cut at the stream's head) numbers its lines
 * 0-1, 0-2, …, cursors before every stream entry, and its end_cursor is the stream position it was cut at. It
 * seeds a new consumer only: a checkpoint already inside the stream (behind end_cursor) is refused, since the
 * snapshot's older state would land after newer events.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ConsumerError } from './errors.ts';
import { compareCursors, isCursor } from './cursor.ts';
import { createCheckpointStore, type Checkpoint, type CheckpointStore } from './checkpoint.ts';
import { eventKey, RecentIds } from './recent-ids.ts';
import { FileSink } from './file-sink.ts';
import { CHECKPOINT_FILE } from './status.ts';
import { toHandler, type CloudEvent, type Delivery, type Handler, type HandlerFunction } from './handler.ts';
import { silentLogger, type Logger } from './logger.ts';

/** The manifest of an export, as GET /v1/exports/{id} answers it (`manifest`) and as written beside the file. */
export interface ExportManifest {
  export_id?: string;
  subscription_id: string;
  count: number;
  bytes?: number;
  sha256: string;
  start_after: string;
  end_cursor: string;
  /** "interval" (absent in older manifests) or "snapshot" */
  kind?: 'interval' | 'snapshot';
  source_positions?: Record<string, string> | null;
  [field: string]: unknown;
}

export interface SeedOptions {
  /** the export file (.ndjson.gz) */
  file: string;
  /** the manifest, or the path of its JSON; default: `<file without .ndjson.gz>.manifest.json` beside the file */
  manifest?: ExportManifest | string;
  /** the consumer's directory: FileSink files and the checkpoint (unless `handler`/`checkpoint` say otherwise) */
  dir: string;
  filePrefix?: string;
  /** when given, the manifest must be of this subscription */
  subscription?: string | null;
  handler?: Handler | HandlerFunction;
  checkpoint?: CheckpointStore | string;
  recentIdsWindow?: number;
  batchSize?: number;
  log?: Logger;
  /** called every few hundred events read and at the end of each phase (the CLI's progress line on a terminal) */
  onProgress?: (p: SeedProgress) => void;
}

/** How far a seed is: it reads the file twice, to verify it and then to write its events. */
export interface SeedProgress {
  phase: 'verifying' | 'writing';
  /** events of the file read so far in this phase */
  read: number;
  /** events the file holds (the manifest's count) */
  total: number;
  /** events handed to the handler so far */
  written: number;
  /** events at or before the checkpoint, not handed over */
  skipped: number;
  /** the cursor of the last event read */
  cursor: string | null;
}

/** how many events between two progress reports */
const PROGRESS_EVERY = 256;

export interface SeedResult {
  subscription: string;
  /** events handed to the handler */
  written: number;
  /** events of the file at or before the checkpoint (or already held by the handler) */
  skipped: number;
  /** where the checkpoint now stands: `run` continues after it */
  endCursor: string;
}

const invalid = (message: string) => new ConsumerError('seed_invalid', message);

async function loadManifest(opts: SeedOptions): Promise<{ manifest: ExportManifest; from: string }> {
  if (opts.manifest !== undefined && typeof opts.manifest !== 'string') return { manifest: checkManifest(opts.manifest, 'manifest'), from: 'manifest' };
  const path = opts.manifest ?? opts.file.replace(/(\.ndjson)?\.gz$/, '') + '.manifest.json';
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw invalid(
      `cannot read the manifest ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give --manifest <file> ` +
        `(the "manifest" of GET /v1/exports/{id}, saved as JSON)`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid(`the manifest ${path} is not JSON`);
  }
  // GET /v1/exports/{id} answers { …, manifest: {…} }: take either
  const m = parsed && typeof parsed === 'object' && 'manifest' in parsed ? (parsed as { manifest: unknown }).manifest : parsed;
  return { manifest: checkManifest(m, path), from: path };
}

function checkManifest(m: unknown, from: string): ExportManifest {
  const bad = (field: string) => invalid(`${from}: field "${field}" is missing or invalid; is this an export manifest?`);
  if (!m || typeof m !== 'object') throw invalid(`${from} is not an export manifest`);
  const r = m as Record<string, unknown>;
  if (typeof r['subscription_id'] !== 'string' || r['subscription_id'] === '') throw bad('subscription_id');
  if (typeof r['count'] !== 'number' || !Number.isSafeInteger(r['count']) || r['count'] < 0) throw bad('count');
  if (typeof r['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(r['sha256'])) throw bad('sha256');
  if (!isCursor(r['end_cursor'])) throw bad('end_cursor');
  if (!isCursor(r['start_after'])) throw bad('start_after');
  if (r['kind'] !== undefined && r['kind'] !== 'interval' && r['kind'] !== 'snapshot') throw bad('kind');
  return r as ExportManifest;
}

interface Line {
  cursor: string;
  event: CloudEvent;
  json: string;
}

function parseLine(text: string, n: number, file: string): Line {
  let v: { cursor?: unknown; event?: unknown };
  try {
    v = JSON.parse(text) as typeof v;
  } catch {
    throw invalid(`${file}: line ${n} is not JSON`);
  }
  if (!isCursor(v.cursor) || !v.event || typeof v.event !== 'object') throw invalid(`${file}: line ${n} is not {"cursor":…,"event":{…}}`);
  const prefix = `{"cursor":${JSON.stringify(v.cursor)},"event":`;
  const json = text.startsWith(prefix) && text.endsWith('}') ? text.slice(prefix.length, -1) : JSON.stringify(v.event);
  return { cursor: v.cursor, event: v.event as CloudEvent, json };
}

async function* readLines(file: string, onBytes?: (chunk: Buffer) => void): AsyncGenerator<Line> {
  const raw = createReadStream(file);
  if (onBytes) raw.on('data', (c) => onBytes(c as Buffer));
  const gunzip = createGunzip();
  const out = new PassThrough();
  raw.on('error', (err) => out.destroy(err));
  gunzip.on('error', (err) => out.destroy(invalid(`${file} is not a gzip file, or it is truncated (${err.message})`)));
  raw.pipe(gunzip).pipe(out);
  let n = 0;
  for await (const text of createInterface({ input: out, crlfDelay: Infinity })) {
    n++;
    if (text === '') continue;
    yield parseLine(text, n, file);
  }
}

/**
 * Verifies the file against the manifest without writing anything; throws seed_invalid naming the mismatch.
 * `onProgress` gets the events read so far and the last cursor, every few hundred events.
 */
export async function verifyExport(
  file: string,
  manifest: ExportManifest,
  onProgress?: (read: number, cursor: string) => void,
): Promise<{ count: number; lastCursor: string | null }> {
  const hash = createHash('sha256');
  const snapshot = manifest.kind === 'snapshot';
  let bytes = 0;
  let count = 0;
  let last: string | null = null;
  try {
    for await (const line of readLines(file, (c) => {
      hash.update(c);
      bytes += c.length;
    })) {
      if (snapshot ? line.cursor !== `0-${count + 1}` : compareCursors(line.cursor, last ?? manifest.start_after) <= 0)
        throw invalid(
          snapshot
            ? `${file}: cursor ${line.cursor} (event ${count + 1}) is not 0-${count + 1}; a snapshot numbers its events 0-1, 0-2, …`
            : `${file}: cursor ${line.cursor} (event ${count + 1}) is not after the one before it; the file is not an export in stream order`,
        );
      last = line.cursor;
      count++;
      if (onProgress && count % PROGRESS_EVERY === 0) onProgress(count, last);
    }
  } catch (err) {
    if (err instanceof ConsumerError) throw err;
    throw invalid(`cannot read ${file}: ${(err as Error).message}`);
  }
  const sha = hash.digest('hex');
  if (manifest.bytes !== undefined && manifest.bytes !== bytes) throw invalid(`${file} has ${bytes} bytes, the manifest says ${manifest.bytes}: the download is incomplete or another file`);
  if (sha !== manifest.sha256) throw invalid(`${file}: sha256 ${sha} does not match the manifest's ${manifest.sha256}: the file is damaged or another export's`);
  if (count !== manifest.count) throw invalid(`${file} holds ${count} events, the manifest says ${manifest.count}`);
  // a snapshot's lines come before its end_cursor (the stream position it was cut at); an interval's last line is it
  if (last !== null && (snapshot ? compareCursors(last, manifest.end_cursor) > 0 : last !== manifest.end_cursor))
    throw invalid(`${file} ends at ${last}, the manifest's end_cursor is ${manifest.end_cursor}`);
  return { count, lastCursor: last };
}

/** Seeds the consumer's handler (default: a FileSink in `dir`) and checkpoint from an export. */
export async function seedFromExport(opts: SeedOptions): Promise<SeedResult> {
  const log = (opts.log ?? silentLogger).child({ component: 'seed' });
  const { manifest, from } = await loadManifest(opts);
  const subscription = manifest.subscription_id;
  if (opts.subscription && opts.subscription !== subscription)
    throw new ConsumerError('checkpoint_mismatch', `the export ${from} is of subscription ${subscription}, not ${opts.subscription}`);
  const report = opts.onProgress ?? (() => {});
  const verified = await verifyExport(opts.file, manifest, (read, cursor) =>
    report({ phase: 'verifying', read, total: manifest.count, written: 0, skipped: 0, cursor }),
  );
  report({ phase: 'verifying', read: verified.count, total: manifest.count, written: 0, skipped: 0, cursor: verified.lastCursor });
  log.info('the export matches its manifest', { file: opts.file, events: manifest.count, sha256: manifest.sha256, end_cursor: manifest.end_cursor });

  const store = typeof opts.checkpoint === 'object' ? opts.checkpoint : createCheckpointStore(opts.checkpoint ?? join(opts.dir, CHECKPOINT_FILE));
  const existing = await store.load();
  if (existing && existing.subscription !== subscription)
    throw new ConsumerError('checkpoint_mismatch', `the checkpoint ${store.path} belongs to subscription ${existing.subscription}, not the export's ${subscription}`);
  if (existing && compareCursors(existing.cursor, manifest.end_cursor) > 0)
    throw new ConsumerError(
      'seed_conflict',
      `the checkpoint ${store.path} is at ${existing.cursor}, ahead of the export's end ${manifest.end_cursor}: this consumer already has every event ` +
        `of the export; seeding would move it backwards. Use an empty directory to seed a new consumer.`,
    );
  if (manifest.kind === 'snapshot' && existing && existing.cursor !== null && compareCursors(existing.cursor, manifest.end_cursor) < 0)
    throw new ConsumerError(
      'seed_conflict',
      `the checkpoint ${store.path} is at ${existing.cursor}: this consumer holds events of the stream already, and a snapshot (the newest ` +
        `event per key at ${manifest.end_cursor}) would put older state after them. Seed a snapshot into an empty directory.`,
    );
  if (existing && existing.cursor !== null && compareCursors(existing.cursor, manifest.start_after) < 0)
    throw new ConsumerError(
      'seed_conflict',
      `the checkpoint ${store.path} is at ${existing.cursor}, before the export's start (after ${manifest.start_after}): seeding would leave a gap. ` +
        `Export from an earlier time, or seed an empty directory.`,
    );

  const window = opts.recentIdsWindow ?? 10_000;
  const handler = toHandler(opts.handler ?? new FileSink({ dir: opts.dir, ...(opts.filePrefix ? { prefix: opts.filePrefix } : {}), log }));
  const recent = new RecentIds(window, existing?.recent ?? []);
  let after = existing?.cursor ?? null;
  let events = existing?.events ?? 0;
  let lastEventTime = existing?.lastEventTime ?? null;
  let written = 0;
  let skipped = 0;
  let read = 0;
  let cursor: string | null = null;
  const progress = () => report({ phase: 'writing', read, total: manifest.count, written, skipped, cursor });
  try {
    const held = handler.recover ? await handler.recover(after, Math.max(1, window)) : [];
    if (held.length > 0) {
      for (const h of held) recent.add(eventKey(h.source, h.id));
      after = held[held.length - 1]!.cursor;
      events += held.length;
      log.info('the handler already holds events after the checkpoint (an interrupted seed); continuing after them', { from: existing?.cursor ?? null, to: after });
    }
    const ctx = { subscription, signal: new AbortController().signal, attempt: 1 };
    const size = Math.max(1, opts.batchSize ?? 1000);
    let batch: Delivery[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      await handler.handle(batch, ctx);
      for (const d of batch) recent.add(eventKey(String(d.event.source), String(d.event.id)));
      const lastEvent = batch[batch.length - 1]!.event;
      if (typeof lastEvent.time === 'string') lastEventTime = lastEvent.time;
      written += batch.length;
      events += batch.length;
      batch = [];
    };
    for await (const line of readLines(opts.file)) {
      read++;
      cursor = line.cursor;
      if (read % PROGRESS_EVERY === 0) progress();
      if (compareCursors(line.cursor, after) <= 0) {
        skipped++;
        continue;
      }
      batch.push({ cursor: line.cursor, event: line.event, json: line.json });
      if (batch.length >= size) await flush();
    }
    await flush();
    progress();
  } finally {
    await handler.close?.();
  }
  const cp: Checkpoint = {
    subscription,
    cursor: compareCursors(after, manifest.end_cursor) > 0 ? after : manifest.end_cursor,
    updatedAt: new Date().toISOString(),
    lastEventTime,
    events,
    recent: recent.toArray(),
  };
  await store.save(cp);
  log.info('seeded', { subscription, written, skipped, checkpoint: cp.cursor });
  return { subscription, written, skipped, endCursor: cp.cursor! };
}
