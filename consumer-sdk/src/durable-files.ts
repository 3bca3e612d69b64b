/**
 * Writing files so they survive a crash: fsync the file, fsync its directory when an entry in it was created
 * or renamed, and replace small files atomically (temp file, fsync, rename, fsync the directory).
 */
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export async function fsyncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replaces `path` with `content` so that a crash leaves either the old or the new file, never a torn one.
 * One writer per file: the temp file's name is fixed, so a crashed writer's leftover is simply overwritten.
 */
export async function writeFileAtomic(path: string, content: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  await fsyncDirectory(dir);
}
