/**
 * Watches the consumers' NDJSON files (FileSink output) and measures, for each event line as it appears,
 * now − the event's `produced_at`: the source-to-handler latency (the line is written by the handler, and
 * seen here at once through inotify), and the part of it until the route appended the event (from the line's
 * cursor, a stream entry id). Counts per phase and subscription, and duplicates (same event id twice in one
 * subscription).
 */
import { watch, type FSWatcher } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import path from 'node:path';

const LINE_RE = /"id":"([^"]+)".*"produced_at":(\d+),"phase":(\d+)/;
/** The line's cursor: the stream entry's id, whose first part is when the route appended it (Redis' clock, ms). */
const CURSOR_RE = /^\{"cursor":"(\d+)-/;
const FILE_RE = /^events-\d{4}-\d{2}-\d{2}\.\d{6}\.ndjson$/;

interface Tail {
  sub: string;
  dir: string;
  file: string | null;
  offset: number;
  rest: string;
  watcher?: FSWatcher;
  busy: boolean;
  again: boolean;
}

export interface PhaseDeliveries {
  latencies: number[];
  /** the part of each latency until the route appended the event (its entry id's time − produced_at) */
  toAppend: number[];
  count: Map<string, number>;
  duplicates: number;
  ids: Set<string>;
}

export function createDeliveryTail() {
  const tails: Tail[] = [];
  const phases = new Map<number, PhaseDeliveries>();
  let latest = { at: 0, latency: 0 };
  let timer: NodeJS.Timeout | undefined;

  const phaseOf = (p: number): PhaseDeliveries => {
    let d = phases.get(p);
    if (!d) phases.set(p, (d = { latencies: [], toAppend: [], count: new Map(), duplicates: 0, ids: new Set() }));
    return d;
  };

  function line(t: Tail, text: string, now: number) {
    const m = LINE_RE.exec(text);
    if (!m) return;
    const d = phaseOf(Number(m[3]));
    const key = `${t.sub} ${m[1]}`;
    if (d.ids.has(key)) {
      d.duplicates++;
      return;
    }
    d.ids.add(key);
    const latency = now - Number(m[2]);
    d.latencies.push(latency);
    const appendedAt = CURSOR_RE.exec(text);
    if (appendedAt) d.toAppend.push(Number(appendedAt[1]) - Number(m[2]));
    d.count.set(t.sub, (d.count.get(t.sub) ?? 0) + 1);
    latest = { at: now, latency };
  }

  async function readNew(t: Tail): Promise<void> {
    if (t.busy) {
      t.again = true;
      return;
    }
    t.busy = true;
    try {
      for (let round = 0; round < 1000; round++) {
        t.again = false;
        const files = (await readdir(t.dir).catch(() => [] as string[])).filter((f) => FILE_RE.test(f)).sort();
        if (t.file === null) t.file = files[0] ?? null;
        if (t.file === null) return;
        const fh = await open(path.join(t.dir, t.file), 'r');
        let grew = false;
        try {
          const buf = Buffer.alloc(1 << 20);
          for (let i = 0; i < 10_000; i++) {
            const { bytesRead } = await fh.read(buf, 0, buf.length, t.offset);
            if (bytesRead === 0) break;
            grew = true;
            t.offset += bytesRead;
            const now = Date.now();
            const text = t.rest + buf.toString('utf8', 0, bytesRead);
            const lines = text.split('\n');
            t.rest = lines.pop()!;
            for (const l of lines) line(t, l, now);
          }
        } finally {
          await fh.close();
        }
        const later = files.find((f) => f > t.file!);
        if (!grew && later && t.rest === '') {
          t.file = later;
          t.offset = 0;
          continue;
        }
        if (!t.again && !grew) return;
      }
    } finally {
      t.busy = false;
    }
  }

  const poll = () => {
    for (const t of tails) void readNew(t);
  };

  return {
    /** Starts following the files of `sub` in `dir` (the directory must exist). */
    follow(sub: string, dir: string) {
      const t: Tail = { sub, dir, file: null, offset: 0, rest: '', busy: false, again: false };
      t.watcher = watch(dir, () => void readNew(t));
      tails.push(t);
      timer ??= setInterval(poll, 100);
    },
    phase(p: number): PhaseDeliveries {
      return phaseOf(p);
    },
    /** Forgets a phase's ids and latencies once reported. */
    drop(p: number) {
      phases.delete(p);
    },
    /** The latency of the last line seen and when it was seen. */
    latest: () => latest,
    async flush() {
      await Promise.all(tails.map((t) => readNew(t)));
    },
    stop() {
      clearInterval(timer);
      for (const t of tails) t.watcher?.close();
    },
  };
}
