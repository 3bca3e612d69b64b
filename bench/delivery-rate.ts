/**
 * Delivery per core: how many events one deliver process pushes to webhooks, and one gateway process serves over
 * SSE, per second of its CPU, with the same redis-server beside them.
 *
 *   1. webhooks: BENCH_ENDPOINTS subscriptions with a sink each, all on one local HTTP receiver (this process)
 *      that answers 204 at once; each subscription's stream is filled with BENCH_EVENTS events first (appended as
 *      the route appends them), then the deliver function starts and pushes them all. Measured from the first
 *      request to the last: events/s, the deliver process's CPU (from /proc) per event and events per CPU second
 *      ("per core"), redis-server's CPU per event; every endpoint's events checked to arrive once, in order.
 *   2. SSE: BENCH_ENDPOINTS pull subscriptions filled the same way, one stream each opened on one gateway from
 *      the oldest event; the same figures for the gateway, every stream checked in order and complete.
 * Prints a table and writes bench/results/delivery-rate.json. BENCH_PROFILE=1 also CPU-profiles deliver and the
 * gateway (bench/results/profiles/) and prints where their time goes.
 *
 *   scripts/bench.sh --delivery-rate
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { commonSchema, env, loadConfig } from '../platform/config/env.ts';
import { generateApiKey } from '../platform/auth/api-keys.ts';
import { keys } from '../platform/redis/keys.ts';
import { ROOT, benchPlatformEnv, buildFunctions, cpuSecondsOf, imageNodeOptions, mainProfile, startFunction, stopProcess, type Managed } from './processes.ts';
import { summariseFile } from './profile-summary.ts';
import { call, say, sleep } from './common.ts';

const cfg = loadConfig(
  commonSchema.pick({ PIONEER_KAFKA_BROKERS: true }).extend({
    PIONEER_REDIS_URL: env.url(['redis', 'rediss']),
    BENCH_ENDPOINTS: env.int(1, 1000).default(100),
    BENCH_EVENTS: env.int(10, 100_000).default(1000),
    BENCH_NODE_OPTIONS: z.string().default(imageNodeOptions()),
    BENCH_OUT: z.string().default(path.join(ROOT, 'bench/results')),
    BENCH_RUN_DIR: z.string().default(path.join(ROOT, '.run', `bench-${process.pid}`)),
    BENCH_REDIS_PID: env.int(1, 1 << 30).optional(),
    BENCH_PROFILE: env.bool().default(false),
  }),
);
const profileDir = cfg.BENCH_PROFILE ? path.join(cfg.BENCH_OUT, 'profiles') : undefined;
const E = cfg.BENCH_ENDPOINTS;
const N = cfg.BENCH_EVENTS;

const eventJson = (tenantId: string, sub: number, seq: number) =>
  `{"specversion":"1.0","id":"bench-${sub}-${seq}","source":"/bench/delivery","type":"bench.tick","tenantid":"${tenantId}","datacontenttype":"application/json","data":{"sub":${sub},"seq":${seq},"note":"${'x'.repeat(200)}"}}`;

/** Appends N events to each stream as the route does (type and event fields), in pipelines of 10,000. */
async function fill(redis: Redis, streams: { key: string; tenantId: string }[]): Promise<void> {
  let pipe = redis.pipeline();
  let queued = 0;
  for (let seq = 0; seq < N; seq++)
    for (const [sub, s] of streams.entries()) {
      pipe.xadd(s.key, '*', 'type', 'bench.tick', 'event', eventJson(s.tenantId, sub, seq));
      if (++queued % 10_000 === 0) {
        await pipe.exec();
        pipe = redis.pipeline();
      }
    }
  await pipe.exec();
}

interface Measured {
  events: number;
  seconds: number;
  events_per_s: number;
  function_cpu_us_per_event: number;
  events_per_cpu_second: number;
  redis_cpu_us_per_event: number | null;
  in_order: boolean;
}

type Sample = { t: number; fn: number; redis: number; n: number };
const sampleOf = (fn: Managed, received: () => number): Sample => ({ t: performance.now(), fn: cpuSecondsOf(fn.child.pid) ?? 0, redis: cpuSecondsOf(cfg.BENCH_REDIS_PID) ?? 0, n: received() });

/**
 * Samples the function's and Redis's CPU from `start` (or else the first event of `total`, as `received()` counts
 * them) to the last.
 */
async function measure(fn: Managed, total: number, received: () => number, deadlineMs: number, start?: Sample): Promise<Omit<Measured, 'in_order'>> {
  const sample = () => sampleOf(fn, received);
  let first: Sample | null = start ?? null;
  for (;;) {
    const s = sample();
    if (!first && s.n > 0) first = s;
    if (s.n >= total && first) {
      const events = s.n - first.n;
      const seconds = (s.t - first.t) / 1000;
      const cpu = s.fn - first.fn;
      return {
        events: s.n, seconds: Number(seconds.toFixed(2)), events_per_s: Math.round(events / seconds),
        function_cpu_us_per_event: Number(((cpu * 1e6) / events).toFixed(1)), events_per_cpu_second: Math.round(events / cpu),
        redis_cpu_us_per_event: cfg.BENCH_REDIS_PID ? Number((((s.redis - first.redis) * 1e6) / events).toFixed(1)) : null,
      };
    }
    if (Date.now() > deadlineMs) throw new Error(`${received()} of ${total} events arrived in time`);
    await sleep(20);
  }
}

async function main(): Promise<void> {
  mkdirSync(cfg.BENCH_RUN_DIR, { recursive: true });
  const redis = new Redis(cfg.PIONEER_REDIS_URL, { maxRetriesPerRequest: 3 });
  const adminKey = generateApiKey();
  const fnEnv: Record<string, string> = {
    ...benchPlatformEnv(cfg, adminKey),
    PIONEER_WEBHOOK_ALLOW_HTTP: 'true',
    PIONEER_WEBHOOK_ALLOW_NETWORKS: 'loopback',
    PIONEER_SSE_MAX_PER_TENANT: String(E),
  };
  const main = buildFunctions(path.join(cfg.BENCH_RUN_DIR, 'fn-dist'));
  const opts = { main, nodeOptions: cfg.BENCH_NODE_OPTIONS };
  const processes: Managed[] = [];
  // the receiver: every endpoint's sequence numbers in arrival order
  const got = Array.from({ length: E }, () => [] as number[]);
  let requests = 0;
  const receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const m = /"sub":(\d+),"seq":(\d+)/.exec(body);
      if (m) got[Number(m[1])]!.push(Number(m[2]));
      requests++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const port = (receiver.address() as AddressInfo).port;
  try {
    const subscriptionsFn = await startFunction('subscriptions', fnEnv, opts);
    processes.push(subscriptionsFn);
    const tenant = await call(subscriptionsFn.url, adminKey, 'POST', '/v1/tenants', { name: 'bench-delivery' });
    const key = tenant.key.key as string;

    // ---- 1. webhooks
    say(`${E} webhook subscriptions, ${N} events each, on a receiver at 127.0.0.1:${port}`);
    const sinks: { key: string; tenantId: string }[] = [];
    for (let i = 0; i < E; i++) {
      const s = await call(subscriptionsFn.url, key, 'POST', '/v1/subscriptions', { name: `hook ${i}`, types: ['bench.tick'], sink: `http://127.0.0.1:${port}/e/${i}` });
      sinks.push({ key: keys.stream(tenant.id, s.id), tenantId: tenant.id });
    }
    await fill(redis, sinks);
    say('starting deliver');
    const deliver = await startFunction('deliver', fnEnv, { ...opts, ...(profileDir ? { profileDir } : {}) });
    processes.push(deliver);
    const hooks = await measure(deliver, E * N, () => got.reduce((a, g) => a + g.length, 0), Date.now() + 600_000);
    const hooksInOrder = got.every((g) => g.length === N && g.every((seq, i) => seq === i));
    await stopProcess(deliver);
    processes.splice(processes.indexOf(deliver), 1);

    // ---- 2. SSE
    say(`${E} pull subscriptions, ${N} events each, read over SSE from one gateway`);
    const pulls: { key: string; tenantId: string; id: string }[] = [];
    for (let i = 0; i < E; i++) {
      const s = await call(subscriptionsFn.url, key, 'POST', '/v1/subscriptions', { name: `pull ${i}`, types: ['bench.tick'] });
      pulls.push({ key: keys.stream(tenant.id, s.id), tenantId: tenant.id, id: s.id });
    }
    await fill(redis, pulls);
    const gateway = await startFunction('gateway', fnEnv, { ...opts, ...(profileDir ? { profileDir } : {}) });
    processes.push(gateway);
    const seen = Array.from({ length: E }, () => [] as number[]);
    // the gateway is idle until the streams open: its CPU is counted from here, the streams' opening included
    const start = sampleOf(gateway, () => 0);
    const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
    const streams = pulls.map((p, i) => http.get(`${gateway.url}/v1/subscriptions/${p.id}/events`, { agent, headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' } }, (res) => {
      res.setEncoding('utf8');
      let rest = '';
      res.on('data', (chunk: string) => {
        const text = rest + chunk;
        const cut = text.lastIndexOf('\n');
        rest = text.slice(cut + 1);
        for (const m of text.slice(0, cut + 1).matchAll(/"sub":\d+,"seq":(\d+)/g)) seen[i]!.push(Number(m[1]));
      });
    }));
    const sse = await measure(gateway, E * N, () => seen.reduce((a, g) => a + g.length, 0), Date.now() + 600_000, start);
    const sseInOrder = seen.every((g) => g.length === N && g.every((seq, i) => seq === i));
    for (const s of streams) s.destroy();

    const report = {
      when: new Date().toISOString(), endpoints: E, events_per_endpoint: N,
      webhooks: { ...hooks, in_order: hooksInOrder, requests },
      sse: { ...sse, in_order: sseInOrder },
    };
    console.log(JSON.stringify(report, null, 2));
    const row = (label: string, m: Measured) =>
      `| ${label} | ${m.events_per_s.toLocaleString('en')} | ${m.function_cpu_us_per_event} µs | ${m.events_per_cpu_second.toLocaleString('en')} | ${m.redis_cpu_us_per_event ?? '-'} µs | ${m.in_order ? 'yes' : 'NO'} |`;
    console.log([
      `| ${E} endpoints × ${N} events | events/s | function CPU per event | events per CPU second (per core) | redis-server CPU per event | each in order, once |`,
      '| --- | ---: | ---: | ---: | ---: | --- |',
      row('webhooks, one deliver process (target ≥ 5,000 per core)', report.webhooks),
      row('SSE, one gateway process (target ≥ 50,000 per core)', report.sse),
    ].join('\n'));
    mkdirSync(cfg.BENCH_OUT, { recursive: true });
    writeFileSync(path.join(cfg.BENCH_OUT, 'delivery-rate.json'), JSON.stringify(report, null, 2) + '\n');
  } finally {
    for (const p of processes) await stopProcess(p).catch(() => {});
    receiver.close();
    redis.disconnect();
  }
  if (profileDir)
    for (const name of ['deliver', 'gateway']) {
      const file = mainProfile(path.join(profileDir, name));
      if (file) console.log(`${name}: where its time goes\n${JSON.stringify(summariseFile(file, 20), null, 2)}`);
    }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench: failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
