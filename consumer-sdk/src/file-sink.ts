/**
 * The default handler: a subscription into NDJSON files, one line per event, `{"cursor":"…","event":{…}}`,
 * named `<prefix>-<YYYY-MM-DD>.<NNNNNN>.ndjson` (UTC day of writing, then a sequence), so sorting the names
 * sorts the events. A new file starts each day and when the current one reaches `maxFileBytes`; a batch is
 * never split across files.
 *
 * Durability: each batch is appended with one write and fdatasync'd (and the directory fsync'd when the
 * file was created) before the handler resolves, so before the consumer moves its checkpoint. After a crash,
 * `recover` looks at the newest file's tail: a torn last line (no newline, or not JSON) is cut off, and the
 * events after the checkpoint's cursor are reported as already held, so they are neither lost nor written
 * twice.
 */
import { mkdir, open, readdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ConsumerError } from './errors.ts';
import { compareCursors } from './cursor.ts';
import { fsyncDirectory } from './durable-files.ts';
import type { Delivery, Handler, HeldEntry } from './handler.ts';
import { silentLogger, type Logger } from './logger.ts';

export interface SinkFile {
  name: string;
  path: string;
  day: string;
  seq: number;
  size: number;
  modified: Date;
}

interface OpenFile {
  name: string;
  day: string;
  seq: number;
  fh: FileHandle;
  size: number;
}

const NAME_RE = /^(.+)-(\d{4}-\d{2}-\d{2})\.(\d{6})\.ndjson$/;
const NEWLINE = 0x0a;
const READ_CHUNK = 64 * 1024;

export class FileSink implements Handler {
  readonly dir: string;
  private readonly prefix: string;
  private readonly maxFileBytes: number;
  private readonly clock: () => Date;
  private readonly log: Logger;
  private current: OpenFile | null = null;
  private dirReady = false;

  constructor({
    dir,
    prefix = 'events',
    maxFileBytes = 256 * 1024 * 1024,
    clock = () => new Date(),
    log = silentLogger,
  }: { dir: string; prefix?: string; maxFileBytes?: number; clock?: () => Date; log?: Logger }) {
    if (!/^[A-Za-z0-9_.]+$/.test(prefix)) throw new ConsumerError('bad_config', `file prefix "${prefix}" may hold only letters, digits, "_" and "."`);
    this.dir = dir;
    this.prefix = prefix;
    this.maxFileBytes = maxFileBytes;
    this.clock = clock;
    this.log = log.child({ component: 'file-sink' });
  }

  /** The sink's files, oldest first. */
  async files(): Promise<SinkFile[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: SinkFile[] = [];
    for (const name of names) {
      const m = NAME_RE.exec(name);
      if (!m || m[1] !== this.prefix) continue;
      const path = join(this.dir, name);
      const st = await stat(path);
      out.push({ name, path, day: m[2]!, seq: Number(m[3]), size: st.size, modified: st.mtime });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async handle(batch: Delivery[]): Promise<void> {
    if (batch.length === 0) return;
    let text = '';
    for (const d of batch) text += `{"cursor":${JSON.stringify(d.cursor)},"event":${d.json ?? JSON.stringify(d.event)}}\n`;
    const buf = Buffer.from(text, 'utf8');
    const file = await this.fileFor();
    const startSize = file.size;
    try {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await file.fh.write(buf, off, buf.length - off, startSize + off);
        off += bytesWritten;
      }
      await file.fh.datasync();
      file.size += buf.length;
    } catch (err) {
      // leave no partial batch behind: the retry writes it again from the same offset
      await file.fh.truncate(startSize).catch(() => {});
      throw err;
    }
    if (file.size >= this.maxFileBytes) await this.closeCurrent();
  }

  async close(): Promise<void> {
    await this.closeCurrent();
  }

  /**
   * Cuts a torn tail off the newest file and returns the entries after `after` (ascending; at most `limit`,
   * the newest). Empty files left by a crash between creating a file and writing to it are removed.
   */
  async recover(after: string | null, limit: number): Promise<HeldEntry[]> {
    await this.closeCurrent();
    const files = await this.files();
    const found: HeldEntry[] = [];
    let newest = true;
    for (let i = files.length - 1; i >= 0; i--) {
      const f = files[i]!;
      if (newest && f.size === 0) {
        await unlink(f.path);
        await fsyncDirectory(this.dir);
        this.log.info('removed an empty file left by a crash', { file: f.name });
        continue;
      }
      const done = await this.scanBackwards(f, after, limit, found, newest);
      newest = false;
      if (done) break;
    }
    return found.reverse();
  }

  /** Reads `f` from its end, line by line, collecting entries after `after`; true when the scan can stop. */
  private async scanBackwards(f: SinkFile, after: string | null, limit: number, found: HeldEntry[], repairTail: boolean): Promise<boolean> {
    const fh = await open(f.path, repairTail ? 'r+' : 'r');
    try {
      const size = (await fh.stat()).size;
      let pos = size; // buf holds the file's bytes from pos on that are not yet scanned
      let buf: Buffer = Buffer.alloc(0);
      let checkingTail = repairTail;
      let cutAt = -1;
      for (;;) {
        const from = buf.length - 2;
        const nl = from >= 0 ? buf.lastIndexOf(NEWLINE, from) : -1;
        if (nl < 0 && pos > 0) {
          const start = Math.max(0, pos - READ_CHUNK);
          const chunk = Buffer.alloc(pos - start);
          await fh.read(chunk, 0, chunk.length, start);
          buf = Buffer.concat([chunk, buf]);
          pos = start;
          continue;
        }
        if (buf.length === 0) break;
        const raw = buf.subarray(nl + 1);
        const lineStart = pos + nl + 1;
        buf = buf.subarray(0, nl + 1);
        const complete = raw[raw.length - 1] === NEWLINE;
        const entry = complete ? parseLine(raw.subarray(0, raw.length - 1)) : null;
        if (!entry) {
          if (checkingTail) {
            cutAt = lineStart;
            continue;
          }
          throw new ConsumerError('sink_corrupt', `${f.path}: the line at byte ${lineStart} is not an event line; was the file changed by something else?`);
        }
        if (checkingTail) {
          checkingTail = false;
          if (cutAt >= 0) await this.cut(fh, f, cutAt, size);
        }
        if (compareCursors(entry.cursor, after) <= 0) return true;
        found.push(entry);
        if (found.length >= limit) return true;
      }
      if (checkingTail && cutAt >= 0) await this.cut(fh, f, cutAt, size);
      return false;
    } finally {
      await fh.close();
    }
  }

  private async cut(fh: FileHandle, f: SinkFile, at: number, size: number): Promise<void> {
    await fh.truncate(at);
    await fh.sync();
    this.log.warn('cut a torn last line written before a crash', { file: f.name, bytes: size - at });
  }

  private async fileFor(): Promise<OpenFile> {
    const day = this.clock().toISOString().slice(0, 10);
    if (this.current && this.current.day >= day) return this.current;
    await this.closeCurrent();
    if (!this.dirReady) {
      await mkdir(this.dir, { recursive: true });
      this.dirReady = true;
    }
    const files = await this.files();
    const last = files[files.length - 1];
    // append to the newest file when it is today's and has room; never write a name that sorts before it
    if (last && last.day >= day && last.size < this.maxFileBytes) {
      const fh = await open(last.path, 'r+');
      this.current = { name: last.name, day: last.day, seq: last.seq, fh, size: (await fh.stat()).size };
      return this.current;
    }
    const useDay = last && last.day > day ? last.day : day;
    const seq = last && last.day === useDay ? last.seq + 1 : 1;
    const name = `${this.prefix}-${useDay}.${String(seq).padStart(6, '0')}.ndjson`;
    const fh = await open(join(this.dir, name), 'wx+', 0o640);
    await fsyncDirectory(this.dir);
    this.log.info('opened a new file', { file: name });
    this.current = { name, day: useDay, seq, fh, size: 0 };
    return this.current;
  }

  private async closeCurrent(): Promise<void> {
    const c = this.current;
    this.current = null;
    if (c) await c.fh.close();
  }
}

function parseLine(line: Buffer): HeldEntry | null {
  try {
    const v = JSON.parse(line.toString('utf8')) as { cursor?: unknown; event?: { source?: unknown; id?: unknown; time?: unknown } };
    if (typeof v.cursor !== 'string' || !v.event || typeof v.event.source !== 'string' || typeof v.event.id !== 'string') return null;
    return { cursor: v.cursor, source: v.event.source, id: v.event.id, time: typeof v.event.time === 'string' ? v.event.time : undefined };
  } catch {
    return null;
  }
}
