/**
 * What filters on event data and transforms cost the route, in one run on the same broker and Redis:
 *   1. the floor: a raw kafkajs produce of records like the source ones, a raw kafkajs consume of them (twice, the
 *      better kept: the first read also warms the page cache) and raw Redis XADD/XREAD of entries like the
 *      delivered ones (bench/baselines.ts), with the CPU per record of the broker, Redis and this process;
 *   2. the route catching up on the same events (bench/generator.ts, same seed) with three subscription mixes
 *      (bench/subscription-mix.ts) that match the same events, 100 tenants × 10 subscriptions each:
 *        base       the ordinary 13 templates (attributes only: data is never looked at),
 *        data       the same 13 filtering on the event's data (`data.` paths in sql, exact, prefix, suffix),
 *        transform  the ordinary 13, each with a JSONata transform (a projection with a masked account);
 *      events/s in, appends per event, and the CPU per event of the route process, the broker and Redis from the
 *      first to the last sample of its counters (start-up excluded).
 * Each mix runs on tenants of its own, created through the API just before its route starts and produced to a
 * topic of its own; its subscriptions (and so their streams) are deleted after it, so that no mix's
 * subscriptions are in another's index or Redis. With BENCH_ROUNDS=2 (the full run) the mixes run twice, the
 * second time in the reverse order, and the round with the lower route CPU per event is kept for each.
 * BENCH_PROFILE=1 runs each route under `node --cpu-prof` (bench/results/profiles/route-<mix>-<round>/).
 * Prints a table and writes bench/results/route-variants[-quick].json.
 *
 *   scripts/bench.sh --route-variants [--quick]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { z } from 'zod';
import type { Message } from 'kafkajs';
import { commonSchema, env, loadConfig } from '../platform/config/env.ts';
import { createKafka, ensureTopics } from '../platform/kafka/client.ts';
import { createLogger } from '../platform/telemetry/logger.ts';
import { generateApiKey } from '../platform/auth/api-keys.ts';
import { createGenerator, produceCount, type EventGenerator } from './generator.ts';
import { DATA_TEMPLATES, matcherOf, PROJECTION, subscriptionsOf, TEMPLATES, TRANSFORM_TEMPLATES, type SubscriptionSpec } from './subscription-mix.ts';
import { benchProducer, rawConsume, rawProduce, rawRedis, type Rate } from './baselines.ts';
import {
  benchPlatformEnv, buildFunctions, cpuSecondsOf, imageNodeOptions, mainProfile, measureCatchUp, ROOT, startFunction, stopProcess, type CatchUp,
} from './processes.ts';
import { summariseFile, type SelfTime } from './profile-summary.ts';
import { call, say } from './common.ts';

const quick = process.argv.includes('--quick');
const cfg = loadConfig(
  commonSchema.pick({ PIONEER_KAFKA_BROKERS: true }).extend({
    PIONEER_REDIS_URL: env.url(['redis', 'rediss']),
    BENCH_TENANTS: env.int(1, 10000).default(100),
    BENCH_PARTITIONS: env.int(1, 64).default(4),
    BENCH_BASELINE_EVENTS: env.int(1000, 10_000_000).default(quick ? 30_000 : 200_000),
    BENCH_ROUTE_EVENTS: env.int(1000, 10_000_000).default(quick ? 30_000 : 100_000),
    BENCH_ROUNDS: env.int(1, 5).default(quick ? 1 : 2),
    BENCH_NODE_OPTIONS: z.string().default(imageNodeOptions()),
    BENCH_OUT: z.string().default(path.join(ROOT, 'bench/results')),
    BENCH_RUN_DIR: z.string().default(path.join(ROOT, '.run', `bench-${process.pid}`)),
    BENCH_KAFKA_PID: env.int(1, 1 << 30).optional(),
    BENCH_REDIS_PID: env.int(1, 1 << 30).optional(),
    BENCH_PROFILE: env.bool().default(false),
  }),
);

interface Variant {
  name: 'base' | 'data' | 'transform';
  label: string;
  templates: readonly SubscriptionSpec[];
}
const VARIANTS: readonly Variant[] = [
  { name: 'base', label: 'ordinary mix', templates: TEMPLATES },
  { name: 'data', label: 'filters on data', templates: DATA_TEMPLATES },
  { name: 'transform', label: 'a transform each', templates: TRANSFORM_TEMPLATES },
];
const EXTRA = ['pioneer_route_transform_failed_total', 'pioneer_route_filter_budget_exceeded_total', 'pioneer_route_dead_letters_total'];
const log = createLogger({ level: 'silent' });
const tag = randomBytes(3).toString('hex');
const us = (v: number) => Number(v.toFixed(1));

/** Creates `count` tenants, each with its 10 subscriptions of `templates`; their ids and keys, to produce for and to clean up. */
async function createTenants(url: string, adminKey: string, label: string, templates: readonly SubscriptionSpec[], count: number) {
  const tenants: { id: string; key: string; subscriptions: string[] }[] = [];
  for (let i = 0; i < count; i++) {
    const t = await call(url, adminKey, 'POST', '/v1/tenants', { name: `bench ${label} ${i}` });
    const subscriptions: string[] = [];
    for (const spec of subscriptionsOf(i, templates)) subscriptions.push((await call(url, t.key.key, 'POST', '/v1/subscriptions', spec)).id);
    tenants.push({ id: t.id, key: t.key.key, subscriptions });
  }
  return tenants;
}

/**
 * `generator`, counting as it goes how many subscriptions of `templates` (tenant number i subscribing with
 * subscriptionsOf(i)) each event matches: what the route should append.
 */
function countingMatches(generator: EventGenerator, tenantIds: string[], templates: readonly SubscriptionSpec[]) {
  const compiled = new Map(templates.map((t) => [t, matcherOf(t)]));
  const byTenant = new Map(tenantIds.map((id, i) => [id, subscriptionsOf(i, templates).map((s) => compiled.get(s)!)]));
  const counts = { events: 0, matches: 0 };
  return {
    counts,
    next(producedAt: number, phase: number) {
      const g = generator.next(producedAt, phase);
      counts.events++;
      for (const matches of byTenant.get(g.event.tenantid!) ?? []) if (matches(g.event as Record<string, unknown>)) counts.matches++;
      return g;
    },
  };
}

async function main() {
  mkdirSync(cfg.BENCH_RUN_DIR, { recursive: true });
  mkdirSync(cfg.BENCH_OUT, { recursive: true });
  const kafka = createKafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId: 'bench-variants', log });
  const redis = new Redis(cfg.PIONEER_REDIS_URL, { maxRetriesPerRequest: 3 });
  const pids = { kafka: cfg.BENCH_KAFKA_PID, redis: cfg.BENCH_REDIS_PID };
  const cpuOf = (pid: number | undefined) => cpuSecondsOf(pid) ?? 0;
  const depsCpu = () => cpuOf(pids.kafka) + cpuOf(pids.redis) + cpuOf(process.pid);
  const rounds = Array.from({ length: cfg.BENCH_ROUNDS }, (_, r) => r);
  // the second round runs the mixes in the reverse order, so that neither end of the run favours one of them
  const order = rounds.flatMap((r) => (r % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()).map((v) => ({ v, r })));
  const rawTopic = `bench-raw-${tag}`;
  const sourceOf = (v: Variant, r: number) => `bench-source-${v.name}-${r}-${tag}`;
  const fnMain = buildFunctions(path.join(cfg.BENCH_RUN_DIR, 'fn-dist'));
  await ensureTopics(kafka, [rawTopic, ...order.map(({ v, r }) => sourceOf(v, r))].map((topic) => ({ topic, numPartitions: cfg.BENCH_PARTITIONS })));
  const processes: Awaited<ReturnType<typeof startFunction>>[] = [];
  try {
    // ---- 1. the floor
    const poolGen = createGenerator({ tenants: Array.from({ length: cfg.BENCH_TENANTS }, (_, i) => `ten_bench${String(i).padStart(4, '0')}`), runTag: `raw-${tag}`, seed: 11 });
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
    let consumed: (Rate & { us_per_record: number }) | null = null;
    for (const round of [1, 2]) {
      say(`floor: raw kafkajs consume (${round} of 2)`);
      cpu0 = depsCpu();
      const c = await rawConsume(kafka, rawTopic, cfg.BENCH_BASELINE_EVENTS, { partitions: cfg.BENCH_PARTITIONS });
      const perRecord = us(((depsCpu() - cpu0) * 1e6) / c.count);
      if (!consumed || c.per_s > consumed.per_s) consumed = { ...c, us_per_record: perRecord };
    }
    say('floor: raw Redis XADD/XREAD');
    cpu0 = depsCpu();
    const redisRates = await rawRedis(redis, entries, { count: cfg.BENCH_BASELINE_EVENTS, streams: cfg.BENCH_TENANTS * 10, prefix: `bench-raw-${tag}` });
    const redisUs = us(((depsCpu() - cpu0) * 1e6) / redisRates.xadd.count);

    // ---- 2. the route on each mix
    const adminKey = generateApiKey();
    const baseEnv: Record<string, string> = { ...benchPlatformEnv(cfg, adminKey), PIONEER_DEAD_LETTER_TOPIC: `bench-dead-${tag}` };
    const subscriptionsFn = await startFunction('subscriptions', baseEnv, { nodeOptions: cfg.BENCH_NODE_OPTIONS, main: fnMain });
    processes.push(subscriptionsFn);
    const profileDir = cfg.BENCH_PROFILE ? path.join(cfg.BENCH_OUT, 'profiles') : undefined;
    const profiles: Record<string, { file: string; total_ms: number; rows: SelfTime[] }> = {};
    const runs: (CatchUp & { variant: Variant['name']; round: number; setup_seconds: number; expected_appends_per_event: number })[] = [];
    for (const { v, r } of order) {
      say(`${v.name} (round ${r + 1} of ${cfg.BENCH_ROUNDS}): creating ${cfg.BENCH_TENANTS} tenants and ${cfg.BENCH_TENANTS * 10} subscriptions`);
      const setupStart = performance.now();
      const tenants = await createTenants(subscriptionsFn.url, adminKey, `${v.name} ${r}`, v.templates, cfg.BENCH_TENANTS);
      const setupSeconds = (performance.now() - setupStart) / 1000;
      // the same events (same seed) for every mix, each with its own tenants and ids
      say(`${v.name}: producing ${cfg.BENCH_ROUTE_EVENTS} events into ${sourceOf(v, r)}`);
      const tenantIds = tenants.map((t) => t.id);
      const generator = countingMatches(createGenerator({ tenants: tenantIds, runTag: `${tag}-${v.name}-${r}`, seed: 7 }), tenantIds, v.templates);
      const producer = benchProducer(kafka);
      await producer.connect();
      await produceCount({ producer, topic: sourceOf(v, r), generator, count: cfg.BENCH_ROUTE_EVENTS, phase: 0 });
      await producer.disconnect();
      const expected = Number((generator.counts.matches / generator.counts.events).toFixed(3));

      say(`${v.name}: the route catching up on ${cfg.BENCH_ROUTE_EVENTS} events`);
      const label = `route-${v.name}-${r + 1}`;
      const route = await startFunction('route', {
        ...baseEnv, PIONEER_SOURCE_TOPICS: sourceOf(v, r), PIONEER_ROUTE_GROUP: `bench-route-${v.name}-${r}-${tag}`,
      }, { nodeOptions: cfg.BENCH_NODE_OPTIONS, main: fnMain, ...(profileDir ? { profileDir, profileLabel: label } : {}) });
      processes.push(route);
      try {
        const run = await measureCatchUp({ url: route.url, pid: route.child.pid }, cfg.BENCH_ROUTE_EVENTS, { pids, extra: EXTRA });
        runs.push({ variant: v.name, round: r + 1, setup_seconds: Number(setupSeconds.toFixed(1)), expected_appends_per_event: expected, ...run });
        say(`${v.name}: ${run.events_per_s} events/s, ${run.route_us_per_event} µs of route CPU per event, ${run.appends_per_event} appends per event (${expected} expected, ${run.duplicates_per_event} skipped as duplicates)`);
        if (run.duplicates_per_event > 0) say(`${v.name}: the route's last output:\n${route.output().slice(-3000)}`);
      } finally {
        await stopProcess(route);
        processes.splice(processes.indexOf(route), 1);
      }
      const profile = profileDir && mainProfile(path.join(profileDir, label));
      if (profile) profiles[label] = { file: path.relative(ROOT, profile), ...summariseFile(profile, 30) };
      say(`${v.name}: deleting its ${cfg.BENCH_TENANTS * 10} subscriptions and their streams`);
      for (const t of tenants) for (const id of t.subscriptions) await call(subscriptionsFn.url, t.key, 'DELETE', `/v1/subscriptions/${id}`);
    }

    // ---- 3. the figures: per mix, the round with the lower route CPU per event
    const best = Object.fromEntries(VARIANTS.map((v) => {
      const mine = runs.filter((x) => x.variant === v.name);
      return [v.name, mine.reduce((a, b) => (b.route_us_per_event < a.route_us_per_event ? b : a))];
    })) as Record<Variant['name'], (typeof runs)[number]>;
    const base = best.base;
    const figures = (v: Variant) => {
      const b = best[v.name];
      return {
        label: v.label,
        round: b.round,
        events_per_s: b.events_per_s,
        route_us_per_event: b.route_us_per_event,
        vs_base_route_us: Number((b.route_us_per_event / base.route_us_per_event).toFixed(2)),
        route_us_over_base: us(b.route_us_per_event - base.route_us_per_event),
        appends_per_event: b.appends_per_event,
        expected_appends_per_event: b.expected_appends_per_event,
        duplicates_per_event: b.duplicates_per_event,
        vs_raw_consume: Number((b.events_per_s / consumed!.per_s).toFixed(3)),
        kafka_us_per_event: b.kafka_us_per_event,
        redis_us_per_event: b.redis_us_per_event,
        floor_us_per_event: us(produceUs + consumed!.us_per_record + b.appends_per_event * redisUs),
        transform_failed: b.counters['pioneer_route_transform_failed_total'] ?? 0,
        filter_budget_exceeded: b.counters['pioneer_route_filter_budget_exceeded_total'] ?? 0,
        dead_letters: b.counters['pioneer_route_dead_letters_total'] ?? 0,
      };
    };
    const variants = {} as Record<Variant['name'], ReturnType<typeof figures>>;
    for (const v of VARIANTS) variants[v.name] = figures(v);
    const result = {
      when: new Date().toISOString(),
      mode: quick ? 'quick' : 'full',
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '', loadavg_at_end: loadavg().map((l) => Number(l.toFixed(2))) },
      settings: {
        tenants: cfg.BENCH_TENANTS, subscriptions: cfg.BENCH_TENANTS * 10, partitions: cfg.BENCH_PARTITIONS, baseline_records: cfg.BENCH_BASELINE_EVENTS,
        route_events: cfg.BENCH_ROUTE_EVENTS, rounds: cfg.BENCH_ROUNDS, node_options: cfg.BENCH_NODE_OPTIONS, transform: PROJECTION,
      },
      floor: { kafkajs_produce: { ...produced, us_per_record: produceUs }, kafkajs_consume: consumed, redis: { ...redisRates, us_per_xadd_and_xread: redisUs } },
      variants,
      runs,
      profiles,
    };
    writeFileSync(path.join(cfg.BENCH_OUT, `route-variants${quick ? '-quick' : ''}.json`), JSON.stringify(result, null, 2) + '\n');
    const cols = ['variant', 'events/s catching up', 'route µs CPU/event', '× base', 'appends/event', '(expected)', 'vs raw consume'];
    const widths = [12, 22, 20, 8, 15, 12, 16];
    const line = (cells: (string | number)[]) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]!) : String(c).padStart(widths[i]!))).join('');
    process.stdout.write([
      `Route with filters on data and transforms (${result.mode}, ${result.when}): ${cfg.BENCH_TENANTS} tenants × 10 subscriptions per mix, ${cfg.BENCH_ROUTE_EVENTS} events, ${cfg.BENCH_PARTITIONS} partitions, ${cpus().length} CPUs, best of ${cfg.BENCH_ROUNDS} round(s)`,
      `raw kafkajs produce ${produced.per_s} records/s (${produceUs} µs CPU/record); raw kafkajs consume ${consumed!.per_s} records/s (${consumed!.us_per_record} µs); raw Redis XADD ${redisRates.xadd.per_s}/s, XREAD ${redisRates.xread.per_s}/s (${redisUs} µs per entry)`,
      line(cols),
      ...VARIANTS.map((v) => {
        const x = variants[v.name];
        return line([v.name, x.events_per_s, x.route_us_per_event, `${x.vs_base_route_us} ×`, x.appends_per_event, x.expected_appends_per_event, `${x.vs_raw_consume} ×`]);
      }),
      `every run: ${runs.map((x) => `${x.variant}#${x.round} ${x.route_us_per_event} µs ${x.events_per_s}/s${x.duplicates_per_event > 0 ? ` (${x.duplicates_per_event} duplicates/event)` : ''}`).join(', ')}`,
      '',
      ...Object.entries(profiles).flatMap(([k, p]) => [
        `${k}: top self time (${p.total_ms} ms sampled, start-up and the whole catch-up)`,
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
