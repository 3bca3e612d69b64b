/**
 * Snapshot exports: how fast `POST /v1/exports {kind: "snapshot"}` reads a state topic and writes the newest event
 * per key of one subscription, against a raw kafkajs consume of the same topic in the same run.
 *
 *   1. BENCH_EVENTS balance changes over BENCH_KEYS accounts produced to a compacted 4-partition state topic, half of
 *      them another tenant's (read and skipped by the snapshot), routed by a route process
 *   2. raw: a fresh kafkajs consumer group reads the whole topic, doing nothing with the records (records/s)
 *   3. snapshot: one snapshot export of the subscription (an export process), from the POST until the record says
 *      completed: source records read per second, keys written, and the export process's CPU per record
 *
 *   scripts/bench.sh --snapshot            (BENCH_PROFILE=1: also CPU-profile the export process and print where its time goes)
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { commonSchema, env, loadConfig } from '../platform/config/env.ts';
import { generateApiKey } from '../platform/auth/api-keys.ts';
import { keys } from '../platform/redis/keys.ts';
import { ROOT, benchPlatformEnv, cpuSecondsOf, imageNodeOptions, mainProfile, startFunction, stopProcess } from './processes.ts';
import { summariseFile } from './profile-summary.ts';
import { benchProducer, rawConsume } from './baselines.ts';
import { call, say, sleep } from './common.ts';

const cfg = loadConfig(
  commonSchema.pick({ PIONEER_KAFKA_BROKERS: true }).extend({
    PIONEER_REDIS_URL: env.url(['redis', 'rediss']),
    BENCH_EVENTS: env.int(1000, 10_000_000).default(400_000),
    BENCH_KEYS: env.int(10, 10_000_000).default(50_000),
    BENCH_OUT: z.string().default(path.join(ROOT, 'bench/results')),
    /** also CPU-profile the export process (bench/results/profiles/export-snapshot), and print where its time goes */
    BENCH_PROFILE: env.bool().default(false),
  }),
);
const N = cfg.BENCH_EVENTS;
const topic = `bench-snapshot-${Date.now()}`;
const kafka = new Kafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId: 'bench-snapshot', logLevel: logLevel.NOTHING });
const redis = new Redis(cfg.PIONEER_REDIS_URL);
const adminKey = generateApiKey();
const base = {
  ...benchPlatformEnv(cfg, adminKey), PIONEER_SOURCE_TOPICS: topic, PIONEER_ROUTE_GROUP: `${topic}-route`, PIONEER_DEAD_LETTER_TOPIC: `${topic}.dlq`,
  PIONEER_EXPORT_DIR: mkdtempSync(path.join(tmpdir(), 'bench-snapshot-')), PIONEER_SNAPSHOT_SETTLE_MS: '500',
};
const nodeOptions = imageNodeOptions();

const admin = kafka.admin();
await admin.connect();
await admin.createTopics({
  topics: [{ topic, numPartitions: 4, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }, { topic: `${topic}.dlq`, numPartitions: 1 }],
});

const subscriptions = await startFunction('subscriptions', base, { nodeOptions });
const route = await startFunction('route', base, { nodeOptions });
const profileDir = cfg.BENCH_PROFILE ? path.join(cfg.BENCH_OUT, 'profiles') : undefined;
const exporter = await startFunction('export', base, { nodeOptions, ...(profileDir ? { profileDir, profileLabel: 'export-snapshot' } : {}) });
try {
  const tenants = [];
  for (const name of ['bench-snapshot', 'bench-other']) {
    const t = await call(subscriptions.url, adminKey, 'POST', '/v1/tenants', { name });
    tenants.push({ id: t.id as string, key: (await call(subscriptions.url, adminKey, 'POST', `/v1/tenants/${t.id}/keys`, { role: 'tenant' })).key as string });
  }
  const [mine, other] = tenants as [{ id: string; key: string }, { id: string; key: string }];
  // the subscription exists before the changes: they reach its stream live too, as they do in production
  const sub = (await call(subscriptions.url, mine.key, 'POST', '/v1/subscriptions', { types: ['balance.snapshot'] })).id as string;
  await sleep(1000);

  // 1. balance changes, about 330 bytes each, alternating between the two tenants
  say(`producing ${N} balance changes over ${cfg.BENCH_KEYS} accounts to ${topic}`);
  const producer = benchProducer(kafka);
  await producer.connect();
  const change = (i: number) => {
    const t = i % 2 === 0 ? mine : other;
    const acct = `${t === mine ? 'a' : 'b'}-${Math.floor(i / 2) % cfg.BENCH_KEYS}`;
    const version = Math.floor(i / 2 / cfg.BENCH_KEYS) + 1;
    return {
      key: acct,
      headers: { 'content-type': 'application/cloudevents+json' },
      value: JSON.stringify({
        specversion: '1.0', id: `${acct}-v${version}`, source: '/bench/core-banking', type: 'balance.snapshot', tenantid: t.id, partitionkey: acct,
        time: new Date().toISOString(), datacontenttype: 'application/json', data: { account: acct, version, cents: 100_000 + i, currency: 'EUR', iban: 'NL91ABNA0417164300' },
      }),
    };
  };
  for (let i = 0; i < N; i += 2000) await producer.send({ topic, acks: -1, messages: Array.from({ length: Math.min(2000, N - i) }, (_, j) => change(i + j)) });
  await producer.disconnect();
  const ends = await admin.fetchTopicOffsets(topic);
  say('waiting for the route');
  for (;;) {
    const pos = await redis.hgetall(keys.routePositions());
    if (ends.every((e) => BigInt(pos[`${topic}/${e.partition}`] ?? '0') >= BigInt(e.high))) break;
    await sleep(500);
  }

  // 2. raw: a fresh group reads the topic, once to warm the broker's cache as the raw read warmed it for the
  // snapshot, then measured: from its first batch, and from its creation, as a snapshot's clock runs (a snapshot's
  // own consumer joins its group within the time measured)
  say('raw consume');
  await rawConsume(kafka, topic, N, { partitions: 4 });
  const w0 = performance.now();
  const raw = await rawConsume(kafka, topic, N, { partitions: 4 });
  const rawWallPerS = N / ((performance.now() - w0) / 1000);

  // 3. the snapshot
  say('snapshot export');
  const cpu0 = cpuSecondsOf(exporter.child.pid) ?? 0;
  const t0 = performance.now();
  const started = await call(exporter.url, mine.key, 'POST', '/v1/exports', { subscription_id: sub, kind: 'snapshot', state_topic: topic });
  let done: any;
  for (;;) {
    done = await call(exporter.url, mine.key, 'GET', `/v1/exports/${started.id}`);
    if (done.status !== 'running') break;
    await sleep(100);
  }
  const seconds = (performance.now() - t0) / 1000;
  if (done.status !== 'completed') throw new Error(`the snapshot failed: ${done.error}`);
  const cpu = (cpuSecondsOf(exporter.child.pid) ?? 0) - cpu0;
  const m = done.manifest;
  const perS = N / seconds;
  const report = {
    records: N, keys_written: m.count, file_bytes: m.bytes,
    raw_consume_per_s: raw.per_s, raw_seconds: raw.seconds, raw_consume_with_join_per_s: Math.round(rawWallPerS),
    snapshot_seconds: +seconds.toFixed(2), snapshot_records_per_s: Math.round(perS), snapshot_keys_per_s: Math.round(m.count / seconds),
    snapshot_vs_raw: +(perS / raw.per_s).toFixed(2), snapshot_vs_raw_with_join: +(perS / rawWallPerS).toFixed(2), export_cpu_us_per_record: Math.round((cpu * 1e6) / N),
  };
  console.log(JSON.stringify(report, null, 2));
  console.log([
    `| raw consume | ${report.raw_consume_per_s.toLocaleString('en')} records/s from the first batch; ${report.raw_consume_with_join_per_s.toLocaleString('en')} records/s with the group join |`,
    `| snapshot export (POST to completed) | ${report.snapshot_records_per_s.toLocaleString('en')} records/s read (${report.snapshot_vs_raw} × raw, ${report.snapshot_vs_raw_with_join} × raw with its join), ${report.snapshot_keys_per_s.toLocaleString('en')} keys/s written, ${report.snapshot_seconds} s |`,
    `| export CPU per record read | ${report.export_cpu_us_per_record} µs |`,
  ].join('\n'));
  mkdirSync(cfg.BENCH_OUT, { recursive: true });
  writeFileSync(path.join(cfg.BENCH_OUT, 'snapshot.json'), JSON.stringify(report, null, 2) + '\n');
} finally {
  await admin.disconnect();
  for (const m of [exporter, route, subscriptions]) await stopProcess(m);
  redis.disconnect();
}
if (profileDir) {
  const file = mainProfile(path.join(profileDir, 'export-snapshot'));
  if (file) console.log(JSON.stringify(summariseFile(file, 25), null, 2));
}
