/**
 * The benchmark's processes: each function in a process of its own (the local host, adapters/local/main.ts,
 * compiled to JavaScript and run on plain node as the container image does: one function per process),
 * consumers as the compiled pioneer-consumer CLI on plain node, and
 * memory sampling from /proc (VmRSS sampled, VmHWM at the end).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The variables every benchmarked function needs: where Kafka and Redis are, the admin key, and a fresh key to
 * seal webhook secrets with (required by the functions, though the benchmarks register no webhooks).
 */
export function benchPlatformEnv(
  cfg: { PIONEER_KAFKA_BROKERS: string[]; PIONEER_REDIS_URL?: string; PIONEER_REDIS_CLUSTER_NODES?: string[] },
  adminKey: string,
): Record<string, string> {
  return {
    PIONEER_KAFKA_BROKERS: cfg.PIONEER_KAFKA_BROKERS.join(','),
    ...(cfg.PIONEER_REDIS_CLUSTER_NODES
      ? { PIONEER_REDIS_CLUSTER_NODES: cfg.PIONEER_REDIS_CLUSTER_NODES.join(',') }
      : { PIONEER_REDIS_URL: cfg.PIONEER_REDIS_URL ?? '' }),
    PIONEER_ADMIN_KEY: adminKey,
    PIONEER_SECRET_KEYS: `bench:${randomBytes(32).toString('base64')}`,
    PIONEER_LOG_LEVEL: 'warn',
  };
}

export interface Managed {
  name: string;
  child: ChildProcess;
  output(): string;
  /** resolves with the exit code once the process is gone */
  exited: Promise<number | null>;
}

function manage(name: string, child: ChildProcess): Managed {
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { name, child, output: () => out, exited };
}

/**
 * Compiles the functions and their hosts to `outDir` as the container image does (tsconfig.build.json, the Lua
 * scripts copied beside the compiled Redis client); returns the compiled local host's main.js. `outDir` must
 * lie inside the repository, so that node finds node_modules and package.json ("type": "module") above it.
 */
export function buildFunctions(outDir: string): string {
  execFileSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', outDir], { cwd: ROOT, stdio: 'inherit' });
  const scripts = path.join(outDir, 'platform/redis/scripts');
  mkdirSync(scripts, { recursive: true });
  for (const f of readdirSync(path.join(ROOT, 'platform/redis/scripts'))) if (f.endsWith('.lua')) copyFileSync(path.join(ROOT, 'platform/redis/scripts', f), path.join(scripts, f));
  cpSync(path.join(ROOT, 'portal'), path.join(outDir, 'portal'), { recursive: true }); // as the image lays it out (Dockerfile)
  return path.join(outDir, 'adapters/local/main.js');
}

/**
 * Starts one function with the local host — the compiled `main` (buildFunctions) on plain node, as deployed, or
 * the TypeScript sources through tsx when `main` is not given; resolves with its URL once it listens.
 * `profileDir` runs it with `node --cpu-prof`, the profile written there when it stops.
 */
export async function startFunction(
  name: string,
  env: Record<string, string>,
  {
    main, profileDir, profileLabel = name, nodeOptions, timeoutMs = 90_000,
  }: { main?: string; profileDir?: string; profileLabel?: string; nodeOptions?: string; timeoutMs?: number } = {},
) {
  if (profileDir) rmSync(path.join(profileDir, profileLabel), { recursive: true, force: true });
  // one directory per function: with tsx, the loader's worker thread writes a profile of its own beside the main one
  const args = [
    ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(profileDir, profileLabel)}`] : []),
    ...(nodeOptions ? nodeOptions.split(/\s+/).filter(Boolean) : []),
    ...(main ? [main] : ['--import', 'tsx', path.join(ROOT, 'adapters/local/main.ts')]), name,
  ];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...env, [`PIONEER_${name.toUpperCase()}_PORT`]: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const m = manage(name, child);
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < deadline; i++) {
    const match = new RegExp(`pioneer: ${name} listening on (\\S+)`).exec(m.output());
    if (match) return { ...m, url: match[1]! };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`function ${name} did not start: ${m.output().slice(-2000)}`);
}

/** The NODE_OPTIONS the container image sets (Dockerfile): the functions run here with the heap they are deployed with. */
export function imageNodeOptions(): string {
  return /^ENV NODE_OPTIONS="([^"]*)"/m.exec(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))?.[1] ?? '';
}

/** The NODE_OPTIONS consumer-sdk/README.md recommends for the CLI ("Memory"): the consumers run as a customer following it would. */
export function consumerNodeOptions(): string {
  return /^export NODE_OPTIONS="([^"]*)"/m.exec(readFileSync(path.join(ROOT, 'consumer-sdk/README.md'), 'utf8'))?.[1] ?? '';
}

/** Compiles the consumer SDK to `outDir` (as published: JavaScript on plain node); returns the CLI's path. */
export function buildConsumerCli(outDir: string): string {
  execFileSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', path.join(ROOT, 'consumer-sdk/tsconfig.json'), '--outDir', outDir], { cwd: ROOT, stdio: 'inherit' });
  return path.join(outDir, 'cli.js');
}

/** Runs `pioneer-consumer run` for one subscription into `dir`. */
export function startConsumer(
  cli: string,
  opts: { url: string; apiKey: string; subscription: string; dir: string; startAfter?: string; name: string; nodeOptions?: string },
): Managed {
  const child = spawn(process.execPath, [cli, 'run'], {
    cwd: ROOT,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? '',
      PIONEER_URL: opts.url,
      PIONEER_API_KEY: opts.apiKey,
      PIONEER_SUBSCRIPTION: opts.subscription,
      PIONEER_DIR: opts.dir,
      PIONEER_LOG_LEVEL: 'warn',
      PIONEER_PROGRESS_INTERVAL_MS: '0',
      ...(opts.nodeOptions ? { NODE_OPTIONS: opts.nodeOptions } : {}),
      ...(opts.startAfter ? { PIONEER_START_AFTER: opts.startAfter } : {}),
      // the SDK's batching as the benchmark was asked to set it (BENCH_CONSUMER_BATCH_WAIT_MS), else its default
      ...(process.env['BENCH_CONSUMER_BATCH_WAIT_MS'] ? { PIONEER_MAX_BATCH_WAIT_MS: process.env['BENCH_CONSUMER_BATCH_WAIT_MS'] } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return manage(opts.name, child);
}

/** Stops a process with SIGTERM (then SIGKILL after `graceMs`); resolves with its exit code. */
export async function stopProcess(m: Managed, graceMs = 20_000): Promise<number | null> {
  if (m.child.exitCode !== null || m.child.signalCode !== null) return m.child.exitCode;
  m.child.kill('SIGTERM');
  const timer = setTimeout(() => m.child.kill('SIGKILL'), graceMs);
  const code = await m.exited;
  clearTimeout(timer);
  return code;
}

/** VmRSS and VmHWM of `pid` in MiB (null when it is gone). */
export function memoryOf(pid: number | undefined): { rss: number; hwm: number } | null {
  if (pid === undefined) return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(status)?.[1] ?? 0);
    return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
  } catch {
    return null;
  }
}

/**
 * Samples VmRSS of named processes every `intervalMs`: the peak per process since the last `take()`, and
 * the VmHWM seen last (the process's peak over its whole life).
 */
export function createMemorySampler(intervalMs = 500) {
  const pids = new Map<string, number>();
  const peak = new Map<string, number>();
  const hwm = new Map<string, number>();
  const sample = () => {
    for (const [name, pid] of pids) {
      const m = memoryOf(pid);
      if (!m) continue;
      peak.set(name, Math.max(peak.get(name) ?? 0, m.rss));
      hwm.set(name, Math.max(hwm.get(name) ?? 0, m.hwm));
    }
  };
  const timer = setInterval(sample, intervalMs);
  timer.unref();
  return {
    watch(name: string, pid: number | undefined) {
      if (pid !== undefined) pids.set(name, pid);
    },
    /** Stops sampling `name` and forgets its figures (a process of the same name may follow). */
    forget(name: string) {
      pids.delete(name);
      peak.delete(name);
      hwm.delete(name);
    },
    /** peak VmRSS per process (MiB) since the last take */
    take(): Record<string, number> {
      sample();
      const out: Record<string, number> = {};
      for (const [name, v] of peak) out[name] = Number(v.toFixed(1));
      peak.clear();
      return out;
    },
    /** VmHWM per process (MiB): its peak over its life */
    highWater(): Record<string, number> {
      sample();
      return Object.fromEntries([...hwm].map(([k, v]) => [k, Number(v.toFixed(1))]));
    },
    stop() {
      clearInterval(timer);
    },
  };
}

/** Reads Prometheus counters from `url`/metrics: the sum over labels of each named metric. */
export async function scrapeCounters(url: string, names: string[]): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-z_:]+)(\{[^}]*\})?\s+([0-9.eE+-]+)/.exec(line);
    if (m && m[1]! in out) out[m[1]!]! += Number(m[3]);
  }
  return out;
}

/** CPU seconds (user + system) `pid` has used so far, or null when it is gone. */
export function cpuSecondsOf(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return null;
  }
}

/** The main thread's profile among those `node --cpu-prof` wrote to `dir` (the largest file). */
export function mainProfile(dir: string): string | null {
  let best: { file: string; size: number } | null = null;
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  } catch {
    return null;
  }
  for (const f of files) {
    const size = statSync(path.join(dir, f)).size;
    if (!best || size > best.size) best = { file: path.join(dir, f), size };
  }
  return best?.file ?? null;
}

/** What a route process did while catching up on a topic: read from its counters and /proc between its first event and the last. */
export interface CatchUp {
  events: number;
  seconds: number;
  events_per_s: number;
  appends_per_event: number;
  /** events read again after a batch was handed over a second time (a rebalance, a retry), skipped as appended: per event */
  duplicates_per_event: number;
  /** CPU of the route process, the broker and Redis per event (µs) */
  route_us_per_event: number;
  kafka_us_per_event: number;
  redis_us_per_event: number;
  /** the route's other counters named in `extra`, at the end */
  counters: Record<string, number>;
}

/**
 * Samples a route process (`url`, `pid`) every 100 ms until it has read `count` events: events/s and the CPU per
 * event of the route, the broker (`pids.kafka`) and Redis (`pids.redis`) from the first sample that saw an event
 * to the last (start-up excluded). Throws when it has not read them by `timeoutMs`.
 */
export async function measureCatchUp(
  route: { url: string; pid: number | undefined },
  count: number,
  { pids = {}, extra = [], timeoutMs = 900_000 }: { pids?: { kafka?: number; redis?: number }; extra?: string[]; timeoutMs?: number } = {},
): Promise<CatchUp> {
  const cpu = (pid: number | undefined) => cpuSecondsOf(pid) ?? 0;
  const sample = async () => {
    const c = await scrapeCounters(route.url, ['pioneer_route_events_total', 'pioneer_route_appends_total', 'pioneer_route_duplicates_total', ...extra]);
    return {
      t: performance.now(), c, events: c['pioneer_route_events_total']!, appends: c['pioneer_route_appends_total']!, duplicates: c['pioneer_route_duplicates_total']!,
      route: cpu(route.pid), kafka: cpu(pids.kafka), redis: cpu(pids.redis),
    };
  };
  let first: Awaited<ReturnType<typeof sample>> | null = null;
  let last: Awaited<ReturnType<typeof sample>> | null = null;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const s = await sample();
    if (!first && s.events > 0) first = s;
    last = s;
    if (s.events >= count) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!first || !last || last.events < count) throw new Error(`the route read ${last?.events ?? 0} of ${count} events in ${timeoutMs / 1000} s`);
  const events = last.events - first.events;
  const seconds = (last.t - first.t) / 1000;
  const perEvent = (from: number, to: number) => Number((((to - from) * 1e6) / events).toFixed(1));
  return {
    events,
    seconds: Number(seconds.toFixed(2)),
    events_per_s: Math.round(events / seconds),
    appends_per_event: Number((last.appends / last.events).toFixed(3)),
    duplicates_per_event: Number((last.duplicates / last.events).toFixed(3)),
    route_us_per_event: perEvent(first.route, last.route),
    kafka_us_per_event: perEvent(first.kafka, last.kafka),
    redis_us_per_event: perEvent(first.redis, last.redis),
    counters: Object.fromEntries(extra.map((n) => [n, last!.c[n]!])),
  };
}
