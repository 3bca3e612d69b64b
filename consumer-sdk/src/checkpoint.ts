/**
 * The checkpoint: where a consumer stands in its subscription, in one small JSON file replaced atomically after
 * every batch the handler accepted. It holds the cursor to resume after, the time of the last event, a count,
 * and the window of recently handed-over event ids (see recent-ids.ts):
 *
 *   {"version":1,"subscription":"sub_…","cursor":"1767225600000-3","updated_at":"…","last_event_time":"…",
 *    "events":12345,"recent":["/bank/ledger 8f1c…", …]}
 *
 * A consumer with no checkpoint starts after its `startAfter` cursor (or at the start of the buffer).
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConsumerError } from './errors.ts';
import { isCursor } from './cursor.ts';
import { writeFileAtomic } from './durable-files.ts';

export interface Checkpoint {
  subscription: string;
  /** the last event handled; null before the first */
  cursor: string | null;
  updatedAt: string;
  /** the CloudEvent `time` of the last event handled (or the time it was handled, if it had none) */
  lastEventTime: string | null;
  /** events handed over since the checkpoint was created */
  events: number;
  /** `source id` of recently handed-over events, oldest first */
  recent: string[];
}

export interface CheckpointStore {
  readonly path: string;
  load(): Promise<Checkpoint | null>;
  save(checkpoint: Checkpoint): Promise<void>;
}

export function createCheckpointStore(path: string): CheckpointStore {
  let dirReady = false;
  return {
    path,
    async load() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
      return parseCheckpoint(text, path);
    },
    async save(cp) {
      if (!dirReady) {
        await mkdir(dirname(path), { recursive: true });
        dirReady = true;
      }
      await writeFileAtomic(path, serializeCheckpoint(cp));
    },
  };
}

export function serializeCheckpoint(cp: Checkpoint): string {
  return (
    JSON.stringify({
      version: 1,
      subscription: cp.subscription,
      cursor: cp.cursor,
      updated_at: cp.updatedAt,
      last_event_time: cp.lastEventTime,
      events: cp.events,
      recent: cp.recent,
    }) + '\n'
  );
}

export function parseCheckpoint(text: string, path = 'checkpoint'): Checkpoint {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new ConsumerError('checkpoint_corrupt', `${path} is not valid JSON; restore it from a backup or remove it and start with --start-after <cursor>`);
  }
  const bad = (field: string) => new ConsumerError('checkpoint_corrupt', `${path}: field "${field}" is missing or invalid`);
  if (raw === null || typeof raw !== 'object' || raw['version'] !== 1) throw bad('version');
  if (typeof raw['subscription'] !== 'string') throw bad('subscription');
  if (raw['cursor'] !== null && !isCursor(raw['cursor'])) throw bad('cursor');
  const recent = raw['recent'] ?? [];
  if (!Array.isArray(recent) || !recent.every((r) => typeof r === 'string')) throw bad('recent');
  return {
    subscription: raw['subscription'],
    cursor: raw['cursor'] as string | null,
    updatedAt: typeof raw['updated_at'] === 'string' ? raw['updated_at'] : new Date(0).toISOString(),
    lastEventTime: typeof raw['last_event_time'] === 'string' ? raw['last_event_time'] : null,
    events: typeof raw['events'] === 'number' ? raw['events'] : 0,
    recent: recent as string[],
  };
}
