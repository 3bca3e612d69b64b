/**
 * The same platform on two pairs of servers in one run: one redis-server and one Kafka broker (the single pair),
 * then a Redis Cluster (3 masters, 3 replicas) and three Kafka brokers with replication factor 3 (the cluster
 * pair). On each: the subscriptions, route and gateway functions, BENCH_TENANTS tenants with two subscriptions
 * each and an SSE reader per subscription, BENCH_RATE source events/s for BENCH_SECONDS produced with acks=-1.
 * Reported per pair: events/s in and delivered, latency from produce to the SSE reader (p50, p99, max), events
 * missing, and Redis memory per buffered event (used_memory of the masters, and with the replicas, over the
 * stream entries the run appended).
 *
 *   scripts/bench.sh --cluster          (starts both pairs, runs this, stops them)
 * Prints a table and writes bench/results/cluster.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { cpus } from 'node:os';
import { z } from 'zod';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { env, loadConfig } from '../platform/config/env.ts';
import { generateApiKey } from '../platform/auth/api-keys.ts';
import { createRedis, serversOf, type PioneerRedis } from '../platform/redis/client.ts';
import { ensureTopics } from '../platform/kafka/client.ts';
import { ROOT, benchPlatformEnv, imageNodeOptions, startFunction, stopProcess, type Managed } from './processes.ts';
import { say, sleep, percentile, call } from './common.ts';

const cfg = loadConfig(
  z.object({
    BENCH_SINGLE_REDIS_URL: env.url(['redis']),
    BENCH_SINGLE_BROKERS: env.brokers(),
    BENCH_CLUSTER_NODES: env.brokers(),
    BENCH_CLUSTER_BROKERS: env.brokers(),
    BENCH_TENANTS: env.int(1, 100).default(8),
    BENCH_RATE: env.int(1, 100_000).default(1000),
    BENCH_SECONDS: env.int(5, 3600).default(30),
    BENCH_NODE_OPTIONS: z.string().default(imageNodeOptions()),
    BENCH_OUT: z.string().default(path.join(ROOT, 'bench/results')),
  }),
);




/** An SSE stream that records when each benchmark event (by seq) arrived. */
function openReader(url: string, apiKey: string): Promise<{ arrived: Map<number, number>; close(): void }> {
  return new Promise((resolve, reject) => {
    const arrived = new Map<number, number>();
    const req = http.get(url, { headers: { authorization: `Bearer ${apiKey}`, accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`stream answered ${res.statusCode}`));
        res.resume();
        return;
      }
      res.setEncoding('utf8');
      resolve({ arrived, close: () => req.destroy() });
      res.on('data', (chunk: string) => {
        const now = Date.now();
        for (const m of chunk.matchAll(/"seq":(\d+)/g)) arrived.set(Number(m[1]), now);
      });
    });
    req.on('error', (err) => (err.message === 'socket hang up' ? undefined : reject(err)));
  });
}

/** Bytes of Redis memory on the masters, and on every server (replicas included). */
async function usedMemory(redis: PioneerRedis, all: () => Promise<number>): Promise<{ masters: number; all: number }> {
  let masters = 0;
  for (const server of serversOf(redis)) masters += Number(/used_memory:(\d+)/.exec(await server.info('memory'))?.[1] ?? 0);
  return { masters, all: await all() };
}

interface Pair {
  label: string;
  brokers: string[];
  redis: { PIONEER_REDIS_URL?: string; PIONEER_REDIS_CLUSTER_NODES?: string[] };
}

async function runPair(pair: Pair) {
  say(`${pair.label}: starting subscriptions, route and gateway`);
  const topic = `bench-cluster-${Date.now()}`;
  const kafka = new Kafka({ brokers: pair.brokers, clientId: 'bench', logLevel: logLevel.NOTHING });
  await ensureTopics(kafka, [{ topic, numPartitions: 4 }]);
  const redis = createRedis(pair.redis, { name: 'bench', commandTimeoutMs: 0, maxRetriesPerRequest: 3 });
  const allServers = async () => {
    // replicas too: each master's replicas hold a copy of its data
    const nodes = pair.redis.PIONEER_REDIS_CLUSTER_NODES ?? [];
    if (nodes.length === 0) return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
    let sum = 0;
    for (const seed of nodes) {
      const [host, port] = seed.split(':') as [string, string];
      const one = createRedis(`redis://${host}:${port}`, { name: 'bench-memory' });
      sum += Number(/used_memory:(\d+)/.exec(await one.info('memory'))?.[1] ?? 0);
      one.disconnect();
    }
    return sum;
  };
  const adminKey = generateApiKey();
  const fnEnv: Record<string, string> = {
    ...benchPlatformEnv({ PIONEER_KAFKA_BROKERS: pair.brokers, ...pair.redis }, adminKey),
    PIONEER_SOURCE_TOPICS: topic,
    PIONEER_ROUTE_GROUP: `bench-route-${Date.now()}`,
    PIONEER_DEAD_LETTER_TOPIC: `${topic}.dlq`,
    PIONEER_SUBSCRIPTION_POLL_MS: '100',
  };
  const fnOpts = { nodeOptions: `${cfg.BENCH_NODE_OPTIONS}` };
  const fns: Managed[] = [];
  const readers: { arrived: Map<number, number>; close(): void }[] = [];
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true });
  try {
    const subscriptionsFn = await startFunction('subscriptions', fnEnv, fnOpts);
    fns.push(subscriptionsFn);
    const route = await startFunction('route', fnEnv, fnOpts);
    fns.push(route);
    const gateway = await startFunction('gateway', fnEnv, fnOpts);
    fns.push(gateway);
    const tenants: { id: string; key: string }[] = [];
    for (let t = 0; t < cfg.BENCH_TENANTS; t++) {
      const tenant = await call(subscriptionsFn.url, adminKey, 'POST', '/v1/tenants', { name: `bench-${t}` });
      tenants.push({ id: tenant.id, key: tenant.key.key });
      for (let s = 0; s < 2; s++) {
        const sub = await call(subscriptionsFn.url, tenant.key.key, 'POST', '/v1/subscriptions', { types: ['bench.tick'] });
        readers.push(await openReader(`${gateway.url}/v1/subscriptions/${sub.id}/events`, tenant.key.key));
      }
    }
    await sleep(1500); // the route sees the subscriptions
    await producer.connect();
    const memoryBefore = await usedMemory(redis, allServers);
    const sentAt = new Map<number, { t: number; tenant: number }>();
    const started = Date.now();
    const total = cfg.BENCH_RATE * cfg.BENCH_SECONDS;
    say(`${pair.label}: ${cfg.BENCH_RATE} events/s for ${cfg.BENCH_SECONDS} s to ${tenants.length} tenants × 2 subscriptions`);
    for (let n = 0; n < total; ) {
      const due = Math.min(total, Math.floor(((Date.now() - started) / 1000) * cfg.BENCH_RATE) + 1);
      if (due > n) {
        const messages = [];
        for (; n < due; n++) {
          const tenant = n % tenants.length;
          const t = Date.now();
          sentAt.set(n, { t, tenant });
          const event = { specversion: '1.0', id: `bench-${n}`, source: '/bench/cluster', type: 'bench.tick', tenantid: tenants[tenant]!.id, partitionkey: `k${n % 64}`, time: new Date(t).toISOString(), datacontenttype: 'application/json', data: { seq: n, pad: 'x'.repeat(600) } };
          messages.push({ key: event.partitionkey, value: JSON.stringify(event), headers: { 'content-type': 'application/cloudevents+json' } });
        }
        await producer.send({ topic, acks: -1, messages });
      }
      await sleep(5);
    }
    const sendSeconds = (Date.now() - started) / 1000;
    const deadline = Date.now() + 30_000;
    // every event reaches the two readers of its tenant
    const expected = total * 2;
    const delivered = () => readers.reduce((sum, r) => sum + r.arrived.size, 0);
    while (Date.now() < deadline && delivered() < expected) await sleep(100);
    const latencies: number[] = [];
    readers.forEach((r) => {
      for (const [seq, at] of r.arrived) latencies.push(at - sentAt.get(seq)!.t);
    });
    latencies.sort((a, b) => a - b);
    const lastArrival = Math.max(...readers.flatMap((r) => [...r.arrived.values()]));
    const memoryAfter = await usedMemory(redis, allServers);
    const entries = delivered();
    const result = {
      pair: pair.label,
      rate: cfg.BENCH_RATE,
      seconds: cfg.BENCH_SECONDS,
      sent_per_s: Math.round(total / sendSeconds),
      delivered_per_s: Math.round(entries / 2 / ((lastArrival - started) / 1000)),
      p50_ms: percentile(latencies, 50),
      p99_ms: percentile(latencies, 99),
      max_ms: latencies[latencies.length - 1] ?? NaN,
      missing: expected - entries,
      redis_bytes_per_buffered_event_masters: Math.round((memoryAfter.masters - memoryBefore.masters) / entries),
      redis_bytes_per_buffered_event_all: Math.round((memoryAfter.all - memoryBefore.all) / entries),
    };
    say(`${pair.label}: p50 ${result.p50_ms} ms, p99 ${result.p99_ms} ms, missing ${result.missing}, ${result.redis_bytes_per_buffered_event_masters} B per buffered event on the masters`);
    return result;
  } finally {
    for (const r of readers) r.close();
    await producer.disconnect().catch(() => {});
    for (const f of fns.reverse()) await stopProcess(f);
    redis.disconnect();
  }
}

async function main(): Promise<void> {
  const single = await runPair({ label: 'single', brokers: cfg.BENCH_SINGLE_BROKERS, redis: { PIONEER_REDIS_URL: cfg.BENCH_SINGLE_REDIS_URL } });
  const cluster = await runPair({ label: 'cluster', brokers: cfg.BENCH_CLUSTER_BROKERS, redis: { PIONEER_REDIS_CLUSTER_NODES: cfg.BENCH_CLUSTER_NODES } });
  const rows: [string, (r: typeof single) => string | number][] = [
    ['source events/s sent', (r) => r.sent_per_s],
    ['events/s delivered (per reader pair)', (r) => r.delivered_per_s],
    ['produce to SSE p50 / p99 / max (ms)', (r) => `${r.p50_ms} / ${r.p99_ms} / ${r.max_ms}`],
    ['events missing', (r) => r.missing],
    ['Redis bytes per buffered event, masters', (r) => r.redis_bytes_per_buffered_event_masters],
    ['Redis bytes per buffered event, with replicas', (r) => r.redis_bytes_per_buffered_event_all],
  ];
  process.stdout.write(`\nSingle pair against cluster pair, ${cfg.BENCH_RATE} events/s for ${cfg.BENCH_SECONDS} s (${cpus().length} CPUs)\n`);
  process.stdout.write(`${'figure'.padEnd(48)}${'single'.padStart(22)}${'cluster'.padStart(22)}\n`);
  for (const [name, get] of rows) process.stdout.write(`${name.padEnd(48)}${String(get(single)).padStart(22)}${String(get(cluster)).padStart(22)}\n`);
  mkdirSync(cfg.BENCH_OUT, { recursive: true });
  const out = path.join(cfg.BENCH_OUT, 'cluster.json');
  writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), cpus: cpus().length, single, cluster }, null, 2) + '\n');
  process.stdout.write(`written ${out}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench: ${(err as Error).stack}\n`);
    process.exit(1);
  },
);
