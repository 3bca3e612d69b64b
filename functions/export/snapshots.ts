/**
 * Snapshot exports (`POST /v1/exports` with `kind: snapshot`): the newest event per key of one subscription —
 * every account's last balance, also of accounts quiet for months — cut exactly where the subscription's stream
 * stands, so that a consumer seeded from it continues live after the stream's head with no gap and no duplicate.
 *
 *   settle  wait until the subscription has been unchanged for PIONEER_SNAPSHOT_SETTLE_MS, so that every route
 *           instance matches with it as it is (the route's index follows a change within a second)
 *   cut     read the route's positions R (pioneer:route:pos, next offset to process per source partition), then
 *           in one MULTI the stream's head H and the subscription's positions S ({t:T}:pos:<sub>, last offset
 *           appended); per partition the last offset the snapshot includes is X = max(S, R - 1)
 *   read    each partition of the state topic (or of every source topic) from its earliest offset to X, fetched
 *           straight from the leaders by a cold source of the job's own (platform/tiers/cold-source.ts), four
 *           partitions at a time; each record
 *           decoded and matched exactly as the route does (route-core `matchRecord`: tenant, types, source,
 *           filters); per key (the Kafka record key, else the event's `partitionkey`) the newest match is kept; a
 *           tombstone (a record without value) deletes its key
 *   write   per partition, in the offset order of the kept records, each shaped as the route stores it (route-core
 *           `appendedText`: the record's own text, or the subscription's transform) as a line
 *           `{"cursor":"0-<n>","event":…}`: cursors 0-1, 0-2, … sort before every stream entry, so the lines
 *           go into a consumer's files ahead of what the stream delivers after them
 *   manifest  count, sha256, X per partition (`source_positions`), H (`stream_head`), and `end_cursor`, the cursor
 *           the consumer continues after: H, or the greatest trimmed id when the stream holds nothing, or the
 *           last line's cursor when the subscription never had an event
 *
 * Why the cut is exact. The route handles a partition in offset order; it appends a batch's matches and moves S in
 * one script (append-events-n.lua), and moves R only after its appends. R was read before (H, S). A matching record
 * at an offset up to X was either appended at or before H (S had reached it, or R had passed it before the
 * read), or handled before the subscription existed and never appended: not in the stream after H, and in the
 * snapshot. A matching record after X had not been appended when H was read (S would be at it), so the route
 * appends it after H: delivered live, not in the snapshot. This holds once every route instance matches with the
 * subscription as it is, which the settle waits for.
 *
 * Bounds: one snapshot per subscription at a time (a lease, 409 otherwise) and PIONEER_SNAPSHOTS_MAX per instance
 * (503 otherwise); the events kept for the partitions being read may take PIONEER_SNAPSHOT_MEMORY_MB, or the
 * snapshot fails naming them (keys are per partition, and a partition's are written and dropped once it is read,
 * so memory grows with a few partitions' keys of the tenant, not with the topic). Records of other tenants are skipped before they are parsed when their text cannot name the
 * tenant. Progress is saved in the export's record while it runs. A crash mid-job: the leases expire, the export
 * reads as failed (interrupted), its temp file is removed, and a new snapshot can start.
 */
import type { Kafka } from 'kafkajs';
import type { PartitionFetchOptions } from '../../platform/kafka/partition-fetch.ts';
import { HttpError } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { activeSnapshotLease, exportLease, saveExport } from '../../platform/jobs/records.ts';
import type { PioneerRedis } from '../../platform/redis/client.ts';
import { positionField } from '../../platform/routing/positions.ts';
import { compareIds, snapshot } from '../../platform/redis/streams.ts';
import { readRoutePositions } from '../../platform/routing/positions.ts';
import { appendedText, matchRecord, recordPrefilter, type MatchedRecord } from '../../platform/routing/route-core.ts';
import { createReferenceLookups } from '../../platform/reference/lookups.ts';
import type { SourceDecoding } from '../../platform/events/route-decoding.ts';
import { createColdSource, decodeRangeRecord, RangeGoneError, type BatchRecord, type ColdSource, type PartitionRange } from '../../platform/tiers/cold-source.ts';
import { compileSubscription, matcherOf } from '../../platform/store/subscription-index.ts';
import type { Subscription } from '../../platform/store/subscriptions.ts';
import type { Logger } from '../../platform/telemetry/logger.ts';
import { exportPaths, writeExportFile, type Exporter, type ExportManifest, type ExportRecord, type SnapshotProgress } from './exports.ts';
import { mkdir, writeFile } from 'node:fs/promises';

export interface SnapshotterOptions {
  redis: PioneerRedis;
  kafka: Kafka;
  /** the brokers and settings the partitions are read with, straight from their leaders */
  fetch: PartitionFetchOptions;
  log: Logger;
  exporter: Exporter;
  dir: string;
  /** the source topics the route reads: a state topic must be one of them */
  topics: string[];
  decoding: SourceDecoding;
  /** without a state topic, the event types that carry a key's whole state (PIONEER_SNAPSHOT_TYPES) */
  snapshotTypes: string[];
  settleMs: number;
  /** bytes the events kept for one partition may take */
  memoryBytes: number;
  /** snapshots this instance runs at once */
  maxRunning: number;
  leaseMs: number;
  recordTtlMs: number;
  /** reloads the subscription (null when it was deleted) */
  loadSubscription(tenantId: string, subId: string): Promise<Subscription | null>;
}

/** The newest match of one key, as kept while reading a partition. */
interface Kept {
  /** the text to write (no transform), or null: the transform makes it from `matched` at the end */
  text: string | null;
  matched: MatchedRecord | null;
  /** what it is counted as in the memory bound */
  bytes: number;
}

/** What one key costs beyond its text: the map entry, the key, the object. */
const KEY_OVERHEAD = 160;

/** Partitions read at once (their fetches overlap); the memory bound is for all of them together. */
const PARTITIONS_AT_ONCE = 4;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export function createSnapshotter(opts: SnapshotterOptions) {
  const { redis, kafka, log, exporter, dir, topics, decoding, leaseMs, recordTtlMs } = opts;
  const running = new Set<string>();
  let closing = false;

  const save = (tenantId: string, r: ExportRecord) => saveExport(redis, { tenantId, record: r, ttlMs: recordTtlMs });

  /**
   * Validated request: starts the snapshot, or throws 400 (`state_topic`, `subscription_id`), 409 (one running on
   * the subscription) or 503 (this instance runs as many as it may).
   */
  async function start(sub: Subscription, stateTopic: string | null): Promise<ExportRecord> {
    const tenantId = sub.tenant_id;
    if (stateTopic !== null && !topics.includes(stateTopic))
      throw HttpError.badRequest('state_topic', `is not a topic the platform reads; one of: ${topics.join(', ')}`, 'unknown_state_topic');
    if (stateTopic === null && sub.types && sub.types.length > 0 && !sub.types.some((t) => opts.snapshotTypes.includes(t)))
      throw HttpError.badRequest(
        'state_topic',
        `is required: the subscription receives none of the types that carry a key's state in the source topics (${opts.snapshotTypes.join(', ')})`,
        'state_topic_required',
      );
    if (running.size >= opts.maxRunning)
      throw new HttpError(503, 'snapshots_busy', `this instance writes ${running.size} snapshots already; retry shortly`, { headers: { 'retry-after': '10' } });
    const id = newId('exp');
    running.add(id); // the slot is taken before anything is awaited: concurrent requests cannot pass the bound together
    const active = activeSnapshotLease(redis, { tenantId, subId: sub.id });
    let took: Awaited<ReturnType<typeof active.tryTake>>;
    try {
      took = await active.tryTake({ owner: id, ttlMs: leaseMs });
    } catch (err) {
      running.delete(id);
      throw err;
    }
    if (!took.taken) {
      running.delete(id);
      throw new HttpError(409, 'snapshot_running', `a snapshot of this subscription is being written (${took.holder}); wait for it to finish`, {
        extra: { export_id: took.holder },
      });
    }
    const record: ExportRecord = {
      id, subscription_id: sub.id, kind: 'snapshot', status: 'running', interval: { from: null, to: null }, state_topic: stateTopic,
      progress: { phase: 'settling', partitions: 0, partitions_done: 0, records: 0, records_read: 0, written: 0 },
      created_at: new Date().toISOString(), completed_at: null, manifest: null, error: null,
    };
    try {
      await exportLease(redis, { tenantId, exportId: id }).tryTake({ owner: id, ttlMs: leaseMs });
      await save(tenantId, record);
    } catch (err) {
      running.delete(id);
      await active.release({ owner: id }).catch(() => {});
      throw err;
    }
    exporter.track(id, run(sub, record).finally(() => running.delete(id)));
    return record;
  }

  async function run(sub: Subscription, record: ExportRecord): Promise<void> {
    const tenantId = sub.tenant_id;
    const slog = log.child({ export: record.id, subscription: sub.id, tenant: tenantId });
    const leases = [exportLease(redis, { tenantId, exportId: record.id }), activeSnapshotLease(redis, { tenantId, subId: sub.id })];
    let lost = false;
    const renew = setInterval(() => {
      for (const l of leases)
        l.renew({ owner: record.id, ttlMs: leaseMs }).then(
          (ok) => { if (!ok) lost = true; },
          (err) => slog.warn({ err }, 'snapshot lease renewal failed'),
        );
    }, Math.max(100, Math.floor(leaseMs / 3)));
    renew.unref();
    const stopped = (): string | null => (closing ? 'interrupted: the instance writing it shut down; start a new export' : lost ? 'the snapshot lease was lost (this instance stalled longer than the lease)' : null);
    try {
      record.manifest = await write(sub, record, stopped, slog);
      record.status = 'completed';
      slog.info({ count: record.manifest.count, bytes: record.manifest.bytes }, 'snapshot written');
    } catch (err) {
      record.status = 'failed';
      record.error = stopped() ?? (err as Error).message;
      slog.error({ err }, 'snapshot failed');
    } finally {
      clearInterval(renew);
      record.progress = null;
      record.completed_at = new Date().toISOString();
      await save(tenantId, record).catch((err) => slog.error({ err }, 'cannot record the end of the snapshot'));
      for (const l of leases) await l.release({ owner: record.id }).catch(() => {});
    }
  }

  /** Waits until the subscription is unchanged for the settle time; the subscription as it then is. */
  async function settled(sub: Subscription, stopped: () => string | null): Promise<Subscription> {
    let current: Subscription | null = sub;
    for (;;) {
      const wait = Date.parse(current.updated_at) + opts.settleMs - Date.now();
      if (wait <= 0) return current;
      await sleep(Math.min(wait, 500));
      const why = stopped();
      if (why) throw new Error(why);
      current = await opts.loadSubscription(sub.tenant_id, sub.id);
      if (!current) throw new Error('the subscription was deleted');
    }
  }

  async function write(first: Subscription, record: ExportRecord, stopped: () => string | null, slog: Logger): Promise<ExportManifest> {
    const tenantId = first.tenant_id;
    const stateTopic = record.state_topic ?? null;
    const progress = record.progress!;
    const sub = await settled(first, stopped);
    const matcher = matcherOf([compileSubscription(sub)]);
    // a transform's reference lookups read the tenant's records as they are now (docs/transforms.md)
    const references = createReferenceLookups({ redis }).readerFor(tenantId);
    const readTopics = stateTopic === null ? topics : [stateTopic];
    const types = stateTopic === null ? new Set(opts.snapshotTypes) : null;

    // ─── the cut ───
    const admin = kafka.admin();
    await admin.connect();
    const earliest = new Map<string, bigint>();
    try {
      for (const topic of topics) for (const p of await admin.fetchTopicOffsets(topic)) earliest.set(positionField(topic, p.partition), BigInt(p.low));
    } finally {
      await admin.disconnect().catch(() => {});
    }
    const fields = [...earliest.keys()];
    const route = await readRoutePositions(redis, fields); // before the head: see the top of this module
    const snap = await snapshot(redis, { tenantId, subId: sub.id });
    const through = new Map<string, bigint>();
    for (const field of fields) {
      const appended = snap.sourcePositions[field];
      const next = route.get(field);
      const x = [appended === undefined ? -1n : BigInt(appended), next == null ? -1n : BigInt(next) - 1n].reduce((a, b) => (a > b ? a : b));
      if (x >= 0n) through.set(field, x);
    }
    const ranges: PartitionRange[] = [];
    for (const topic of readTopics)
      for (const [field, low] of earliest)
        if (field.slice(0, field.lastIndexOf('/')) === topic) {
          const to = through.get(field);
          if (to !== undefined && to >= low) ranges.push({ topic, partition: Number(field.slice(field.lastIndexOf('/') + 1)), from: low, to });
        }
    ranges.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
    Object.assign(progress, { phase: 'reading', partitions: ranges.length, records: Number(ranges.reduce((s, r) => s + r.to - r.from + 1n, 0n)) });
    await save(tenantId, record);
    slog.info({ head: snap.head, partitions: ranges.length, records: progress.records }, 'snapshot cut');

    // ─── read and write ───
    // records that cannot be the tenant's are passed over before they are decoded (route-core's recordPrefilter)
    const mayMatch = recordPrefilter(tenantId, [], decoding);
    let lastSave = Date.now();
    const saveNow = async (force = false) => {
      if (!force && Date.now() - lastSave < 1000) return;
      lastSave = Date.now();
      await save(tenantId, record).catch((err) => slog.warn({ err }, 'cannot save the snapshot progress'));
    };
    let count = 0;
    let setAside = 0;
    const source: ColdSource = await createColdSource({
      kafka: { ...opts.fetch, onRetry: (r) => slog.warn(r, 'a snapshot fetch failed and is tried again (a broker away, a leader moving)') },
      maxBytesPerPartition: 2 * 1024 * 1024,
    });
    let failure: ((err: Error) => void) | null = null;

    let held = 0;
    /** Reads a few partitions at once up to the cut: per partition and key, the newest match. */
    async function readGroup(group: PartitionRange[]): Promise<Map<string, Kept>[]> {
      const kept = new Map<string, Map<string, Kept>>(group.map((r) => [positionField(r.topic, r.partition), new Map()]));
      let over = false;
      const onRecord = (range: PartitionRange, m: BatchRecord, offset: number) => {
        progress.records_read++;
        if (over) return;
        const field = positionField(range.topic, range.partition);
        const keys = kept.get(field)!;
        const key = m.key && m.key.length > 0 ? m.key.toString('utf8') : null;
        if (m.value === null) {
          // a tombstone: its key is gone (a tombstone naming another tenant in its headers is not this tenant's)
          const named = m.headers?.['ce_tenantid'];
          if (key !== null && (named === undefined || String(named) === tenantId)) {
            const old = keys.get(key);
            if (old) (held -= old.bytes), keys.delete(key);
          }
          return;
        }
        // a record that cannot name the tenant is another tenant's: skipped before it is parsed
        if (!mayMatch(range.topic, m)) return;
        const item = decodeRangeRecord(range, m, offset);
        const matched = matchRecord(item, { topic: range.topic, decoding, matcher, tenantId });
        if (!matched || (types !== null && !types.has(matched.event.type))) return;
        const k = key ?? (typeof matched.event['partitionkey'] === 'string' ? (matched.event['partitionkey'] as string) : null);
        if (k === null) return; // no key: no state of a key
        let entry: Kept;
        if (matched.match.transform) {
          // the transform shapes it at the end; the record's buffers are not kept
          const { record: _record, ...rest } = matched.item;
          entry = { text: null, matched: { ...matched, item: rest }, bytes: KEY_OVERHEAD + k.length * 2 + m.value.length * 6 };
        } else {
          const text = matched.item.json ?? JSON.stringify(matched.event);
          entry = { text, matched: null, bytes: KEY_OVERHEAD + k.length * 2 + text.length * 2 };
        }
        const old = keys.get(k);
        if (old) (held -= old.bytes), keys.delete(k); // re-inserted: the map stays in the order of each key's newest record
        keys.set(k, entry);
        held += entry.bytes;
        if (held > opts.memoryBytes) {
          over = true;
          failure?.(new Error(
            `${group.map((r) => positionField(r.topic, r.partition)).join(', ')}: the newest events of the tenant's keys take more than ` +
              `PIONEER_SNAPSHOT_MEMORY_MB (${Math.round(opts.memoryBytes / 1048576)} MB) after ${[...kept.values()].reduce((n, k) => n + k.size, 0)} keys`,
          ));
        }
      };
      for (let attempt = 0; ; attempt++) {
        const aborted = new Promise<never>((_, reject) => (failure = reject));
        aborted.catch(() => {}); // raced below; a rejection after the race is nobody's
        const watch = setInterval(() => {
          const why = stopped();
          if (why) failure?.(new Error(why));
        }, 200);
        const reading = source.read(group, onRecord);
        reading.catch(() => {}); // an aborted read ends when the source closes
        try {
          await Promise.race([reading, aborted]);
          return [...kept.values()];
        } catch (err) {
          // retention deleted a start meanwhile: read from the earliest offset the partition still has (a range read
          // completely before is read again, into fresh keys)
          if (err instanceof RangeGoneError && attempt < 3) {
            group = group.map((r) => (positionField(r.topic, r.partition) === err.field ? { ...r, from: err.earliest } : r));
            for (const keys of kept.values()) for (const k of keys.values()) held -= k.bytes;
            for (const keys of kept.values()) keys.clear();
            continue;
          }
          throw err;
        } finally {
          clearInterval(watch);
          failure = null;
        }
      }
    }

    async function* lines(): AsyncGenerator<string> {
      for (let g = 0; g < ranges.length; g += PARTITIONS_AT_ONCE) {
        const group = ranges.slice(g, g + PARTITIONS_AT_ONCE);
        const partitions = await readGroup(group);
        progress.phase = 'writing';
        for (const kept of partitions) {
          let out = '';
          for (const entry of kept.values()) {
            const text = entry.text ?? (await appendedText(entry.matched!, undefined, references));
            if (text === null) {
              setAside++;
              continue;
            }
            count++;
            out += `{"cursor":"0-${count}","event":${text}}\n`;
            if (out.length >= 256 * 1024) {
              yield out;
              out = '';
            }
          }
          if (out) yield out;
          for (const entry of kept.values()) held -= entry.bytes;
          kept.clear();
          progress.written = count;
          progress.partitions_done++;
        }
        progress.phase = 'reading';
        await saveNow(true);
        const why = stopped();
        if (why) throw new Error(why);
      }
    }

    const paths = exportPaths(dir, tenantId, record.id);
    await mkdir(paths.dir, { recursive: true });
    let bytes: number;
    let sha256: string;
    const ticker = setInterval(() => void saveNow(), 1000);
    try {
      ({ bytes, sha256 } = await writeExportFile(paths.file, lines()));
    } finally {
      clearInterval(ticker);
      await source.close();
    }
    const last = count > 0 ? `0-${count}` : '0-0';
    // the cursor to continue after: the head, or what the stream trimmed, or (a subscription that never had an
    // event) the last line, which sorts before every entry the stream will get
    const end = [snap.head ?? '0-0', snap.trimmed, last].reduce((a, b) => (compareIds(a, b) >= 0 ? a : b));
    const manifest: ExportManifest = {
      export_id: record.id, subscription_id: sub.id, kind: 'snapshot', format: 'ndjson+gzip', file: `${record.id}.ndjson.gz`,
      count, bytes, sha256, interval: record.interval, start_after: '0-0', first_cursor: count > 0 ? '0-1' : null, end_cursor: end,
      source_positions: Object.fromEntries([...through].map(([f, x]) => [f, String(x)])), created_at: record.created_at,
      state_topic: stateTopic, snapshot_types: types ? [...types] : null, stream_head: snap.head, set_aside: setAside,
    };
    await writeFile(paths.manifest, JSON.stringify(manifest, null, 2) + '\n');
    return manifest;
  }

  return {
    start,
    async close(): Promise<void> {
      closing = true;
    },
  };
}

export type Snapshotter = ReturnType<typeof createSnapshotter>;
