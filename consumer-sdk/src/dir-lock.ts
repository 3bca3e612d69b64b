/**
 * One consumer per directory: a lock file holding the owner's pid. A lock left by a process that is gone
 * (kill -9) is taken over; one held by a live process is a configuration error.
 */
import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ConsumerError } from './errors.ts';

export interface DirLock {
  release(): Promise<void>;
}

export async function lockDirectory(dir: string, pid = process.pid): Promise<DirLock> {
  const path = join(dir, 'consumer.lock');
  for (let tries = 0; tries < 3; tries++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      await fh.writeFile(`${pid}\n`);
      await fh.close();
      return { release: () => unlink(path).catch(() => {}) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(owner) && owner > 0 && owner !== pid && alive(owner))
      throw new ConsumerError('bad_config', `another consumer (pid ${owner}) is running in ${dir}; one directory serves one consumer`);
    await unlink(path).catch(() => {});
  }
  throw new ConsumerError('bad_config', `cannot lock ${dir}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
