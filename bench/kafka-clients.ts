/**
 * The two Kafka clients (PIONEER_KAFKA_CLIENT: kafkajs, platformatic) side by side, in one run on the same broker
 * and Redis, with the same records:
 *   1. the floor: a raw produce (kafkajs) of records like the source ones, then a raw consume of them with each
 *      client through the platform's client interface, as the Kafka trigger consumes (a fresh group, eachBatch,
 *      the partitions at once, nothing done per record but reading its value), and raw Redis XADD/XREAD of
 *      entries like the delivered ones: records/s, and the CPU per record of the broker, Redis and this process
 *      (/proc), which is what carrying an event costs before any platform code runs;
 *   2. the route: 100 tenants and 1,000 subscriptions (bench/subscription-mix.ts) through the API; the same
 *      events produced into one source topic per client; the route started on each topic in turn with that
 *      client, catching up: events/s in, and the CPU per event of the route process, the broker and Redis from
 *      the first to the last sample of its counters (start-up excluded);
 *   3. the box's ceiling: this machine's cores' microseconds per second over what the floor and the route cost
 *      per event together.
 * Prints a table and writes bench/results/kafka-clients[-quick].json. With BENCH_PROFILE=1 the route runs under
 * `node --cpu-prof` (bench/results/profiles/route-<client>/), and the top self-time functions are printed.
 *
 *   scripts/bench.sh --kafka-clients [--quick]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { z } from 'zod';
import type { Message } from 'kafkajs';
import { commonSchema, env, loadConfig } from '../platform/config/env.ts';
import { createKafka, createKafkaClient, ensureTopics } from '../platform/kafka/client.ts';
import type { KafkaClientKind } from '../platform/kafka/types.ts';
import { createLogger } from '../platform/telemetry/logger.ts';
import { generateApiKey } from '../platform/auth/api-keys.ts';
import { createGenerator, produceCount } from './generator.ts';
import { subscriptionsOf } from './subscription-mix.ts';
import { benchProducer, rawProduce, rawRedis, type Rate } from './baselines.ts';
import { benchPlatformEnv, buildFunctions, cpuSecondsOf, imageNodeOptions, mainProfile, ROOT, scrapeCounters, startFunction, stopProcess } from './processes.ts';
import { summariseFile, type SelfTime } from './profile-summary.ts';
import { call, say, sleep } from './common.ts';

const quick = process.argv.includes('--quick');
const cfg = loadConfig(
  commonSchema.pick({ PIONEER_KAFKA_BROKERS: true }).extend({
    PIONEER_REDIS_URL: env.url(['redis', 'rediss']),
    BENCH_TENANTS: env.int(1, 10000).default(100),
    BENCH_PARTITIONS: env.int(1, 64).default(4),
    BENCH_BASELINE_EVENTS: env.int(1000, 10_000_000).default(quick ? 30_000 : 200_000),
    BENCH_ROUTE_EVENTS: env.int(1000, 10_000_000).default(quick ? 30_000 : 100_000),
    BENCH_NODE_OPTIONS: z.string().default(imageNodeOptions()),
    BENCH_OUT: z.string().default(path.join(ROOT, 'bench/results')),
    BENCH_RUN_DIR: z.string().default(path.join(ROOT, '.run', `bench-${process.pid}`)),
    BENCH_KAFKA_PID: env.int(1, 1 << 30).optional(),
    BENCH_REDIS_PID: env.int(1, 1 << 30).optional(),
    BENCH_PROFILE: env.bool().default(false),
  }),
);
const CLIENTS: KafkaClientKind[] = ['kafkajs', 'platformatic'];
const log = createLogger({ level: 'silent' });
const tag = randomBytes(3).toString('hex');
const us = (v: number) => Number(v.toFixed(1));
const rate = (count: number, ms: number): Rate => ({ count, seconds: Number((ms / 1000).toFixed(3)), per_s: Math.round((count * 1000) / ms) });

/** Reads `count` records of `topic` with a fresh group of `kind`'s client, as the trigger does; the clock starts at the first batch. */
async function rawConsume(kind: KafkaClientKind, topic: string, count: number, round: number): Promise<Rate> {
  const client = createKafkaClient({ PIONEER_KAFKA_BROKERS: cfg.PIONEER_KAFKA_BROKERS, PIONEER_KAFKA_CLIENT: kind, PIONEER_KAFKA_CLIENT_ID: `bench-raw-${kind}`, PIONEER_KAFKA_SSL: false }, { log });
  const consumer = client.consumer({
    groupId: `bench-raw-${kind}-${round}-${tag}`, topics: [topic], fromBeginning: true, sessionTimeoutMs: 10_000, heartbeatIntervalMs: 3000,
    rebalanceTimeoutMs: 20_000, maxBytesPerPartition: 1024 * 1024, partitionsConsumedConcurrently: cfg.BENCH_PARTITIONS,
  });
  let seen = 0;
  let first = 0;
  let last = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  await consumer.run(async ({ records }, control) => {
    if (first === 0) first = performance.now();
    let bytes = 0;
    for (const r of records) bytes += r.value?.length ?? 0; // touch each record
    seen += records.length + (bytes < 0 ? 1 : 0);
    await control.commit(String(BigInt(records[records.length - 1]!.offset) + 1n));
    if (seen >= count && last === 0) {
      last = performance.now();
      finish();
    }
  });
  const timer = setTimeout(() => finish(), 300_000);
  try {
    await done;
    if (last === 0) throw new Error(`the raw ${kind} consume read ${seen} of ${count} records in 300 s`);
    return rate(seen, last - first);
  } finally {
    clearTimeout(timer);
    await consumer.stop();
  }
}

async function main() {
  mkdirSync(cfg.BENCH_RUN_DIR, { recursive: true });
  mkdirSync(cfg.BENCH_OUT, { recursive: true });
  const kafka = createKafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId: 'bench-clients', log });
  const redis = new Redis(cfg.PIONEER_REDIS_URL, { maxRetriesPerRequest: 3 });
  const pids = { kafka: cfg.BENCH_KAFKA_PID, redis: cfg.BENCH_REDIS_PID };
  const cpuOf = (pid: number | undefined) => cpuSecondsOf(pid) ?? 0;
  const depsCpu = () => cpuOf(pids.kafka) + cpuOf(pids.redis) + cpuOf(process.pid);
  const rawTopic = `bench-raw-${tag}`;
  const sources = Object.fromEntries(CLIENTS.map((k) => [k, `bench-source-${k}-${tag}`])) as Record<KafkaClientKind, string>;
  const fnMain = buildFunctions(path.join(cfg.BENCH_RUN_DIR, 'fn-dist'));
  await ensureTopics(kafka, [rawTopic, ...Object.values(sources)].map((topic) => ({ topic, numPartitions: cfg.BENCH_PARTITIONS })));
  const processes: Awaited<ReturnType<typeof startFunction>>[] = [];
  try {
    // ---- 1. the floor
    const tenantIds = Array.from({ length: cfg.BENCH_TENANTS }, (_, i) => `ten_bench${String(i).padStart(4, '0')}`);
    const poolGen = createGenerator({ tenants: tenantIds, runTag: `raw-${tag}`, seed: 11 });
    const pool: Message[] = [];
    const entries: { type: string; event: string }[] = [];
    for (let i = 0; i < 20_000; i++) {
      const { event, message } = poolGen.next(Date.now(), 0);
      pool.push(message);
      entries.push({ type: event.type, event: JSON.stringify(event) });
    }
    say(`floor: raw kafkajs produce of ${cfg.BENCH_BASELINE_EVENTS} records`);
    let cpu0 = depsCpu();
    const produced = await rawProduce(kafka, rawTopic, pool, cfg.BENCH_BASELINE_EVENTS);
    const produceUs = us(((depsCpu() - cpu0) * 1e6) / produced.count);
    const consumed = {} as Record<KafkaClientKind, Rate & { us_per_record: number }>;
    // each client twice, alternating, the better of the two kept: the first read of a topic also warms the page cache
    for (const round of [0, 1]) {
      for (const kind of CLIENTS) {
        say(`floor: raw consume with ${kind} (round ${round + 1} of 2)`);
        cpu0 = depsCpu();
        const r = await rawConsume(kind, rawTopic, cfg.BENCH_BASELINE_EVENTS, round);
        const perRecord = us(((depsCpu() - cpu0) * 1e6) / r.count);
        if (!consumed[kind] || r.per_s > consumed[kind].per_s) consumed[kind] = { ...r, us_per_record: perRecord };
      }
    }
    say('floor: raw Redis XADD/XREAD');
    cpu0 = depsCpu();
    const redisRates = await rawRedis(redis, entries, { count: cfg.BENCH_BASELINE_EVENTS, streams: cfg.BENCH_TENANTS * 10, prefix: `bench-raw-${tag}` });
    const redisUs = us(((depsCpu() - cpu0) * 1e6) / redisRates.xadd.count);

    // ---- 2. the route with each client
    const adminKey = generateApiKey();
    const baseEnv: Record<string, string> = { ...benchPlatformEnv(cfg, adminKey), PIONEER_DEAD_LETTER_TOPIC: `bench-dead-${tag}` };
    const subscriptionsFn = await startFunction('subscriptions', baseEnv, { nodeOptions: cfg.BENCH_NODE_OPTIONS, main: fnMain });
    processes.push(subscriptionsFn);
    say(`creating ${cfg.BENCH_TENANTS} tenants and ${cfg.BENCH_TENANTS * 10} subscriptions`);
    const tenants: string[] = [];
    for (let i = 0; i < cfg.BENCH_TENANTS; i++) {
      const t = await call(subscriptionsFn.url, adminKey, 'POST', '/v1/tenants', { name: `bench tenant ${i}` });
      tenants.push(t.id);
      for (const spec of subscriptionsOf(i)) await call(subscriptionsFn.url, t.key.key, 'POST', '/v1/subscriptions', spec);
    }
    const producer = benchProducer(kafka);
    await producer.connect();
    for (const kind of CLIENTS) {
      // the same events (same seed) into each client's topic, each with ids of its own (no append is skipped as seen)
      say(`route: producing ${cfg.BENCH_ROUTE_EVENTS} events into ${sources[kind]}`);
      await produceCount({ producer, topic: sources[kind], generator: createGenerator({ tenants, runTag: `${tag}-${kind}`, seed: 7 }), count: cfg.BENCH_ROUTE_EVENTS, phase: 0 });
    }
    await producer.disconnect();

    const routes = {} as Record<KafkaClientKind, Record<string, number>>;
    const profileDir = cfg.BENCH_PROFILE ? path.join(cfg.BENCH_OUT, 'profiles') : undefined;
    const profiles: Record<string, { file: string; total_ms: number; rows: SelfTime[] }> = {};
    for (const kind of CLIENTS) {
      say(`route: catching up on ${cfg.BENCH_ROUTE_EVENTS} events with ${kind}`);
      const route = await startFunction('route', {
        ...baseEnv, PIONEER_KAFKA_CLIENT: kind, PIONEER_SOURCE_TOPICS: sources[kind], PIONEER_ROUTE_GROUP: `bench-route-${kind}-${tag}`,
      }, { nodeOptions: cfg.BENCH_NODE_OPTIONS, main: fnMain, ...(profileDir ? { profileDir, profileLabel: `route-${kind}` } : {}) });
      processes.push(route);
      const sample = async () => {
        const c = await scrapeCounters(route.url, ['pioneer_route_events_total', 'pioneer_route_appends_total']);
        return { t: performance.now(), events: c['pioneer_route_events_total']!, appends: c['pioneer_route_appends_total']!, route: cpuOf(route.child.pid), kafka: cpuOf(pids.kafka), redis: cpuOf(pids.redis) };
      };
      let first: Awaited<ReturnType<typeof sample>> | null = null;
      let last: Awaited<ReturnType<typeof sample>> | null = null;
      const deadline = Date.now() + 900_000;
      while (Date.now() < deadline) {
        const s = await sample();
        if (!first && s.events > 0) first = s;
        last = s;
        if (s.events >= cfg.BENCH_ROUTE_EVENTS) break;
        await sleep(100);
      }
      if (!first || !last || last.events < cfg.BENCH_ROUTE_EVENTS) throw new Error(`the route on ${kind} read ${last?.events ?? 0} of ${cfg.BENCH_ROUTE_EVENTS} events in time`);
      const events = last.events - first.events;
      const seconds = (last.t - first.t) / 1000;
      routes[kind] = {
        events_per_s: Math.round(events / seconds),
        appends_per_event: Number((last.appends / last.events).toFixed(3)),
        route_us_per_event: us(((last.route - first.route) * 1e6) / events),
        kafka_us_per_event: us(((last.kafka - first.kafka) * 1e6) / events),
        redis_us_per_event: us(((last.redis - first.redis) * 1e6) / events),
        vs_raw_consume: Number((events / seconds / consumed[kind].per_s).toFixed(3)),
        seconds: Number(seconds.toFixed(2)),
      };
      await stopProcess(route);
      processes.splice(processes.indexOf(route), 1);
      const profile = profileDir && mainProfile(path.join(profileDir, `route-${kind}`));
      if (profile) profiles[kind] = { file: path.relative(ROOT, profile), ...summariseFile(profile, 30) };
    }

    // ---- 3. the box
    const cores = cpus().length;
    const floorUs = (kind: KafkaClientKind, appendsPerEvent: number) => us(produceUs + consumed[kind].us_per_record + appendsPerEvent * redisUs);
    const result = {
      when: new Date().toISOString(),
      mode: quick ? 'quick' : 'full',
      machine: { cpus: cores, model: cpus()[0]?.model ?? '' },
      settings: { tenants: cfg.BENCH_TENANTS, subscriptions: cfg.BENCH_TENANTS * 10, partitions: cfg.BENCH_PARTITIONS, baseline_records: cfg.BENCH_BASELINE_EVENTS, route_events: cfg.BENCH_ROUTE_EVENTS },
      floor: { kafkajs_produce: { ...produced, us_per_record: produceUs }, consume: consumed, redis: { ...redisRates, us_per_xadd_and_xread: redisUs } },
      route: routes,
      profiles,
      box: Object.fromEntries(CLIENTS.map((k) => {
        const floor = floorUs(k, routes[k]!['appends_per_event']!);
        const total = floor + routes[k]!['route_us_per_event']!;
        return [k, { floor_us_per_event: floor, floor_and_route_us_per_event: us(total), ceiling_events_per_s: Math.round((cores * 1e6) / total) }];
      })),
    };
    writeFileSync(path.join(cfg.BENCH_OUT, `kafka-clients${quick ? '-quick' : ''}.json`), JSON.stringify(result, null, 2) + '\n');
    const row = (label: string, f: (k: KafkaClientKind) => string | number) => `${label.padEnd(44)}${CLIENTS.map((k) => String(f(k)).padStart(14)).join('')}`;
    process.stdout.write([
      `Kafka clients (${result.mode}): ${cfg.BENCH_TENANTS} tenants, ${cfg.BENCH_TENANTS * 10} subscriptions, ${cfg.BENCH_PARTITIONS} partitions, ${cores} CPUs`,
      `raw kafkajs produce: ${produced.per_s} records/s, ${produceUs} µs/record; raw Redis XADD ${redisRates.xadd.per_s}/s, XREAD ${redisRates.xread.per_s}/s, ${redisUs} µs per entry`,
      row('', (k) => k),
      row('raw consume, records/s', (k) => consumed[k].per_s),
      row('raw consume, µs CPU/record (incl. broker)', (k) => consumed[k].us_per_record),
      row('route, events/s catching up', (k) => routes[k]!['events_per_s']!),
      row('route / raw consume (same client)', (k) => routes[k]!['vs_raw_consume']!),
      row('route process, µs CPU/event', (k) => routes[k]!['route_us_per_event']!),
      row('broker during the route, µs CPU/event', (k) => routes[k]!['kafka_us_per_event']!),
      row('Redis during the route, µs CPU/event', (k) => routes[k]!['redis_us_per_event']!),
      row('floor (produce+consume+appends), µs/event', (k) => result.box[k]!.floor_us_per_event),
      row('box ceiling (floor + route), events/s', (k) => result.box[k]!.ceiling_events_per_s),
      '',
      ...Object.entries(profiles).flatMap(([k, p]) => [
        `route on ${k}: top self time (${p.total_ms} ms sampled, start-up and the whole catch-up)`,
        ...p.rows.slice(0, 20).map((row) => `  ${(row.share * 100).toFixed(1).padStart(5)}%  ${row.function}  ${row.where}`),
        '',
      ]),
    ].join('\n'));
  } finally {
    for (const p of processes) await stopProcess(p).catch(() => {});
    redis.disconnect();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench: failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
