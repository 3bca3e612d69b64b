/**
 * Runs the pioneer-consumer CLI in a child process for tests, with its JSON-line logs collected.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, waitFor } from '../../test/support/helpers.ts';

export const CLI = join(ROOT, 'consumer-sdk/src/cli.ts');

export interface CliProcess {
  child: ChildProcess;
  /** stderr, as JSON-line log records */
  logs(): Record<string, any>[];
  stderr(): string;
  stdout(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** the process's peak resident set (VmHWM, KiB) as last sampled */
  peakRssKiB(): number;
}

/** Builds the package as published (tsc with its own tsconfig) into `outDir`; returns the compiled CLI's path. */
export function buildPackage(outDir: string): string {
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', join(ROOT, 'consumer-sdk/tsconfig.json'), '--outDir', outDir], { cwd: ROOT, stdio: 'inherit' });
  return join(outDir, 'cli.js');
}

/**
 * Runs the CLI from its TypeScript sources, from `compiled` (a built cli.js) with plain node, or as `executable`
 * (the single executable, run by itself). `env` replaces PATH and HOME when it sets them.
 */
export function startCli(args: string[], env: Record<string, string>, { compiled, executable }: { compiled?: string; executable?: string } = {}): CliProcess {
  const argv = compiled ? [compiled, ...args] : ['--import', 'tsx', CLI, ...args];
  const child = spawn(executable ?? process.execPath, executable ? args : argv, {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  let peak = 0;
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.on('data', (d) => (out += d));
  const sample = () => {
    try {
      const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]));
    } catch {
      // gone
    }
  };
  const sampler = setInterval(sample, 100);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      clearInterval(sampler);
      resolve({ code, signal });
    }),
  );
  return {
    child,
    stderr: () => err,
    stdout: () => out,
    logs: () =>
      err
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, any>];
          } catch {
            return [];
          }
        }),
    exited,
    peakRssKiB: () => {
      sample();
      return peak;
    },
  };
}

/** Waits for a log line with `msg`. */
export function waitForLog(p: CliProcess, msg: string, timeout = 30000) {
  return waitFor(() => p.logs().find((l) => l['msg'] === msg), { timeout, message: `log "${msg}"; stderr so far:\n${p.stderr().slice(-2000)}` });
}
