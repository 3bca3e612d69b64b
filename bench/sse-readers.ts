/**
 * The gateway under many open event streams: 2,000 SSE readers (40 tenants × 50 subscriptions, one stream
 * each, the default per-tenant limit) against one gateway process, events appended straight to the
 * subscription streams in Redis as the route appends them.
 *
 *   1. idle: the gateway's RSS and Redis connections with every stream open and nothing flowing
 *   2. fan-out: one event appended to each of the 2,000 streams at once (one pipeline), BENCH_ROUNDS times:
 *      the latency from the append to its arrival on each stream (p50, p99, and the last of the 2,000)
 *   3. steady: BENCH_RATE events/s to random subscriptions for BENCH_SECONDS: latency per event, and the CPU
 *      the gateway and redis-server spent on it
 * Prints a table and writes bench/results/sse-readers[-<label>].json.
 *
 *   scripts/bench.sh --sse               (starts Kafka and Redis, runs this, stops them)
 *   PIONEER_KAFKA_BROKERS=… PIONEER_REDIS_URL=… npx tsx bench/sse-readers.ts
 *   BENCH_TREE=<dir> BENCH_LABEL=before …  runs the functions of another source tree, e.g. an earlier commit:
 *     mkdir -p .run/before && git archive <commit> | tar -x -C .run/before
 * The functions run through tsx from the tree's sources, with the image's NODE_OPTIONS.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { cpus } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { Redis } from 'ioredis';
import { commonSchema, env, loadConfig } from '../platform/config/env.ts';
import { generateApiKey } from '../platform/auth/api-keys.ts';
import { keys } from '../platform/redis/keys.ts';
import { ROOT, benchPlatformEnv, cpuSecondsOf, imageNodeOptions, memoryOf, startFunction, stopProcess } from './processes.ts';
import { say, sleep, percentile, call } from './common.ts';

const cfg = loadConfig(
  commonSchema.pick({ PIONEER_KAFKA_BROKERS: true }).extend({
    PIONEER_REDIS_URL: env.url(['redis', 'rediss']),
    BENCH_TENANTS: env.int(1, 1000).default(40),
    BENCH_SUBSCRIPTIONS: env.int(1, 1000).default(50),
    BENCH_ROUNDS: env.int(1, 1000).default(20),
    BENCH_RATE: env.int(1, 100_000).default(1000),
    BENCH_SECONDS: env.int(1, 3600).default(10),
    /** PIONEER_SSE_READERS of the gateway (unset: its default; a gateway without shared readers ignores it) */
    BENCH_READERS: env.int(1, 64).optional(),
    /** PIONEER_SSE_READ_LINGER_MS of the gateway (unset: its default) */
    BENCH_LINGER_MS: env.int(0, 1000).optional(),
    BENCH_TREE: z.string().default(ROOT),
    BENCH_LABEL: z.string().regex(/^[\w.-]*$/).default(''),
    BENCH_NODE_OPTIONS: z.string().default(imageNodeOptions()),
    BENCH_OUT: z.string().default(path.join(ROOT, 'bench/results')),
  }),
);


const summary = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return { p50_ms: percentile(s, 50), p99_ms: percentile(s, 99), max_ms: s[s.length - 1] ?? NaN };
};


/** One open SSE stream: records when each benchmark event (by seq) arrived. */
interface Reader {
  key: string;
  arrived: Map<number, number>;
  close(): void;
}

const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

function openReader(url: string, apiKey: string, key: string): Promise<Reader> {
  return new Promise((resolve, reject) => {
    const arrived = new Map<number, number>();
    const req = http.get(url, { agent, headers: { authorization: `Bearer ${apiKey}`, accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`stream answered ${res.statusCode}`));
        res.resume();
        return;
      }
      res.setEncoding('utf8');
      let opened = false;
      res.on('data', (chunk: string) => {
        const now = Date.now();
        if (!opened) {
          opened = true;
          resolve({ key, arrived, close: () => req.destroy() });
        }
        for (const m of chunk.matchAll(/"seq":(\d+)/g)) arrived.set(Number(m[1]), now);
      });
    });
    req.on('error', (err) => (err.message === 'socket hang up' ? undefined : reject(err)));
  });
}

async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const get = (f: string) => Number(new RegExp(`${f}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return get('used_cpu_sys') + get('used_cpu_user');
}
async function connectedClients(redis: Redis): Promise<number> {
  return Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))?.[1] ?? NaN);
}
async function gatewayConnections(redis: Redis): Promise<number> {
  return ((await redis.client('LIST')) as string).split('\n').filter((l) => / name=pioneer-gateway /.test(l)).length;
}

const eventJson = (tenantId: string, seq: number, t: number) =>
  `{"specversion":"1.0","id":"bench-${seq}","source":"/bench/sse","type":"bench.tick","tenantid":"${tenantId}","time":"${new Date(t).toISOString()}","datacontenttype":"application/json","data":{"seq":${seq},"t":${t}}}`;

async function main(): Promise<void> {
  const redis = new Redis(cfg.PIONEER_REDIS_URL, { maxRetriesPerRequest: 3 });
  const adminKey = generateApiKey();
  const fnEnv: Record<string, string> = {
    ...benchPlatformEnv(cfg, adminKey),
    ...(cfg.BENCH_READERS !== undefined ? { PIONEER_SSE_READERS: String(cfg.BENCH_READERS) } : {}),
    ...(cfg.BENCH_LINGER_MS !== undefined ? { PIONEER_SSE_READ_LINGER_MS: String(cfg.BENCH_LINGER_MS) } : {}),
    PIONEER_SSE_MAX_PER_TENANT: String(cfg.BENCH_SUBSCRIPTIONS),
  };
  const tree = path.resolve(cfg.BENCH_TREE);
  const fnOpts = { main: path.join(tree, 'adapters/local/main.ts'), nodeOptions: `${cfg.BENCH_NODE_OPTIONS} --import tsx` };
  say(`starting subscriptions and gateway from ${tree}`);
  const subscriptionsFn = await startFunction('subscriptions', fnEnv, fnOpts);
  const gateway = await startFunction('gateway', fnEnv, fnOpts);
  const readers: Reader[] = [];
  try {
    const clientsBefore = await connectedClients(redis);
    const gatewayRssIdleNoStreams = memoryOf(gateway.child.pid)!.rss;

    say(`${cfg.BENCH_TENANTS} tenants × ${cfg.BENCH_SUBSCRIPTIONS} subscriptions`);
    const subs: { tenantId: string; key: string; url: string; apiKey: string }[] = [];
    for (let t = 0; t < cfg.BENCH_TENANTS; t++) {
      const tenant = await call(subscriptionsFn.url, adminKey, 'POST', '/v1/tenants', { name: `bench-${t}` });
      const created = await Promise.all(
        Array.from({ length: cfg.BENCH_SUBSCRIPTIONS }, () => call(subscriptionsFn.url, tenant.key.key, 'POST', '/v1/subscriptions', { types: ['bench.tick'] })),
      );
      for (const s of created)
        subs.push({ tenantId: tenant.id, key: keys.stream(tenant.id, s.id), url: `${gateway.url}/v1/subscriptions/${s.id}/events`, apiKey: tenant.key.key });
    }

    say(`opening ${subs.length} event streams`);
    const opening = Date.now();
    for (let i = 0; i < subs.length; i += 200) readers.push(...(await Promise.all(subs.slice(i, i + 200).map((s) => openReader(s.url, s.apiKey, s.key)))));
    const openMs = Date.now() - opening;
    await sleep(2000);
    const idle = {
      gateway_rss_mib: Number(memoryOf(gateway.child.pid)!.rss.toFixed(1)),
      gateway_rss_without_streams_mib: Number(gatewayRssIdleNoStreams.toFixed(1)),
      redis_connected_clients: await connectedClients(redis),
      redis_connected_clients_before_streams: clientsBefore,
      gateway_connections: await gatewayConnections(redis),
    };
    say(`idle: gateway RSS ${idle.gateway_rss_mib} MiB, Redis clients ${idle.redis_connected_clients} (gateway ${idle.gateway_connections})`);

    // ---- fan-out: one event to every stream at once
    let seq = 0;
    const rounds: { p50_ms: number; p99_ms: number; max_ms: number; missing: number }[] = [];
    for (let r = 0; r < cfg.BENCH_ROUNDS; r++) {
      const s = ++seq;
      const t0 = Date.now();
      const tx = redis.pipeline();
      for (const sub of subs) tx.xadd(sub.key, '*', 'type', 'bench.tick', 'event', eventJson(sub.tenantId, s, t0));
      await tx.exec();
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && readers.some((x) => !x.arrived.has(s))) await sleep(2);
      const latencies = readers.filter((x) => x.arrived.has(s)).map((x) => x.arrived.get(s)! - t0);
      rounds.push({ ...summary(latencies), missing: readers.length - latencies.length });
      await sleep(250);
    }
    const fanout = {
      rounds: rounds.length,
      p50_ms: summary(rounds.map((r) => r.p50_ms)).p50_ms,
      p99_ms: summary(rounds.map((r) => r.p99_ms)).p50_ms,
      all_delivered_ms: summary(rounds.map((r) => r.max_ms)).p50_ms,
      all_delivered_worst_ms: Math.max(...rounds.map((r) => r.max_ms)),
      missing: rounds.reduce((a, r) => a + r.missing, 0),
    };
    say(`fan-out to ${readers.length}: p50 ${fanout.p50_ms} ms, p99 ${fanout.p99_ms} ms, all ${fanout.all_delivered_ms} ms (median round)`);

    // ---- steady: events to random subscriptions at a fixed rate
    const sent = new Map<number, { reader: Reader; t: number }>();
    const cpuGateway0 = cpuSecondsOf(gateway.child.pid)!;
    const cpuRedis0 = await redisCpuSeconds(redis);
    const started = Date.now();
    const total = cfg.BENCH_RATE * cfg.BENCH_SECONDS;
    for (let n = 0; n < total; ) {
      const due = Math.min(total, Math.floor(((Date.now() - started) / 1000) * cfg.BENCH_RATE) + 1);
      if (due > n) {
        const tx = redis.pipeline();
        for (; n < due; n++) {
          const i = Math.floor(Math.random() * subs.length);
          const s = ++seq;
          const t = Date.now();
          sent.set(s, { reader: readers[i]!, t });
          tx.xadd(subs[i]!.key, '*', 'type', 'bench.tick', 'event', eventJson(subs[i]!.tenantId, s, t));
        }
        await tx.exec();
      }
      await sleep(1);
    }
    const steadyEnd = Date.now() + 10_000;
    while (Date.now() < steadyEnd && [...sent].some(([s, { reader }]) => !reader.arrived.has(s))) await sleep(20);
    const seconds = (Date.now() - started) / 1000;
    const cpuGateway = cpuSecondsOf(gateway.child.pid)! - cpuGateway0;
    const cpuRedis = (await redisCpuSeconds(redis)) - cpuRedis0;
    const steadyLat = [...sent].filter(([s, { reader }]) => reader.arrived.has(s)).map(([s, { reader, t }]) => reader.arrived.get(s)! - t);
    const steady = {
      rate: cfg.BENCH_RATE,
      events: total,
      ...summary(steadyLat),
      missing: total - steadyLat.length,
      gateway_cpu_percent: Number(((cpuGateway / seconds) * 100).toFixed(1)),
      redis_cpu_percent: Number(((cpuRedis / seconds) * 100).toFixed(1)),
      redis_cpu_us_per_event: Number(((cpuRedis * 1e6) / total).toFixed(1)),
      gateway_cpu_us_per_event: Number(((cpuGateway * 1e6) / total).toFixed(1)),
    };
    say(`steady ${cfg.BENCH_RATE}/s: p50 ${steady.p50_ms} ms, p99 ${steady.p99_ms} ms; CPU gateway ${steady.gateway_cpu_percent} %, Redis ${steady.redis_cpu_percent} %`);

    const peak = {
      gateway_peak_rss_mib: Number(memoryOf(gateway.child.pid)!.hwm.toFixed(1)),
      redis_connected_clients: await connectedClients(redis),
      gateway_connections: await gatewayConnections(redis),
    };
    const result = {
      label: cfg.BENCH_LABEL || null,
      tree,
      streams: readers.length,
      readers_setting: cfg.BENCH_READERS ?? null,
      linger_ms_setting: cfg.BENCH_LINGER_MS ?? null,
      open_ms: openMs,
      idle,
      fanout,
      fanout_rounds: rounds,
      steady,
      peak,
      machine: { cpus: cpus().length, node: process.version },
    };
    mkdirSync(cfg.BENCH_OUT, { recursive: true });
    const file = path.join(cfg.BENCH_OUT, `sse-readers${cfg.BENCH_LABEL ? `-${cfg.BENCH_LABEL}` : ''}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    const rows: [string, string | number][] = [
      ['streams open', readers.length],
      ['gateway RSS, streams idle (MiB)', idle.gateway_rss_mib],
      ['gateway peak RSS (MiB)', peak.gateway_peak_rss_mib],
      ['Redis connected_clients (gateway\'s)', `${idle.redis_connected_clients} (${idle.gateway_connections})`],
      ['fan-out p50 / p99 / all 2,000 (ms)', `${fanout.p50_ms} / ${fanout.p99_ms} / ${fanout.all_delivered_ms} (worst round ${fanout.all_delivered_worst_ms})`],
      [`steady ${steady.rate}/s p50 / p99 / max (ms)`, `${steady.p50_ms} / ${steady.p99_ms} / ${steady.max_ms}`],
      ['steady CPU gateway / Redis (%)', `${steady.gateway_cpu_percent} / ${steady.redis_cpu_percent}`],
      ['missing events', fanout.missing + steady.missing],
    ];
    process.stdout.write(`\nSSE readers${cfg.BENCH_LABEL ? ` (${cfg.BENCH_LABEL})` : ''}: ${tree}\n`);
    for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(40)} ${v}\n`);
    process.stdout.write(`  written to ${path.relative(ROOT, file)}\n`);
  } finally {
    for (const r of readers) r.close();
    await stopProcess(gateway, 10_000);
    await stopProcess(subscriptionsFn, 10_000);
    redis.disconnect();
    agent.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
