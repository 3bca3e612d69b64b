/**
 * Insights (docs/insights.md): how fast the insights function counts ad events against a raw kafkajs consume of
 * the same topic in the same run, how long a 90-day daily series takes to answer with 1,000 campaigns in Redis,
 * and what a campaign-day costs in Redis memory at the default settings.
 *
 *   1. throughput: BENCH_EVENTS ad events (impressions, clicks, carts and product views of BENCH_CUSTOMERS
 *      customers per tenant on BENCH_CAMPAIGNS campaigns, 2 tenants, 4 partitions keyed by customer, event times
 *      over today so far and slightly out of order) produced first; then a raw consume of the topic by a fresh
 *      group (records/s); then the insights function started as a process under a fresh group, timed from its
 *      first counted event until it has counted them all (pioneer_insights_events_total), and its CPU per event
 *   2. query latency: a third tenant's BENCH_QUERY_CAMPAIGNS campaigns, BENCH_QUERY_EVENTS_PER_DAY events each
 *      day over BENCH_QUERY_DAYS days of event time, produced in event-time order (so that none is later than
 *      the allowed lateness behind the tenant's watermark) and counted by the same process; then
 *      BENCH_QUERIES calls of GET /v1/insights/ads/{c}/{impressions|clicks}/{fromDate}?granularity=day on
 *      random campaigns, one at a time, on the function's own port (p50, p99)
 *   3. memory: MEMORY USAGE of every figure key of one campaign of step 1 (a full campaign-day) and of step 2
 *      (a sparse one), per campaign-day, the minute buckets (kept 48 h) apart from the hour and day buckets
 *
 *   scripts/bench.sh --insights
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { commonSchema, env, loadConfig } from '../platform/config/env.ts';
import { generateApiKey } from '../platform/auth/api-keys.ts';
import { insightsKeys } from '../platform/redis/keys.ts';
import { ROOT, benchPlatformEnv, cpuSecondsOf, imageNodeOptions, mainProfile, scrapeCounters, startFunction, stopProcess } from './processes.ts';
import { summariseFile } from './profile-summary.ts';
import { call, percentile, say, sleep } from './common.ts';

const cfg = loadConfig(
  commonSchema.pick({ PIONEER_KAFKA_BROKERS: true }).extend({
    PIONEER_REDIS_URL: env.url(['redis', 'rediss']),
    BENCH_EVENTS: env.int(1000, 10_000_000).default(200_000),
    BENCH_CUSTOMERS: env.int(10, 10_000_000).default(20_000),
    BENCH_CAMPAIGNS: env.int(1, 100_000).default(50),
    BENCH_QUERY_CAMPAIGNS: env.int(1, 100_000).default(1000),
    BENCH_QUERY_DAYS: env.int(1, 400).default(90),
    BENCH_QUERY_EVENTS_PER_DAY: env.int(1, 1000).default(2),
    BENCH_QUERIES: env.int(10, 100_000).default(200),
    BENCH_OUT: z.string().default(path.join(ROOT, 'bench/results')),
    /** also CPU-profile the insights function (bench/results/profiles/insights), and print where its time goes */
    BENCH_PROFILE: env.bool().default(false),
    /** redis-server's pid (scripts/bench.sh sets it): its CPU per event counted */
    BENCH_REDIS_PID: env.int(1, 1 << 30).optional(),
  }),
);
const N = cfg.BENCH_EVENTS;
const profileDir = cfg.BENCH_PROFILE ? path.join(cfg.BENCH_OUT, 'profiles') : undefined;
const DAY = 86_400_000;
const topic = `bench-insights-${Date.now()}`;
const kafka = new Kafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId: 'bench-insights', logLevel: logLevel.NOTHING });
const redis = new Redis(cfg.PIONEER_REDIS_URL);
const adminKey = generateApiKey();
const base = { ...benchPlatformEnv(cfg, adminKey), PIONEER_SOURCE_TOPICS: topic, PIONEER_INSIGHTS_GROUP: `${topic}-insights`, PIONEER_DEAD_LETTER_TOPIC: `${topic}.dlq` };
const nodeOptions = imageNodeOptions();

/** A small seeded generator (mulberry32): the same events on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Message = { key: string; value: string; headers: Record<string, string> };
const message = (tenantId: string, i: string, type: string, timeMs: number, data: Record<string, unknown>): Message => ({
  key: String(data['customerId']),
  headers: { 'content-type': 'application/cloudevents+json' },
  value: JSON.stringify({
    specversion: '1.0', id: i, source: '/bench/shop', type, tenantid: tenantId, partitionkey: String(data['customerId']),
    time: new Date(timeMs).toISOString(), datacontenttype: 'application/json', data,
  }),
});

async function produce(messages: AsyncIterable<Message[]> | Iterable<Message[]>): Promise<number> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  let n = 0;
  for await (const chunk of messages) {
    await producer.send({ topic, messages: chunk });
    n += chunk.length;
  }
  await producer.disconnect();
  return n;
}

/**
 * Waits until the tenants' positions (moved by the same script call that applies their events) have reached the
 * end of every partition: then every record was applied once. The moments of the first and last progress seen,
 * and the function's counters then. (The counters alone can fall short: a batch whose script call ran but whose
 * answer did not arrive is re-delivered and skipped as applied, uncounted by this process.)
 */
async function appliedBy(url: string, tenantIds: string[], deadlineMs: number) {
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, Number(p.high)]));
  await admin.disconnect();
  const total = [...ends.values()].reduce((s, n) => s + n, 0);
  let first = 0;
  let start = -1;
  for (;;) {
    const applied = new Map<number, number>();
    for (const t of tenantIds) {
      const pos = await redis.hgetall(insightsKeys.positions(t));
      for (const [p] of ends) {
        const next = Number(pos[`${topic}/${p}`] ?? 0);
        applied.set(p, Math.max(applied.get(p) ?? 0, next));
      }
    }
    const done = [...applied.values()].reduce((s, n) => s + n, 0);
    const now = performance.now();
    if (start < 0) start = done;
    if (first === 0 && done > start) first = now;
    if ([...ends].every(([p, end]) => (applied.get(p) ?? 0) >= end)) {
      const c = await scrapeCounters(url, ['pioneer_insights_events_total', 'pioneer_insights_dead_letters_total', 'pioneer_insights_duplicates_total']);
      return { first, last: now, total, counted: c['pioneer_insights_events_total']!, dead: c['pioneer_insights_dead_letters_total']!, duplicates: c['pioneer_insights_duplicates_total']! };
    }
    if (Date.now() > deadlineMs) throw new Error(`insights applied ${done} of ${total} records in time`);
    await sleep(100);
  }
}

/** MEMORY USAGE of the figure keys of one campaign, by resolution, and the day buckets it has. */
async function campaignBytes(tenantId: string, campaignId: string) {
  const bytes: Record<string, number> = { m: 0, h: 0, d: 0 };
  const days = new Set<string>();
  const pattern = `${insightsKeys.prefix(tenantId)}?:*:${campaignId}`;
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
    cursor = next;
    for (const key of found) {
      // ...:ins:<u|x|n>:<metric>:<res>:<n>:<campaign>
      const parts = key.slice(insightsKeys.prefix(tenantId).length).split(':');
      const res = parts[2]!;
      if (parts.slice(4).join(':') !== campaignId) continue;
      if (res === 'd') days.add(parts[3]!);
      bytes[res] = (bytes[res] ?? 0) + Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
    }
  } while (cursor !== '0');
  return { bytes, days: days.size };
}

const admin = kafka.admin();
await admin.connect();
await admin.createTopics({ topics: [{ topic, numPartitions: 4 }, { topic: `${topic}.dlq`, numPartitions: 1 }] });
await admin.disconnect();

const subscriptions = await startFunction('subscriptions', base, { nodeOptions });
let insights: Awaited<ReturnType<typeof startFunction>> | undefined;
try {
  const tenants: { id: string; key: string }[] = [];
  for (const name of ['bench-insights-a', 'bench-insights-b', 'bench-insights-query']) {
    const tenant = await call(subscriptions.url, adminKey, 'POST', '/v1/tenants', { name });
    tenants.push({ id: tenant.id, key: (await call(subscriptions.url, adminKey, 'POST', `/v1/tenants/${tenant.id}/keys`, { role: 'tenant' })).key as string });
  }

  // 1. the ad events: today's (UTC) so far, or the last 6 hours when the day is younger than that
  const now = Date.now();
  const spanStart = Math.min(Math.floor(now / DAY) * DAY, now - 6 * 3_600_000);
  const spanEnd = now - 60_000;
  say(`producing ${N} ad events to ${topic}`);
  const rnd = random(15);
  const recentClicks: { customerId: string; campaignId: string }[][] = [[], []];
  const kinds = { impression: 0, click: 0, cart: 0, view: 0 };
  const camp0 = { impressions: 0, clicks: 0 }; // the first tenant's camp-0, to check the answers against
  function* adEvents(): Iterable<Message[]> {
    for (let i = 0; i < N; i += 2000) {
      const chunk: Message[] = [];
      for (let j = i; j < Math.min(N, i + 2000); j++) {
        const t = j % 2;
        const tenantId = tenants[t]!.id;
        // time advances with j, give or take two minutes: out of order across and within partitions
        const timeMs = Math.min(spanEnd, Math.max(spanStart, spanStart + ((spanEnd - spanStart) * j) / N + (rnd() - 0.5) * 240_000));
        const customerId = `cust-${t}-${Math.floor(rnd() * cfg.BENCH_CUSTOMERS)}`;
        const campaignId = `camp-${Math.floor(rnd() * cfg.BENCH_CAMPAIGNS)}`;
        const r = rnd();
        const clicks = recentClicks[t]!;
        if (r < 0.72) {
          kinds.impression++;
          if (t === 0 && campaignId === 'camp-0') camp0.impressions++;
          chunk.push(message(tenantId, `i${j}`, j % 10 === 0 ? 'com.shop.ad.impression' : 'ad.impression', timeMs, { customerId, campaignId, adId: `${campaignId}-ad-${Math.floor(rnd() * 4)}` }));
        } else if (r < 0.87) {
          kinds.click++;
          if (t === 0 && campaignId === 'camp-0') camp0.clicks++;
          clicks.push({ customerId, campaignId });
          if (clicks.length > 500) clicks.shift();
          chunk.push(message(tenantId, `c${j}`, 'ad.click', timeMs, { customerId, campaignId, adId: `${campaignId}-ad-${Math.floor(rnd() * 4)}` }));
        } else if (r < 0.94) {
          kinds.cart++;
          // most carts come from a customer who clicked a little earlier
          const who = clicks.length > 0 && rnd() < 0.7 ? clicks[Math.floor(rnd() * clicks.length)]!.customerId : customerId;
          chunk.push(message(tenantId, `k${j}`, 'cart.add', timeMs, { customerId: who, productId: `sku-${Math.floor(rnd() * 5000)}`, quantity: 1 + Math.floor(rnd() * 3) }));
        } else {
          kinds.view++;
          chunk.push(message(tenantId, `v${j}`, 'product.view', timeMs, { customerId, productId: `sku-${Math.floor(rnd() * 5000)}` }));
        }
      }
      yield chunk;
    }
  }
  await produce(adEvents());

  say('raw consume');
  const consumer = kafka.consumer({ groupId: `${topic}-raw`, maxBytesPerPartition: 1024 * 1024 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let read = 0;
  let rawStart = 0;
  const rawEnd = await new Promise<number>((resolve) => {
    void consumer.run({
      eachBatch: async ({ batch }) => {
        if (rawStart === 0) rawStart = performance.now();
        read += batch.messages.length;
        if (read >= N) resolve(performance.now());
      },
    });
  });
  await consumer.disconnect();
  const rawRate = N / ((rawEnd - rawStart) / 1000);

  say('the insights function');
  const started = performance.now();
  insights = await startFunction('insights', base, { nodeOptions, ...(profileDir ? { profileDir } : {}) });
  const cpu0 = cpuSecondsOf(insights.child.pid) ?? 0;
  const redisCpu0 = cpuSecondsOf(cfg.BENCH_REDIS_PID) ?? 0;
  const a = await appliedBy(insights.url, [tenants[0]!.id, tenants[1]!.id], Date.now() + 300_000);
  const cpu = (cpuSecondsOf(insights.child.pid) ?? 0) - cpu0;
  const redisCpu = (cpuSecondsOf(cfg.BENCH_REDIS_PID) ?? 0) - redisCpu0;
  const insightsRate = N / ((a.last - a.first) / 1000);

  // 3 (the full campaign-day): camp-0 of the first tenant
  const full = await campaignBytes(tenants[0]!.id, 'camp-0');
  const fullFigures = await call(insights.url, tenants[0]!.key, 'GET', `/v1/insights/ads/camp-0/impressions/${new Date(spanStart).toISOString().slice(0, 10)}`);
  const fullClicks = await call(insights.url, tenants[0]!.key, 'GET', `/v1/insights/ads/camp-0/clicks/${new Date(spanStart).toISOString().slice(0, 10)}`);

  // 2. 1,000 campaigns over 90 days for the third tenant, in event-time order
  const Q = cfg.BENCH_QUERY_CAMPAIGNS;
  const D = cfg.BENCH_QUERY_DAYS;
  const E = cfg.BENCH_QUERY_EVENTS_PER_DAY;
  const today = Math.floor(Date.now() / DAY) * DAY;
  const q = tenants[2]!;
  const perDay = Q * E;
  say(`producing ${perDay * D} events of ${Q} campaigns over ${D} days`);
  function* seriesEvents(): Iterable<Message[]> {
    const usableToday = Math.max(60_000, Math.min(DAY - 1, Date.now() - today - 120_000));
    for (let d = D - 1; d >= 0; d--) {
      const dayStart = today - d * DAY;
      const width = d === 0 ? usableToday : DAY - 1;
      let chunk: Message[] = [];
      for (let k = 0; k < perDay; k++) {
        const c = k % Q;
        const e = Math.floor(k / Q);
        const customerId = `q-${(c * 31 + d * 7 + e * 13) % 5000}`;
        const timeMs = dayStart + Math.floor((width * k) / perDay);
        chunk.push(message(q.id, `q${d}-${k}`, e % 2 === 0 ? 'ad.impression' : 'ad.click', timeMs, { customerId, campaignId: `qc-${c}` }));
        if (chunk.length === 2000) {
          yield chunk;
          chunk = [];
        }
      }
      if (chunk.length) yield chunk;
    }
  }
  const qEvents = await produce(seriesEvents());
  const b = await appliedBy(insights.url, tenants.map((t) => t.id), Date.now() + 300_000);
  const seriesRate = qEvents / ((b.last - b.first) / 1000);
  const sparse = await campaignBytes(q.id, 'qc-0');

  say(`${cfg.BENCH_QUERIES} queries of a ${D}-day daily series`);
  const fromDate = new Date(today - (D - 1) * DAY).toISOString().slice(0, 10);
  const ask = (c: number, metric: string) => `/v1/insights/ads/qc-${c}/${metric}/${fromDate}?granularity=day`;
  const check = await call(insights.url, q.key, 'GET', ask(0, 'impressions'));
  if (check.series.length !== D || check.events !== D * Math.ceil(E / 2)) throw new Error(`the series is not what was produced: ${JSON.stringify(check).slice(0, 400)}`);
  const qr = random(90);
  for (let i = 0; i < 10; i++) await call(insights.url, q.key, 'GET', ask(Math.floor(qr() * Q), 'clicks')); // warm up
  const latencies: number[] = [];
  for (let i = 0; i < cfg.BENCH_QUERIES; i++) {
    const path = ask(Math.floor(qr() * Q), i % 2 === 0 ? 'impressions' : 'clicks');
    const t0 = performance.now();
    const res = await fetch(insights.url + path, { headers: { authorization: `Bearer ${q.key}` } });
    const body = (await res.json()) as any;
    latencies.push(performance.now() - t0);
    if (res.status !== 200 || body.series.length !== D) throw new Error(`${path}: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  }
  latencies.sort((x, y) => x - y);

  const kept = (m: { bytes: Record<string, number> }) => m.bytes['h']! + m.bytes['d']!;
  const report = {
    events: N, kinds, tenants: 2, campaigns: cfg.BENCH_CAMPAIGNS, customers_per_tenant: cfg.BENCH_CUSTOMERS, partitions: 4,
    raw_consume_per_s: Math.round(rawRate),
    insights_per_s: Math.round(insightsRate),
    insights_vs_raw: +(insightsRate / rawRate).toFixed(2),
    insights_start_to_done_s: +((a.last - started) / 1000).toFixed(1),
    insights_cpu_us_per_event: Math.round((cpu * 1e6) / N),
    redis_cpu_us_per_event: cfg.BENCH_REDIS_PID ? Math.round((redisCpu * 1e6) / N) : null,
    redis_busy_share: cfg.BENCH_REDIS_PID ? +(redisCpu / ((a.last - a.first) / 1000)).toFixed(2) : null,
    dead_letters: a.dead, counter_events: a.counted, counter_duplicates: a.duplicates,
    answers_exact: fullFigures.events === camp0.impressions && fullClicks.events === camp0.clicks, camp0_produced: camp0,
    series: {
      campaigns: Q, days: D, events_per_campaign_day: E, events: qEvents, counted_per_s: Math.round(seriesRate),
      queries: cfg.BENCH_QUERIES, p50_ms: +percentile(latencies, 50).toFixed(1), p99_ms: +percentile(latencies, 99).toFixed(1), max_ms: +latencies[latencies.length - 1]!.toFixed(1),
    },
    memory: {
      full_campaign_day: {
        campaign: 'camp-0', days: full.days, impressions: fullFigures.events, impression_customers: fullFigures.value, clicks: fullClicks.events, click_customers: fullClicks.value,
        estimate: fullFigures.estimate || fullClicks.estimate,
        hour_and_day_bytes_per_campaign_day: Math.round(kept(full) / Math.max(1, full.days)),
        minute_bytes_per_campaign_day: Math.round(full.bytes['m']! / Math.max(1, full.days)),
      },
      sparse_campaign_day: {
        campaign: 'qc-0', days: sparse.days, events_per_day: E,
        hour_and_day_bytes_per_campaign_day: Math.round(kept(sparse) / Math.max(1, sparse.days)),
        minute_bytes_per_campaign_day: Math.round(sparse.bytes['m']! / Math.max(1, sparse.days)),
      },
      redis_used_memory_bytes: Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0),
    },
  };
  console.log(JSON.stringify(report, null, 2));
  const n = (x: number) => x.toLocaleString('en');
  const m = report.memory;
  console.log([
    '| measure | result | target |',
    '| --- | --- | --- |',
    `| raw consume (kafkajs, same topic) | ${n(report.raw_consume_per_s)} records/s | |`,
    `| insights counted | ${n(report.insights_per_s)} events/s (${report.insights_vs_raw} × raw) | ≥ 0.5 × |`,
    `| CPU per event counted | insights ${report.insights_cpu_us_per_event} µs, redis-server ${report.redis_cpu_us_per_event} µs (busy ${report.redis_busy_share} of the time) | |`,
    `| ${D}-day daily series, ${n(Q)} campaigns | p50 ${report.series.p50_ms} ms, p99 ${report.series.p99_ms} ms (${report.series.queries} calls) | p99 < 50 ms |`,
    `| Redis per campaign-day, ${n(m.full_campaign_day.impression_customers)} customers seen | ${n(m.full_campaign_day.hour_and_day_bytes_per_campaign_day)} B hours and day, + ${n(m.full_campaign_day.minute_bytes_per_campaign_day)} B minutes (48 h) | |`,
    `| Redis per campaign-day, ${E} events | ${n(m.sparse_campaign_day.hour_and_day_bytes_per_campaign_day)} B hours and day, + ${n(m.sparse_campaign_day.minute_bytes_per_campaign_day)} B minutes (48 h) | |`,
  ].join('\n'));
  mkdirSync(cfg.BENCH_OUT, { recursive: true });
  writeFileSync(path.join(cfg.BENCH_OUT, 'insights.json'), JSON.stringify(report, null, 2) + '\n');
} finally {
  const log = insights?.output().trim();
  if (log) say(`the insights function's warnings and errors (last 3000 characters):\n${log.slice(-3000)}`);
  if (insights) await stopProcess(insights);
  await stopProcess(subscriptions);
  redis.disconnect();
}
if (profileDir) {
  const file = mainProfile(path.join(profileDir, 'insights'));
  if (file) console.log(JSON.stringify(summariseFile(file, 25), null, 2));
}
