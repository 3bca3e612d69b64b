/**
 * Ingest throughput against the raw kafkajs producer, measured in the same run on the same Kafka with the same
 * events (same sizes, structured mode as ingest writes them, keyed, acks -1, idempotent): batches of 100 and single events, each with
 * `BENCH_CONCURRENCY` clients in flight. The ingest function runs in a process of its own (the local host,
 * adapters/local/main.ts), as it would deployed, and is called over HTTP from this one, which also runs the raw
 * producer. Prints a table and writes bench/results/ingest.json.
 *
 *   PIONEER_KAFKA_BROKERS=127.0.0.1:9092 PIONEER_REDIS_URL=redis://127.0.0.1:6379 npx tsx bench/ingest.ts
 *   (scripts/kafka.sh and scripts/redis.sh start both; BENCH_SECONDS, BENCH_CONCURRENCY, BENCH_DATA_BYTES tune it)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { Partitioners } from 'kafkajs';
import { commonSchema, env, loadConfig } from '../platform/config/env.ts';
import { createKafka, ensureTopics } from '../platform/kafka/client.ts';
import { createLogger } from '../platform/telemetry/logger.ts';
import { encodeStructured } from '../platform/events/kafka-binding.ts';
import type { CloudEventJson } from '../platform/events/cloudevent.ts';
import { generateApiKey } from '../platform/auth/api-keys.ts';
import { spawn } from 'node:child_process';

const cfg = loadConfig(
  commonSchema.pick({ PIONEER_KAFKA_BROKERS: true }).extend({
    PIONEER_REDIS_URL: env.url(['redis', 'rediss']),
    BENCH_SECONDS: env.int(1, 600).default(8),
    BENCH_CONCURRENCY: env.int(1, 256).default(8),
    BENCH_DATA_BYTES: env.int(16, 65536).default(200),
    BENCH_PARTITIONS: env.int(1, 64).default(4),
  }),
);

const log = createLogger({ level: 'warn' });
const topic = `bench-ingest-${randomBytes(4).toString('hex')}`;
const tenantTag = { value: '' };

function makeEvent(i: number): CloudEventJson {
  return {
    specversion: '1.0',
    id: `${randomBytes(8).toString('hex')}-${i}`,
    source: '/bench/bank',
    type: 'payment.sent',
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    partitionkey: `acct-${i % 1000}`,
    data: { amount: i % 10000, currency: 'EUR', note: 'x'.repeat(Math.max(0, cfg.BENCH_DATA_BYTES - 40)) },
    tenantid: tenantTag.value,
  };
}

interface Row {
  case: string;
  batch: number;
  requests_per_s: number;
  events_per_s: number;
  p50_ms: number;
  p99_ms: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : 0;
}

/** Runs `call` from `concurrency` loops for `seconds`; each call handles `batch` events. */
async function measure(name: string, batch: number, call: () => Promise<void>): Promise<Row> {
  const latencies: number[] = [];
  const deadline = Date.now() + cfg.BENCH_SECONDS * 1000;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: cfg.BENCH_CONCURRENCY }, async () => {
      while (Date.now() < deadline) {
        const t0 = process.hrtime.bigint();
        await call();
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  latencies.sort((a, b) => a - b);
  return {
    case: name,
    batch,
    requests_per_s: Math.round(latencies.length / seconds),
    events_per_s: Math.round((latencies.length * batch) / seconds),
    p50_ms: Number(percentile(latencies, 50).toFixed(2)),
    p99_ms: Number(percentile(latencies, 99).toFixed(2)),
  };
}

async function main() {
  const kafka = createKafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId: 'bench-ingest', log });
  await ensureTopics(kafka, [{ topic, numPartitions: cfg.BENCH_PARTITIONS }]);
  const adminKey = generateApiKey();
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'adapters/local/main.ts'), 'subscriptions', 'ingest'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      PATH: process.env['PATH'],
      PIONEER_KAFKA_BROKERS: cfg.PIONEER_KAFKA_BROKERS.join(','),
      PIONEER_REDIS_URL: cfg.PIONEER_REDIS_URL,
      PIONEER_ADMIN_KEY: adminKey,
      // the subscriptions function seals webhook secrets (none in these runs, but the key is required)
      PIONEER_SECRET_KEYS: `bench:${randomBytes(32).toString('base64')}`,
      PIONEER_LOG_LEVEL: 'warn',
      PIONEER_SUBSCRIPTIONS_PORT: '0',
      PIONEER_INGEST_PORT: '0',
      PIONEER_INGEST_TOPIC: topic,
      PIONEER_INGEST_MAX_BATCH: '100',
      PIONEER_INGEST_MAX_BODY_BYTES: String(64 * 1024 * 1024),
      PIONEER_INGEST_RATE_PER_SECOND: '100000000',
      PIONEER_INGEST_RATE_BURST: '100000000',
    },
  });
  const urls: Record<string, string> = {};
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      for (const m of out.matchAll(/pioneer: (\w+) listening on (\S+)/g)) urls[m[1]!] = m[2]!;
      if (urls['subscriptions'] && urls['ingest']) resolve();
    });
    child.once('exit', (code) => reject(new Error(`functions exited with ${code}`)));
  });
  const host = { url: (name: string) => urls[name]!, stop: () => new Promise((r) => { child.once('exit', r); child.kill('SIGTERM'); }) };
  const tenantRes = await fetch(`${host.url('subscriptions')}/v1/tenants`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'bench' }),
  });
  const tenant = (await tenantRes.json()) as { id: string; key: { key: string } };
  tenantTag.value = tenant.id;
  const url = `${host.url('ingest')}/v1/events`;
  const auth = `Bearer ${tenant.key.key}`;

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 5, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  let n = 0;
  const rawSend = (batch: number) => async () => {
    const messages = Array.from({ length: batch }, () => encodeStructured(makeEvent(n++)));
    await producer.send({ topic, acks: -1, messages });
  };
  const ingestBatch = (batch: number) => async () => {
    const events = Array.from({ length: batch }, () => makeEvent(n++));
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/cloudevents-batch+json' },
      body: JSON.stringify(events),
    });
    if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
  };
  const ingestSingle = async () => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify(makeEvent(n++)),
    });
    if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
  };

  // warm-up: connections, metadata, JIT
  for (let i = 0; i < 20; i++) {
    await rawSend(100)();
    await ingestBatch(100)();
  }

  const rows: Row[] = [];
  rows.push(await measure('raw kafkajs producer', 100, rawSend(100)));
  rows.push(await measure('ingest, batch mode', 100, ingestBatch(100)));
  rows.push(await measure('raw kafkajs producer', 1, rawSend(1)));
  rows.push(await measure('ingest, structured mode', 1, ingestSingle));

  await producer.disconnect();
  await host.stop();

  const ratio = (a: Row, b: Row) => Number((a.events_per_s / b.events_per_s).toFixed(3));
  const result = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model },
    settings: { seconds: cfg.BENCH_SECONDS, concurrency: cfg.BENCH_CONCURRENCY, data_bytes: cfg.BENCH_DATA_BYTES, partitions: cfg.BENCH_PARTITIONS, acks: -1 },
    rows,
    ratios: { batch_100: ratio(rows[1]!, rows[0]!), single: ratio(rows[3]!, rows[2]!) },
  };

  const header = ['case', 'batch', 'requests/s', 'events/s', 'p50 ms', 'p99 ms'];
  const lines = rows.map((r) => [r.case, String(r.batch), String(r.requests_per_s), String(r.events_per_s), r.p50_ms.toFixed(2), r.p99_ms.toFixed(2)]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`ingest vs raw producer: ${cfg.BENCH_CONCURRENCY} in flight, ${cfg.BENCH_SECONDS} s each, data ~${cfg.BENCH_DATA_BYTES} B, ${cfg.BENCH_PARTITIONS} partitions, acks -1`);
  console.log(fmt(header));
  for (const l of lines) console.log(fmt(l));
  console.log(`ingest/raw events/s: batches of 100 ${result.ratios.batch_100}, single events ${result.ratios.single}`);

  const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'ingest.json'), JSON.stringify(result, null, 2) + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
