/**
 * The pipeline benchmark: source topic → route → Redis Streams → gateway (SSE) → consumer SDK CLI → FileSink,
 * against raw kafkajs and raw Redis measured in the same run on the same Kafka and Redis.
 *
 *   1. baselines: raw kafkajs produce and consume of records like the source ones, same partitions;
 *      raw Redis XADD/XREAD (pipelined) of entries like the delivered ones, and bytes per entry
 *   2. 100 tenants, 1,000 subscriptions of mixed filters (bench/subscription-mix.ts), through the API
 *   3. route throughput: the source topic filled at full speed by the generator, then the route started on it:
 *      events/s in and appends/s out while it catches up, against the raw consume rate; Redis bytes per event
 *   4. end-to-end latency at fixed rates (produce timestamp in the event → the line in the consumer's file),
 *      one compiled pioneer-consumer per sampled subscription; the other streams buffer (emptied between phases)
 *   5. the highest rate held for the hold time with p99 under 1 s (upward from the fixed rates, or bisecting)
 *   peak RSS and CPU of every process per phase; with BENCH_PROFILE=1 CPU profiles of route and gateway.
 *   During the fixed rates deliver and insights run too: deliver pushes BENCH_WEBHOOKS subscriptions (one per
 *   tenant, none sampled) to a receiver in this process that answers 204 at once; insights reads the source
 *   topic from its end (none of this workload's types is an insights type: it reads and passes over every
 *   record, as it does on a topic's non-advertising traffic). BENCH_WEBHOOKS=0 and BENCH_INSIGHTS=false leave
 *   them out.
 *
 * Prints a table, writes bench/results/pipeline[-quick].json and the latency chart pipeline[-quick].svg.
 *
 *   scripts/bench.sh [--quick]      (starts Kafka and Redis, runs this, stops them)
 *   PIONEER_KAFKA_BROKERS=… PIONEER_REDIS_URL=… npx tsx bench/pipeline.ts [--quick]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { Redis } from 'ioredis';
import { Kafka, logLevel, type Message } from 'kafkajs';
import { commonSchema, env, loadConfig } from '../platform/config/env.ts';
import { createKafka, ensureTopics } from '../platform/kafka/client.ts';
import { createLogger } from '../platform/telemetry/logger.ts';
import { generateApiKey } from '../platform/auth/api-keys.ts';
import { keys } from '../platform/redis/keys.ts';
import type { CloudEventJson } from '../platform/events/cloudevent.ts';
import { createGenerator, produceAtRate, produceCount } from './generator.ts';
import { matcherOf, subscriptionsOf, type SubscriptionSpec } from './subscription-mix.ts';
import { appendScript, benchProducer, rawConsume, rawProduce, rawRedis, type Rate, type RedisBaseline } from './baselines.ts';
import {
  benchPlatformEnv, consumerNodeOptions, ROOT, buildConsumerCli, imageNodeOptions, buildFunctions, cpuSecondsOf, mainProfile, createMemorySampler, scrapeCounters, startConsumer, startFunction, stopProcess, type Managed,
} from './processes.ts';
import { createDeliveryTail } from './delivery-tail.ts';
import { latencyChart } from './chart.ts';
import { summariseFile, type SelfTime } from './profile-summary.ts';
import { say, sleep, percentile } from './common.ts';

const quick = process.argv.includes('--quick');
const cfg = loadConfig(
  commonSchema.pick({ PIONEER_KAFKA_BROKERS: true }).extend({
    PIONEER_REDIS_URL: env.url(['redis', 'rediss']),
    BENCH_TENANTS: env.int(1, 10000).default(100),
    BENCH_PARTITIONS: env.int(1, 64).default(4),
    BENCH_CONSUMERS: env.int(1, 10).default(4),
    BENCH_WEBHOOKS: env.int(0, 1000).default(20),
    BENCH_INSIGHTS: env.bool().default(true),
    BENCH_BASELINE_EVENTS: env.int(1000, 10_000_000).default(quick ? 30_000 : 200_000),
    BENCH_BURST_EVENTS: env.int(1000, 10_000_000).default(quick ? 30_000 : 200_000),
    BENCH_RATES: env.list().default(['1000', '5000', '10000']).transform((l) => l.map(Number)).pipe(z.array(z.number().int().min(100).max(1_000_000)).min(1)),
    BENCH_PHASE_SECONDS: env.int(2, 3600).default(quick ? 10 : 60),
    BENCH_SEARCH_STEPS: env.int(0, 10).default(quick ? 1 : 3),
    BENCH_PROFILE: env.bool().default(false),
    /** node flags for the function processes; by default the container image's NODE_OPTIONS (its heap limit) */
    BENCH_NODE_OPTIONS: z.string().default(imageNodeOptions()),
    /** NODE_OPTIONS of the consumer CLIs; by default what the consumer SDK's README recommends */
    BENCH_CONSUMER_NODE_OPTIONS: z.string().default(consumerNodeOptions()),
    BENCH_SOURCE_MODE: z.enum(['binary', 'structured']).default('structured'),
    /** compiled: the functions as the container image runs them (JavaScript on plain node); source: through tsx */
    BENCH_FUNCTIONS: z.enum(['compiled', 'source']).default('compiled'),
    BENCH_OUT: z.string().default(path.join(ROOT, 'bench/results')),
    BENCH_RUN_DIR: z.string().default(path.join(ROOT, '.run', `bench-${process.pid}`)),
    BENCH_KAFKA_PID: env.int(1, 1 << 30).optional(),
    BENCH_REDIS_PID: env.int(1, 1 << 30).optional(),
  }),
);

const log = createLogger({ level: 'silent' }); // kafkajs' transient start-up complaints would drown the table; failures throw
const tag = randomBytes(3).toString('hex');
const sourceTopic = `bench-source-${tag}`;
const rawTopic = `bench-raw-${tag}`;
const P99_TARGET_MS = 1000;

interface Sampled {
  tenantIndex: number;
  tenantId: string;
  subId: string;
  spec: SubscriptionSpec;
  matches: (e: Record<string, unknown>) => boolean;
}

export interface PhaseResult {
  phase: number;
  kind: 'fixed' | 'search';
  target_rate: number;
  produced_rate: number;
  seconds: number;
  route_events_per_s: number;
  route_appends_per_s: number;
  /** partition batches the route handled: per second, mean events in one, mean time to route one */
  route_batches_per_s: number;
  route_events_per_batch: number;
  route_batch_ms: number;
  delivered: number;
  expected: number;
  missing: number;
  duplicates: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  max_ms: number;
  /** the part of the latency until the route appended the event (the rest is the gateway, the consumer and its file) */
  to_append_p50_ms: number;
  to_append_p99_ms: number;
  held: boolean;
  stopped_early: string | null;
  redis_bytes_per_append: number | null;
  peak_rss_mib: Record<string, number>;
  cpu_percent: Record<string, number>;
  /** each process's CPU from the phase's start until its events were drained, per source event sent (µs) */
  cpu_us_per_event: Record<string, number>;
  /** webhook requests the receiver answered during the phase and its drain */
  webhooks_delivered: number;
}


async function usedMemory(redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
}

async function api(base: string, key: string, method: string, p: string, body?: unknown): Promise<any> {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(base + p, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (res.status < 300) return text ? JSON.parse(text) : null;
    if (attempt >= 3 || res.status < 500) throw new Error(`${method} ${p} answered ${res.status}: ${text}`);
    await sleep(200 * attempt);
  }
}

async function inParallel<T>(items: T[], width: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  }));
}

/** Waits until the consumer group `groupId` is stable with a member (the route took its partitions). */
async function waitForGroup(kafka: ReturnType<typeof createKafka>, groupId: string): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (let i = 0; i < 600; i++) {
      const { groups } = await admin.describeGroups([groupId]);
      if (groups[0]?.state === 'Stable' && groups[0].members.length > 0) return;
      await sleep(100);
    }
    throw new Error(`the route's group ${groupId} did not settle`);
  } finally {
    await admin.disconnect();
  }
}

async function main() {
  const runDir = cfg.BENCH_RUN_DIR;
  const profileDir = cfg.BENCH_PROFILE ? path.join(cfg.BENCH_OUT, 'profiles') : undefined;
  mkdirSync(runDir, { recursive: true });
  mkdirSync(cfg.BENCH_OUT, { recursive: true });
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const started = Date.now();
  const kafka = createKafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId: 'bench-pipeline', log });
  const redis = new Redis(cfg.PIONEER_REDIS_URL, { maxRetriesPerRequest: 3 });
  const memory = createMemorySampler(500);
  if (cfg.BENCH_KAFKA_PID) memory.watch('kafka', cfg.BENCH_KAFKA_PID);
  if (cfg.BENCH_REDIS_PID) memory.watch('redis', cfg.BENCH_REDIS_PID);
  const pids: Record<string, number | undefined> = { kafka: cfg.BENCH_KAFKA_PID, redis: cfg.BENCH_REDIS_PID, bench: process.pid };
  const processes: Managed[] = [];
  const tail = createDeliveryTail();

  const cli = buildConsumerCli(path.join(runDir, 'sdk-dist'));
  const fnMain = cfg.BENCH_FUNCTIONS === 'compiled' ? buildFunctions(path.join(runDir, 'fn-dist')) : undefined;
  await ensureTopics(kafka, [{ topic: sourceTopic, numPartitions: cfg.BENCH_PARTITIONS }, { topic: rawTopic, numPartitions: cfg.BENCH_PARTITIONS }]);

  try {
    // ---- 1. baselines
    const tenantIds = Array.from({ length: cfg.BENCH_TENANTS }, (_, i) => `ten_bench${String(i).padStart(4, '0')}`);
    const poolGen = createGenerator({ tenants: tenantIds, runTag: `raw-${tag}`, seed: 11, mode: cfg.BENCH_SOURCE_MODE });
    const pool: Message[] = [];
    const redisEntries: { type: string; event: string }[] = [];
    for (let i = 0; i < 20_000; i++) {
      const { event, message } = poolGen.next(Date.now(), 0);
      pool.push(message);
      redisEntries.push({ type: event.type, event: JSON.stringify(event) });
    }
    // the CPU the broker, Redis and this process spend per record in each baseline: nothing of the platform runs
    // yet, so their sum per source event is what carrying the events costs before any platform code does anything
    const depsCpu = () => (cpuSecondsOf(pids['kafka']) ?? 0) + (cpuSecondsOf(pids['redis']) ?? 0) + (cpuSecondsOf(process.pid) ?? 0);
    const cpuUsPer = (since: number, count: number) => Number((((depsCpu() - since) * 1e6) / count).toFixed(1));
    say(`baseline: raw kafkajs produce of ${cfg.BENCH_BASELINE_EVENTS} records`);
    let cpu0 = depsCpu();
    const rawProduceRate = await rawProduce(kafka, rawTopic, pool, cfg.BENCH_BASELINE_EVENTS);
    const produceUs = cpuUsPer(cpu0, rawProduceRate.count);
    say(`baseline: raw kafkajs consume`);
    cpu0 = depsCpu();
    const rawConsumeRate = await rawConsume(kafka, rawTopic, cfg.BENCH_BASELINE_EVENTS + 10, { partitions: cfg.BENCH_PARTITIONS });
    const consumeUs = cpuUsPer(cpu0, rawConsumeRate.count);
    say(`baseline: raw Redis XADD/XREAD`);
    cpu0 = depsCpu();
    const rawRedisRates: RedisBaseline = await rawRedis(redis, redisEntries, {
      count: cfg.BENCH_BASELINE_EVENTS, streams: cfg.BENCH_TENANTS * 10, prefix: `bench-raw-${tag}`,
    });
    const redisUs = cpuUsPer(cpu0, rawRedisRates.xadd.count);
    say(`baseline: the append script, pipelined`);
    const appendRate = await appendScript(cfg.PIONEER_REDIS_URL, redisEntries, {
      count: cfg.BENCH_BASELINE_EVENTS, streams: cfg.BENCH_TENANTS * 10, prefix: `bench-append-${tag}`,
    });
    pool.length = 0;
    redisEntries.length = 0;

    // ---- 2. platform, tenants, subscriptions
    const adminKey = generateApiKey();
    const fnEnv: Record<string, string> = {
      ...benchPlatformEnv(cfg, adminKey),
      PIONEER_SOURCE_TOPICS: sourceTopic,
      PIONEER_ROUTE_GROUP: `bench-route-${tag}`,
      PIONEER_DEAD_LETTER_TOPIC: `bench-dead-${tag}`,
      PIONEER_SSE_MAX_PER_TENANT: '1000',
      // the webhook receiver is this process, on loopback
      PIONEER_WEBHOOK_ALLOW_HTTP: 'true',
      PIONEER_WEBHOOK_ALLOW_NETWORKS: 'loopback',
      PIONEER_INSIGHTS_GROUP: `bench-insights-${tag}`,
    };
    say('starting subscriptions and gateway');
    const subscriptionsFn = await startFunction('subscriptions', fnEnv, { nodeOptions: cfg.BENCH_NODE_OPTIONS, ...(fnMain ? { main: fnMain } : {}) });
    const fnOpts = { nodeOptions: cfg.BENCH_NODE_OPTIONS, ...(fnMain ? { main: fnMain } : {}), ...(profileDir ? { profileDir } : {}) };
    const gateway = await startFunction('gateway', fnEnv, fnOpts);
    processes.push(subscriptionsFn, gateway);
    memory.watch('subscriptions', subscriptionsFn.child.pid);
    memory.watch('gateway', gateway.child.pid);
    pids['subscriptions'] = subscriptionsFn.child.pid;
    pids['gateway'] = gateway.child.pid;

    say(`creating ${cfg.BENCH_TENANTS} tenants and ${cfg.BENCH_TENANTS * 10} subscriptions`);
    const tenants: { id: string; key: string }[] = new Array(cfg.BENCH_TENANTS);
    await inParallel(tenantIds, 8, async (_, i) => {
      const t = await api(subscriptionsFn.url, adminKey, 'POST', '/v1/tenants', { name: `bench tenant ${i}` });
      tenants[i] = { id: t.id, key: t.key.key };
    });
    const subsOf: { id: string; spec: SubscriptionSpec }[][] = tenants.map(() => []);
    await inParallel(tenants, 8, async (t, i) => {
      for (const spec of subscriptionsOf(i)) {
        const s = await api(subscriptionsFn.url, t.key, 'POST', '/v1/subscriptions', spec);
        subsOf[i]!.push({ id: s.id, spec });
      }
    });
    const tenantList = tenants.map((t) => t.id);
    const ranks = [0, 1, 3, 9, 19, 49, 2, 5, 7, 11].filter((r) => r < cfg.BENCH_TENANTS).slice(0, cfg.BENCH_CONSUMERS);
    const sampled: Sampled[] = ranks.map((r) => {
      const chosen = subsOf[r]!.find((s) => s.spec.name === 'all payments') ?? subsOf[r]![0]!;
      return { tenantIndex: r, tenantId: tenants[r]!.id, subId: chosen.id, spec: chosen.spec, matches: matcherOf(chosen.spec) };
    });
    const sampledIds = new Set(sampled.map((s) => s.subId));
    const bufferedStreams = tenants.flatMap((t, i) => subsOf[i]!.filter((s) => !sampledIds.has(s.id)).map((s) => keys.stream(t.id, s.id)));
    const emptyBuffers = async () => {
      for (let i = 0; i < bufferedStreams.length; i += 200) await redis.del(...bufferedStreams.slice(i, i + 200)); // DEL, not UNLINK: freed before the next INFO memory
    };

    // ---- 3. route throughput: fill the source topic, then let the route catch up
    const generator = createGenerator({ tenants: tenantList, runTag: tag, seed: 7, mode: cfg.BENCH_SOURCE_MODE });
    const producer = benchProducer(kafka);
    await producer.connect();
    say(`burst: producing ${cfg.BENCH_BURST_EVENTS} events at full speed`);
    const burstProduce = await produceCount({ producer, topic: sourceTopic, generator, count: cfg.BENCH_BURST_EVENTS, phase: 0 });
    const memBefore = await usedMemory(redis);
    const cpuBefore = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSecondsOf(p) ?? 0]));
    memory.take();
    say('burst: starting the route on the filled topic');
    let route = await startFunction('route', fnEnv, { ...fnOpts, profileLabel: 'route-catching-up' });
    processes.push(route);
    memory.watch('route', route.child.pid);
    pids['route'] = route.child.pid;
    const counters = () => scrapeCounters(route.url, ['pioneer_route_events_total', 'pioneer_route_appends_total', 'pioneer_route_batch_seconds_count', 'pioneer_route_batch_seconds_sum']);
    let first: { t: number; events: number; appends: number } | null = null;
    let last: { t: number; events: number; appends: number } | null = null;
    const burstDeadline = Date.now() + 900_000;
    for (let i = 0; Date.now() < burstDeadline && i < 1_000_000; i++) {
      const c = await counters();
      const s = { t: performance.now(), events: c['pioneer_route_events_total']!, appends: c['pioneer_route_appends_total']! };
      if (!first && s.events > 0) first = s;
      last = s;
      if (s.events >= cfg.BENCH_BURST_EVENTS) break;
      await sleep(100);
    }
    if (!first || !last || last.events < cfg.BENCH_BURST_EVENTS) throw new Error(`the route read ${last?.events ?? 0} of ${cfg.BENCH_BURST_EVENTS} burst events in time`);
    const burstSeconds = (last.t - first.t) / 1000;
    const routeIn = Math.round((last.events - first.events) / burstSeconds);
    const routeOut = Math.round((last.appends - first.appends) / burstSeconds);
    await sleep(300);
    const memAfter = await usedMemory(redis);
    const burstCpu = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, Math.round((((cpuSecondsOf(p) ?? 0) - (cpuBefore[k] ?? 0)) / burstSeconds) * 100)]));
    const burst = {
      events: cfg.BENCH_BURST_EVENTS,
      generator_events_per_s: burstProduce.rate,
      route_events_per_s: routeIn,
      route_appends_per_s: routeOut,
      appends_per_event: Number((last.appends / last.events).toFixed(3)),
      route_vs_raw_consume: Number((routeIn / rawConsumeRate.per_s).toFixed(3)),
      appends_vs_raw_xadd: Number((routeOut / rawRedisRates.xadd.per_s).toFixed(3)),
      appends_vs_append_script: Number((routeOut / appendRate.per_s).toFixed(3)),
      redis_bytes_per_append: Math.round((memAfter - memBefore) / last.appends),
      redis_bytes_per_event: Math.round((memAfter - memBefore) / last.events),
      seconds: Number(burstSeconds.toFixed(2)),
      peak_rss_mib: memory.take(),
      route_high_water_rss_mib: 0,
      // every source event is produced and consumed once, and each append written and read once
      cpu_floor: cpuFloor(produceUs, consumeUs, redisUs, last.appends / last.events),
      cpu_percent_incl_start: burstCpu,
    };
    burst.route_high_water_rss_mib = memory.highWater()['route'] ?? 0;
    say(`burst: route ${routeIn} events/s in, ${routeOut} appends/s out (${burst.route_vs_raw_consume} of raw consume)`);
    // a fresh route process for the fixed rates (it carries on from the committed offsets): V8 keeps the heap it
    // grew while catching up, so the memory at a steady rate is measured apart from the memory of catching up
    await stopProcess(route);
    processes.splice(processes.indexOf(route), 1);
    memory.forget('route');
    route = await startFunction('route', fnEnv, fnOpts);
    processes.push(route);
    memory.watch('route', route.child.pid);
    pids['route'] = route.child.pid;
    await waitForGroup(kafka, fnEnv['PIONEER_ROUTE_GROUP']!);

    // ---- 4. consumers on the sampled subscriptions, from the end of their streams
    for (const s of sampled) {
      const dir = path.join(runDir, 'consumers', s.subId);
      mkdirSync(dir, { recursive: true });
      const lastEntry = (await redis.xrevrange(keys.stream(s.tenantId, s.subId), '+', '-', 'COUNT', 1))[0]?.[0];
      const key = (await api(subscriptionsFn.url, tenants[s.tenantIndex]!.key, 'POST', `/v1/tenants/${s.tenantId}/keys`, { role: 'consumer' })).key as string;
      const name = `consumer-${sampled.indexOf(s)}`;
      const c = startConsumer(cli, {
        url: gateway.url, apiKey: key, subscription: s.subId, dir, name, nodeOptions: cfg.BENCH_CONSUMER_NODE_OPTIONS, ...(lastEntry ? { startAfter: lastEntry } : {}),
      });
      processes.push(c);
      memory.watch(name, c.child.pid);
      pids[name] = c.child.pid;
      tail.follow(s.subId, dir);
    }
    for (let i = 0; i < 300; i++) {
      const open = (await scrapeCounters(gateway.url, ['pioneer_gateway_sse_connections']))['pioneer_gateway_sse_connections']!;
      if (open >= sampled.length) break;
      if (i === 299) throw new Error(`only ${open} of ${sampled.length} consumers connected`);
      await sleep(100);
    }
    // ---- 4b. deliver and insights on the same events
    const hooks = new Map<string, number>();
    const receiver = http.createServer((req, res) => {
      const sub = (req.url ?? '/').slice(1);
      req.resume();
      req.on('end', () => {
        hooks.set(sub, (hooks.get(sub) ?? 0) + 1);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiver.unref();
    const receiverPort = (receiver.address() as AddressInfo).port;
    const hooked = tenants
      .map((t, i) => ({ tenant: t, sub: subsOf[i]!.find((s) => !sampledIds.has(s.id)) }))
      .filter((h): h is { tenant: (typeof tenants)[number]; sub: { id: string; spec: SubscriptionSpec } } => h.sub !== undefined)
      .slice(0, cfg.BENCH_WEBHOOKS);
    for (const h of hooked) await api(subscriptionsFn.url, h.tenant.key, 'PATCH', `/v1/subscriptions/${h.sub.id}`, { sink: `http://127.0.0.1:${receiverPort}/${h.sub.id}` });
    const hookedIds = new Set(hooked.map((h) => h.sub.id));
    bufferedStreams.splice(0, bufferedStreams.length, ...bufferedStreams.filter((k) => ![...hookedIds].some((id) => k.endsWith(`:${id}`))));
    if (hooked.length > 0) {
      say(`starting deliver: ${hooked.length} subscriptions with a webhook sink on a receiver at 127.0.0.1:${receiverPort}`);
      const deliver = await startFunction('deliver', fnEnv, fnOpts);
      processes.push(deliver);
      memory.watch('deliver', deliver.child.pid);
      pids['deliver'] = deliver.child.pid;
    }
    if (cfg.BENCH_INSIGHTS) {
      // from the topic's end: what the burst put there is not this measurement's
      const admin = new Kafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      const ends = await admin.fetchTopicOffsets(sourceTopic);
      await admin.setOffsets({ groupId: fnEnv['PIONEER_INSIGHTS_GROUP']!, topic: sourceTopic, partitions: ends.map((e) => ({ partition: e.partition, offset: e.high })) });
      await admin.disconnect();
      say('starting insights');
      const insights = await startFunction('insights', fnEnv, fnOpts);
      processes.push(insights);
      memory.watch('insights', insights.child.pid);
      pids['insights'] = insights.child.pid;
      await waitForGroup(kafka, fnEnv['PIONEER_INSIGHTS_GROUP']!);
    }
    await emptyBuffers();

    // ---- 5. fixed rates, then the search for the highest rate held
    const phases: PhaseResult[] = [];
    let phaseNo = 0;
    const runPhase = async (rate: number, kind: PhaseResult['kind']): Promise<PhaseResult> => {
      const phase = ++phaseNo;
      say(`phase ${phase}: ${rate} events/s for ${cfg.BENCH_PHASE_SECONDS} s`);
      const expected = new Map(sampled.map((s) => [s.subId, 0]));
      const byTenant = new Map<string, Sampled[]>();
      for (const s of sampled) byTenant.set(s.tenantId, [...(byTenant.get(s.tenantId) ?? []), s]);
      const onEvent = (e: CloudEventJson) => {
        const list = byTenant.get(e.tenantid!);
        if (list) for (const s of list) if (s.matches(e)) expected.set(s.subId, expected.get(s.subId)! + 1);
      };
      const memStart = await usedMemory(redis);
      const hooks0 = [...hooks.values()].reduce((a, b) => a + b, 0);
      const c0 = await counters();
      const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSecondsOf(p) ?? 0]));
      memory.take();
      const t0 = performance.now();
      let stoppedEarly: string | null = null;
      let strikes = 0;
      let sentSoFar = 0;
      const sent = () => sentSoFar;
      const monitor = setInterval(() => {
        void counters().then((c) => {
          // the route was drained before the phase: what it is behind is what was sent since minus what it read since
          const lag = sent() - (c['pioneer_route_events_total']! - c0['pioneer_route_events_total']!);
          const latest = tail.latest();
          const slow = lag > rate * 5 || (latest.at > 0 && latest.latency > 5000);
          strikes = slow ? strikes + 1 : 0;
          if (strikes >= 4 && !stoppedEarly) stoppedEarly = lag > rate * 5 ? `route lag ${lag} events` : `latency ${latest.latency} ms`;
        }, () => {});
      }, 1000);
      const produced = await produceAtRate({
        producer, topic: sourceTopic, generator, rate, seconds: cfg.BENCH_PHASE_SECONDS, phase,
        onEvent: (e) => {
          sentSoFar++;
          onEvent(e);
        },
        stop: () => stoppedEarly !== null,
      });
      clearInterval(monitor);
      const produceSeconds = (performance.now() - t0) / 1000;
      const c1 = await counters();
      const routeRate = {
        events: Math.round((c1['pioneer_route_events_total']! - c0['pioneer_route_events_total']!) / produceSeconds),
        appends: Math.round((c1['pioneer_route_appends_total']! - c0['pioneer_route_appends_total']!) / produceSeconds),
      };
      const batches = c1['pioneer_route_batch_seconds_count']! - c0['pioneer_route_batch_seconds_count']!;
      const batchStats = {
        route_batches_per_s: Math.round(batches / produceSeconds),
        route_events_per_batch: batches ? Number(((c1['pioneer_route_events_total']! - c0['pioneer_route_events_total']!) / batches).toFixed(1)) : 0,
        route_batch_ms: batches ? Number((((c1['pioneer_route_batch_seconds_sum']! - c0['pioneer_route_batch_seconds_sum']!) / batches) * 1000).toFixed(1)) : 0,
      };
      const cpu = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, Math.round((((cpuSecondsOf(p) ?? 0) - (cpu0[k] ?? 0)) / produceSeconds) * 100)]));
      const peak = memory.take();
      // drain: the route through everything produced, each sampled consumer through its expected events
      const drainMs = stoppedEarly ? 120_000 : 30_000;
      const drainDeadline = Date.now() + drainMs;
      const d = tail.phase(phase);
      for (let i = 0; Date.now() < drainDeadline && i < 100_000; i++) {
        await tail.flush();
        const routeDone = (await counters())['pioneer_route_events_total']! - c0['pioneer_route_events_total']! >= produced.sent;
        if (routeDone && sampled.every((s) => (d.count.get(s.subId) ?? 0) >= expected.get(s.subId)!)) break;
        await sleep(100);
      }
      const memEnd = await usedMemory(redis);
      const webhooks = [...hooks.values()].reduce((a, b) => a + b, 0) - hooks0;
      const c2 = await counters();
      const cpuPerEvent = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, Number(((((cpuSecondsOf(p) ?? 0) - (cpu0[k] ?? 0)) * 1e6) / Math.max(1, produced.sent)).toFixed(1))]));
      const appends = c2['pioneer_route_appends_total']! - c0['pioneer_route_appends_total']!;
      const expectedTotal = [...expected.values()].reduce((a, b) => a + b, 0);
      const delivered = d.latencies.length;
      const missing = Math.max(0, expectedTotal - delivered);
      const lat = [...d.latencies, ...Array.from({ length: missing }, () => Infinity)].sort((a, b) => a - b);
      const toAppend = [...d.toAppend].sort((a, b) => a - b);
      const result: PhaseResult = {
        phase, kind, target_rate: rate, produced_rate: produced.rate, seconds: Number(produceSeconds.toFixed(1)),
        route_events_per_s: routeRate.events, route_appends_per_s: routeRate.appends, ...batchStats,
        delivered, expected: expectedTotal, missing, duplicates: d.duplicates,
        p50_ms: Math.round(percentile(lat, 50)), p95_ms: Math.round(percentile(lat, 95)), p99_ms: Math.round(percentile(lat, 99)), max_ms: Math.round(lat[lat.length - 1] ?? NaN),
        to_append_p50_ms: Math.round(percentile(toAppend, 50)), to_append_p99_ms: Math.round(percentile(toAppend, 99)),
        held: false, stopped_early: stoppedEarly,
        redis_bytes_per_append: appends > 0 ? Math.round((memEnd - memStart) / appends) : null,
        peak_rss_mib: peak, cpu_percent: cpu, cpu_us_per_event: cpuPerEvent, webhooks_delivered: webhooks,
      };
      result.held = !stoppedEarly && missing === 0 && produced.sent === Math.round(rate * cfg.BENCH_PHASE_SECONDS) && produced.rate >= rate * 0.95 && result.p99_ms < P99_TARGET_MS;
      tail.drop(phase);
      await emptyBuffers();
      say(`phase ${phase}: p50 ${result.p50_ms} ms, p99 ${result.p99_ms} ms (until appended: ${result.to_append_p50_ms} / ${result.to_append_p99_ms} ms), max ${result.max_ms} ms, ${delivered}/${expectedTotal} delivered, ${webhooks} webhooks${result.held ? ', held' : ', NOT held'}${stoppedEarly ? ` (stopped: ${stoppedEarly})` : ''}`);
      return result;
    };

    for (const rate of cfg.BENCH_RATES) phases.push(await runPhase(rate, 'fixed'));
    let lo = Math.max(0, ...phases.filter((p) => p.held).map((p) => p.target_rate));
    let hi = Math.min(Infinity, ...phases.filter((p) => !p.held && p.target_rate > lo).map((p) => p.target_rate));
    for (let step = 0; step < cfg.BENCH_SEARCH_STEPS; step++) {
      const candidate = hi === Infinity ? Math.round((Math.max(lo, 1000) * 1.5) / 500) * 500 : Math.round((lo + hi) / 2 / 250) * 250;
      if (candidate <= lo || candidate >= hi || (hi !== Infinity && hi - lo <= lo * 0.1)) break;
      const r = await runPhase(candidate, 'search');
      phases.push(r);
      if (r.held) lo = candidate;
      else hi = candidate;
    }

    // ---- stop everything, collect peaks and profiles
    await producer.disconnect();
    const highWater = memory.highWater();
    tail.stop();
    for (const p of [...processes].reverse()) {
      const code = await stopProcess(p);
      memory.forget(p.name);
      if (code !== 0) say(`${p.name} exited with ${code}: ${p.output().slice(-500)}`);
    }
    memory.stop();
    const profiles: Record<string, { file: string; total_ms: number; rows: SelfTime[] }> = {};
    if (profileDir)
      for (const name of ['route-catching-up', 'route', 'gateway']) {
        const file = mainProfile(path.join(profileDir, name));
        if (file) profiles[name] = { file: path.relative(ROOT, file), ...summariseFile(file, 20) };
      }

    const heldRates = phases.filter((p) => p.held && p.seconds >= cfg.BENCH_PHASE_SECONDS * 0.95).map((p) => p.target_rate);
    const maxHeld = heldRates.length ? Math.max(...heldRates) : 0;
    const at10k = phases.find((p) => p.target_rate === 10000);
    const fnNames = ['route', 'gateway', 'subscriptions', 'deliver', 'insights'].filter((n) => pids[n] !== undefined);
    const consumerNames = sampled.map((_, i) => `consumer-${i}`);
    const rssAt10k = at10k?.peak_rss_mib ?? {};
    const result = {
      date: new Date().toISOString(),
      mode: quick ? 'quick' : 'full',
      machine: { cpus: cpus().length, model: cpus()[0]?.model, memory_gib: Math.round(totalmem() / 2 ** 30) },
      settings: {
        tenants: cfg.BENCH_TENANTS, subscriptions: cfg.BENCH_TENANTS * 10, partitions: cfg.BENCH_PARTITIONS, consumers: sampled.length,
        sampled: sampled.map((s) => ({ tenant_rank: s.tenantIndex + 1, subscription: s.spec.name })),
        baseline_events: cfg.BENCH_BASELINE_EVENTS, burst_events: cfg.BENCH_BURST_EVENTS, phase_seconds: cfg.BENCH_PHASE_SECONDS,
        rates: cfg.BENCH_RATES, payload_bytes: '200-800', source_mode: cfg.BENCH_SOURCE_MODE, functions: cfg.BENCH_FUNCTIONS, profile: cfg.BENCH_PROFILE, node_options: cfg.BENCH_NODE_OPTIONS, consumer_node_options: cfg.BENCH_CONSUMER_NODE_OPTIONS,
      },
      baselines: { kafka_produce: rawProduceRate, kafka_consume: rawConsumeRate, redis: rawRedisRates, append_script: appendRate },
      burst,
      phases,
      max_held_rate: maxHeld,
      high_water_rss_mib: highWater,
      targets: {
        route_vs_raw_consume: { target: '>= 0.5', value: burst.route_vs_raw_consume, met: burst.route_vs_raw_consume >= 0.5 },
        held_10k: { target: '10000/s with p99 < 1 s', value: at10k ? `p99 ${at10k.p99_ms} ms` : 'not run', met: !!at10k?.held },
        function_rss_at_10k: {
          target: '< 200 MiB each',
          value: Object.fromEntries(fnNames.map((n) => [n, rssAt10k[n] ?? null])),
          met: !!at10k && fnNames.every((n) => (rssAt10k[n] ?? Infinity) < 200),
        },
        consumer_rss_at_10k: {
          target: '< 100 MiB',
          value: Object.fromEntries(consumerNames.map((n) => [n, rssAt10k[n] ?? null])),
          met: !!at10k && consumerNames.every((n) => (rssAt10k[n] ?? Infinity) < 100),
        },
      },
      profiles,
      seconds: Math.round((Date.now() - started) / 1000),
    };
    report(result, rawProduceRate, rawConsumeRate, rawRedisRates);
  } finally {
    tail.stop();
    for (const p of processes) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    memory.stop();
    redis.disconnect();
  }
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(header), ...rows.map(fmt)].join('\n');
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
/** What Kafka and Redis alone cost per source event of this workload, and the rate that caps on this machine's CPUs. */
function cpuFloor(produceUs: number, consumeUs: number, redisUs: number, appendsPerEvent: number) {
  const total = produceUs + consumeUs + appendsPerEvent * redisUs;
  return {
    us_per_record: { kafka_produce: produceUs, kafka_consume: consumeUs, redis_xadd_and_xread: redisUs },
    us_per_event: Number(total.toFixed(1)),
    max_events_per_s: Math.round((cpus().length * 1e6) / total),
  };
}

function report(r: any, produce: Rate, consume: Rate, redis: RedisBaseline) {
  const ms = (v: number) => (Number.isFinite(v) ? String(v) : 'lost');
  const lines: string[] = [];
  lines.push(`pipeline benchmark (${r.mode}): ${r.settings.tenants} tenants, ${r.settings.subscriptions} subscriptions, ${r.settings.partitions} partitions, ${r.machine.cpus} CPUs`);
  lines.push('');
  lines.push(table(['baseline (same run)', 'count', 'per s'], [
    ['raw kafkajs produce', String(produce.count), String(produce.per_s)],
    ['raw kafkajs consume', String(consume.count), String(consume.per_s)],
    ['raw Redis XADD (pipelined)', String(redis.xadd.count), String(redis.xadd.per_s)],
    ['raw Redis XREAD (pipelined)', String(redis.xread.count), String(redis.xread.per_s)],
    ['append script (pipelined)', String(r.baselines.append_script.count), String(r.baselines.append_script.per_s)],
  ]));
  lines.push(`raw Redis bytes per entry: ${redis.bytes_per_entry}`);
  lines.push('');
  const b = r.burst;
  lines.push(table(['route throughput (catching up)', 'value', 'ratio'], [
    ['generator full speed, events/s', String(b.generator_events_per_s), (b.generator_events_per_s / produce.per_s).toFixed(2) + ' of raw produce'],
    ['route in, events/s', String(b.route_events_per_s), b.route_vs_raw_consume.toFixed(2) + ' of raw consume'],
    ['route out, appends/s', String(b.route_appends_per_s), `${b.appends_vs_raw_xadd.toFixed(2)} of raw XADD, ${b.appends_vs_append_script.toFixed(2)} of the script alone`],
    ['Redis bytes per append', String(b.redis_bytes_per_append), (b.redis_bytes_per_append / redis.bytes_per_entry).toFixed(2) + ' of raw entry'],
    ['Redis bytes per source event', String(b.redis_bytes_per_event), `${b.appends_per_event} appends/event`],
    ['route peak RSS catching up, MiB', String(b.route_high_water_rss_mib), 'VmHWM'],
  ]));
  const f = b.cpu_floor;
  lines.push(
    `Kafka and Redis alone (CPU of broker, Redis and client in the baselines): produce ${f.us_per_record.kafka_produce} + consume ` +
      `${f.us_per_record.kafka_consume} + ${b.appends_per_event} × (XADD + XREAD) ${f.us_per_record.redis_xadd_and_xread} = ${f.us_per_event} µs per source event, ` +
      `at most ${f.max_events_per_s} events/s on ${r.machine.cpus} CPUs before any platform code runs`,
  );
  lines.push('');
  lines.push(table(
    ['rate/s', 'sent/s', 'route in/s', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'delivered', 'held', 'route MiB', 'gateway MiB', 'consumer MiB', 'B/append'],
    r.phases.map((p: PhaseResult) => [
      `${p.target_rate}${p.kind === 'search' ? '*' : ''}`, String(p.produced_rate), String(p.route_events_per_s), ms(p.p50_ms), ms(p.p95_ms), ms(p.p99_ms), ms(p.max_ms),
      `${p.delivered}/${p.expected}${p.duplicates ? ` +${p.duplicates} dup` : ''}`, p.held ? 'yes' : p.stopped_early ? 'stopped' : 'no',
      String(p.peak_rss_mib['route'] ?? '-'), String(p.peak_rss_mib['gateway'] ?? '-'),
      String(Math.max(...Object.entries(p.peak_rss_mib).filter(([k]) => k.startsWith('consumer-')).map(([, v]) => v))),
      String(p.redis_bytes_per_append ?? '-'),
    ]),
  ));
  lines.push(`* search phase. highest rate held ${r.settings.phase_seconds} s with p99 < 1 s: ${r.max_held_rate || 'none'} events/s`);
  // each function's CPU per source event beside what Kafka and Redis alone spend (the floor) and the box's ceiling
  const procs = [...new Set(r.phases.flatMap((p: PhaseResult) => Object.keys(p.cpu_us_per_event ?? {})))] as string[];
  lines.push('');
  lines.push(table(
    ['rate/s', ...procs.map((k) => `${k} µs`), 'all µs', `floor µs`, 'ceiling/s'],
    r.phases.map((p: PhaseResult) => {
      const all = Object.values(p.cpu_us_per_event ?? {}).reduce((a, v) => a + v, 0);
      return [String(p.target_rate), ...procs.map((k) => String(p.cpu_us_per_event?.[k] ?? '-')), all.toFixed(1), String(f.us_per_event), String(Math.round((r.machine.cpus * 1e6) / all))];
    }),
  ));
  lines.push(`CPU per source event of each process (bench: the generator and the latency tail), from each phase's start until its events were delivered; ceiling: the CPUs over all of it`);
  lines.push(`peak RSS over the whole run (VmHWM, MiB): ${Object.entries(r.high_water_rss_mib).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  lines.push('');
  lines.push('targets:');
  for (const [name, t] of Object.entries(r.targets) as [string, { target: string; value: unknown; met: boolean }][])
    lines.push(`  ${t.met ? 'met    ' : 'NOT met'}  ${name}: ${t.target}; ${typeof t.value === 'object' ? JSON.stringify(t.value) : t.value}`);
  for (const [name, prof] of Object.entries(r.profiles) as [string, { total_ms: number; rows: SelfTime[] }][]) {
    lines.push('');
    lines.push(`${name}: top self time (${prof.total_ms} ms sampled)`);
    for (const row of prof.rows.slice(0, 12)) lines.push(`  ${(row.share * 100).toFixed(1).padStart(5)}%  ${row.function}  ${row.where}`);
  }
  console.log(lines.join('\n'));
  const suffix = r.mode === 'quick' ? '-quick' : '';
  const out = cfg.BENCH_OUT;
  writeFileSync(path.join(out, `pipeline${suffix}.json`), JSON.stringify(r, null, 2) + '\n');
  const svg = latencyChart(
    r.phases.map((p: PhaseResult) => ({ rate: p.target_rate, p50: p.p50_ms, p99: Number.isFinite(p.p99_ms) ? p.p99_ms : Infinity, max: p.max_ms, held: p.held })),
    {
      title: `Pioneer end-to-end latency against rate (${r.mode}, ${r.machine.cpus} CPUs, Kafka and Redis on the same machine)`,
      subtitle: `${r.settings.tenants} tenants, ${r.settings.subscriptions} subscriptions; route at ${r.burst.route_vs_raw_consume} of raw consume; held ${r.max_held_rate}/s; ${r.date.slice(0, 16)}Z`,
    },
  );
  writeFileSync(path.join(out, `pipeline${suffix}.svg`), svg);
  console.log(`\nwrote ${path.relative(process.cwd(), path.join(out, `pipeline${suffix}.json`))} and pipeline${suffix}.svg (${r.seconds} s)`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
