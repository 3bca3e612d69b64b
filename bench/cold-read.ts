/**
 * The cold tier: how fast a subscription's events older than the hot window are served from the source topic,
 * against a raw kafkajs consume of the same topic in the same run, and what the two tiers cost in Redis memory.
 *
 *   1. BENCH_EVENTS source events (half of them of the subscription's type) produced to a 4-partition topic and
 *      routed by a route process with a one-second hot window, then one more event trims the rest out of Redis
 *   2. raw: a fresh kafkajs consumer group reads the whole topic (records/s)
 *   3. cold: one SSE reader of the subscription from its first event, through a gateway process (compiled, as the
 *      image runs it), until it has every event (events/s served, and source records/s scanned to derive them),
 *      and the gateway's CPU and peak RSS; then BENCH_COLD_READERS readers at once, and the gateway's peak RSS
 *   4. memory: bytes per mark (MEMORY USAGE) and marks per appended event, measured here; then Redis memory at
 *      steady state for the pipeline benchmark's workload (966 B per append, 1.579 appends per event, measured by
 *      bench/pipeline.ts) with a 1-hour window against 72 hours
 *
 *   scripts/bench.sh --cold
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { commonSchema, env, loadConfig } from '../platform/config/env.ts';
import { generateApiKey } from '../platform/auth/api-keys.ts';
import { keys } from '../platform/redis/keys.ts';
import { ROOT, benchPlatformEnv, buildFunctions, cpuSecondsOf, imageNodeOptions, mainProfile, memoryOf, startFunction, stopProcess } from './processes.ts';
import { summariseFile } from './profile-summary.ts';
import { call, say, sleep } from './common.ts';

const cfg = loadConfig(
  commonSchema.pick({ PIONEER_KAFKA_BROKERS: true }).extend({
    PIONEER_REDIS_URL: env.url(['redis', 'rediss']),
    BENCH_EVENTS: env.int(1000, 10_000_000).default(200_000),
    BENCH_OUT: z.string().default(path.join(ROOT, 'bench/results')),
    BENCH_RUN_DIR: z.string().default(path.join(ROOT, '.run', `bench-${process.pid}`)),
    /** also CPU-profile the gateway (bench/results/profiles/gateway-cold), and print where its time goes */
    BENCH_PROFILE: env.bool().default(false),
    /** readers of the subscription reading cold at once after the single one */
    BENCH_COLD_READERS: env.int(1, 100).default(4),
  }),
);
const N = cfg.BENCH_EVENTS;
const topic = `bench-cold-${Date.now()}`;
const kafka = new Kafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId: 'bench-cold', logLevel: logLevel.NOTHING });
const redis = new Redis(cfg.PIONEER_REDIS_URL);
const adminKey = generateApiKey();
const base = { ...benchPlatformEnv(cfg, adminKey), PIONEER_SOURCE_TOPICS: topic, PIONEER_ROUTE_GROUP: `${topic}-route`, PIONEER_DEAD_LETTER_TOPIC: `${topic}.dlq`, PIONEER_STREAM_HOT_SECONDS: '1' };
const nodeOptions = imageNodeOptions();
// the functions compiled and run on plain node, as the image runs them: the RSS measured is the deployed one's
// (through tsx, the loader's worker thread adds some 30 MiB)
const main = buildFunctions(path.join(cfg.BENCH_RUN_DIR, 'fn-dist'));

const admin = kafka.admin();
await admin.connect();
await admin.createTopics({ topics: [{ topic, numPartitions: 4 }, { topic: `${topic}.dlq`, numPartitions: 1 }] });
await admin.disconnect();

const subscriptions = await startFunction('subscriptions', base, { main, nodeOptions });
const route = await startFunction('route', base, { main, nodeOptions });
const profileDir = cfg.BENCH_PROFILE ? path.join(cfg.BENCH_OUT, 'profiles') : undefined;
const gateway = await startFunction('gateway', base, { main, nodeOptions, ...(profileDir ? { profileDir, profileLabel: 'gateway-cold' } : {}) });
try {
  const tenant = await call(subscriptions.url, adminKey, 'POST', '/v1/tenants', { name: 'bench-cold' });
  const key = (await call(subscriptions.url, adminKey, 'POST', `/v1/tenants/${tenant.id}/keys`, { role: 'tenant' })).key as string;
  const sub = (await call(subscriptions.url, key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] })).id as string;
  await sleep(500);

  // 1. the source events: half of them the subscription's, about 600 bytes each, on 200 keys
  say(`producing ${N} events to ${topic}`);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const pad = 'x'.repeat(420);
  const event = (i: number) => {
    const k = `acct-${i % 200}`;
    return {
      key: k,
      headers: { 'content-type': 'application/cloudevents+json' },
      value: JSON.stringify({
        specversion: '1.0', id: `e${i}`, source: '/bench/bank', type: i % 2 === 0 ? 'payment.sent' : 'balance.updated', tenantid: tenant.id,
        partitionkey: k, time: new Date().toISOString(), datacontenttype: 'application/json', data: { seq: i, amount: 1000 + i, pad },
      }),
    };
  };
  for (let i = 0; i < N; i += 2000) await producer.send({ topic, messages: Array.from({ length: Math.min(2000, N - i) }, (_, j) => event(i + j)) });
  const want = Math.ceil(N / 2);
  const stream = keys.stream(tenant.id, sub);
  const marks = keys.marks(tenant.id, sub);
  const positions = keys.positions(tenant.id, sub);
  say('waiting for the route');
  for (;;) {
    const offsets = await redis.hgetall(positions);
    const done = Object.entries(offsets).filter(([f]) => !f.startsWith('~')).reduce((s, [, v]) => s + Number(v) + 1, 0);
    if (done >= N - 10) break; // the last offsets of a partition may be the other type's
    await sleep(500);
  }
  await sleep(1500);
  await producer.send({ topic, messages: [event(N)] }); // one more: the trim leaves only the newest in Redis
  await producer.disconnect();
  await sleep(1000);

  // 4 (measured now, with every mark present): bytes per hot entry and per mark
  const markCount = await redis.xlen(marks);
  const marksBytes = Number(await redis.call('MEMORY', 'USAGE', marks, 'SAMPLES', '0'));
  const hotLen = await redis.xlen(stream); // what the trim left in Redis

  // 2. raw: a fresh group reads the topic
  say('raw consume');
  const consumer = kafka.consumer({ groupId: `${topic}-raw`, maxBytesPerPartition: 1024 * 1024 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let read = 0;
  let rawStart = 0;
  const rawDone = new Promise<number>((resolve) => {
    void consumer.run({
      eachBatch: async ({ batch }) => {
        if (rawStart === 0) rawStart = performance.now();
        read += batch.messages.length;
        if (read >= N + 1) resolve(performance.now());
      },
    });
  });
  const rawEnd = await rawDone;
  await consumer.disconnect();
  const rawRate = (N + 1) / ((rawEnd - rawStart) / 1000);

  // 3. cold: one SSE reader from the subscription's first event
  say('cold read over SSE');
  const cpu0 = cpuSecondsOf(gateway.child.pid) ?? 0;
  const gatewayBefore = memoryOf(gateway.child.pid)?.hwm ?? 0; // MiB: its peak RSS before the cold read (started, idle)
  /** One SSE reader from the subscription's first event until it has every event: when it began, got its first, ended. */
  const readCold = async (): Promise<{ got: number; t0: number; firstAt: number; t1: number }> => {
    const t0 = performance.now();
    const res = await fetch(`${gateway.url}/v1/subscriptions/${sub}/events`, { headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream', 'last-event-id': '0-0' } });
    if (res.status !== 200) throw new Error(`the cold read answered ${res.status}: ${await res.text()}`);
    let got = 0;
    let firstAt = 0;
    let buf = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      // count event ids without copying what was counted (a line starting with "id: ")
      buf += decoder.decode(chunk, { stream: true });
      let at = 0;
      for (let i = buf.indexOf('id: '); i >= 0; i = buf.indexOf('id: ', at)) {
        at = i + 4;
        if (i > 0 && buf[i - 1] !== '\n') continue;
        got++;
        if (firstAt === 0) firstAt = performance.now();
      }
      buf = buf.slice(Math.max(at, buf.length - 4));
      if (got >= want + 1) break;
    }
    return { got, t0, firstAt, t1: performance.now() };
  };
  const { got, t0, firstAt, t1 } = await readCold();
  const coldSeconds = (t1 - t0) / 1000;
  const gatewayCpu = (cpuSecondsOf(gateway.child.pid) ?? 0) - cpu0;
  const gatewayPeak = memoryOf(gateway.child.pid)?.hwm ?? 0; // MiB: the gateway's peak RSS, its one cold reader included
  const coldRate = got / coldSeconds;

  // then BENCH_COLD_READERS readers of the subscription at once (4 by default: what one tenant may hold of an
  // instance, PIONEER_COLD_READS_MAX_PER_TENANT): the gateway's memory with that many cold sources
  say(`${cfg.BENCH_COLD_READERS} cold readers at once`);
  const c0 = performance.now();
  const together = await Promise.all(Array.from({ length: cfg.BENCH_COLD_READERS }, () => readCold()));
  const concurrentRate = together.reduce((n, r) => n + r.got, 0) / ((performance.now() - c0) / 1000);
  const concurrentPeak = memoryOf(gateway.child.pid)?.hwm ?? 0;
  const scanned = (N + 1) / coldSeconds;

  const perMark = marksBytes / markCount;
  const marksPerAppend = markCount / want;
  // the pipeline benchmark's workload (docs/benchmarks.md): 1.579 appends of 966 B per source event at its rate
  const rate = 1000; // source events/s
  const appendsPerEvent = 1.579;
  const hot = (hours: number) => rate * 3600 * hours * appendsPerEvent * 966;
  const marksMem = rate * 3600 * 72 * appendsPerEvent * marksPerAppend * perMark;
  const report = {
    events: N, subscription_events: want, first_event_ms: Math.round(firstAt - t0),
    raw_consume_per_s: Math.round(rawRate), cold_events_per_s: Math.round(coldRate), cold_records_scanned_per_s: Math.round(scanned),
    cold_vs_raw: +(scanned / rawRate).toFixed(2), gateway_cpu_us_per_cold_event: Math.round((gatewayCpu * 1e6) / got),
    gateway_peak_rss_mib: Math.round(gatewayPeak), gateway_peak_rss_before_mib: Math.round(gatewayBefore),
    concurrent: { readers: cfg.BENCH_COLD_READERS, events_per_s: Math.round(concurrentRate), gateway_peak_rss_mib: Math.round(concurrentPeak) },
    hot_entries_left: hotLen, mark_bytes: Math.round(perMark), marks_per_append: +marksPerAppend.toFixed(4),
    memory_at_1000_per_s: { hot_72h_gb: +(hot(72) / 1e9).toFixed(1), hot_1h_gb: +(hot(1) / 1e9).toFixed(2), marks_72h_gb: +(marksMem / 1e9).toFixed(2) },
  };
  console.log(JSON.stringify(report, null, 2));
  console.log([
    `| raw consume | ${report.raw_consume_per_s.toLocaleString('en')} records/s |`,
    `| cold read (SSE, one subscription) | ${report.cold_events_per_s.toLocaleString('en')} events/s served, ${report.cold_records_scanned_per_s.toLocaleString('en')} source records/s scanned (${report.cold_vs_raw} × raw) |`,
    `| gateway CPU per cold event | ${report.gateway_cpu_us_per_cold_event} µs |`,
    `| gateway peak RSS | ${report.gateway_peak_rss_mib} MiB (${report.gateway_peak_rss_before_mib} MiB before the cold read) |`,
    `| ${report.concurrent.readers} cold readers at once | ${report.concurrent.events_per_s.toLocaleString('en')} events/s served in all; gateway peak RSS ${report.concurrent.gateway_peak_rss_mib} MiB |`,
    `| Redis per mark | ${report.mark_bytes} B (${report.marks_per_append} marks per append; ${hotLen} of ${want} events left in Redis) |`,
  ].join('\n'));
  mkdirSync(cfg.BENCH_OUT, { recursive: true });
  writeFileSync(path.join(cfg.BENCH_OUT, 'cold-read.json'), JSON.stringify(report, null, 2) + '\n');
} finally {
  for (const m of [gateway, route, subscriptions]) await stopProcess(m);
  redis.disconnect();
}
if (profileDir) {
  const file = mainProfile(path.join(profileDir, 'gateway-cold'));
  if (file) console.log(JSON.stringify(summariseFile(file, 25), null, 2));
}
