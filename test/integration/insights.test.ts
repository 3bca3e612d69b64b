/**
 * The insights function against the run's Kafka and Redis: realistic ad sessions of two tenants (the same campaign
 * ids in both), over 4 partitions, out of order, answered for several ranges and granularities and compared with
 * the exact answers computed here; late, future and incomplete events dead-lettered with the reason; a full
 * redelivery of the topic counting nothing twice; the API's isolation and its answers to every bad parameter.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { api, createTenant, createTopic, deps, kafkaClient, produce, randomName, startPlatform, waitFor, type TestPlatform, subscribeFromStart } from '../support/helpers.ts';
import { adRecord, Expected, HOUR, MINUTE, sessions, type AdEvent, type Metric } from './insights-sessions.ts';

const topic = randomName('insights');
const dlq = `${topic}.dlq`;
const WINDOW_MS = HOUR;
const DAY = 86_400_000;
let p: TestPlatform;
let a: Awaited<ReturnType<typeof createTenant>>;
let b: Awaited<ReturnType<typeof createTenant>>;
let expected: Expected;
let all: AdEvent[];
// yesterday (UTC), 02:00 to 08:00: within the 48 h of minute buckets whatever the time of day now
const day0 = Math.floor(Date.now() / DAY) * DAY - DAY;
const start = day0 + 2 * HOUR;
const date = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const CAMPAIGNS = ['spring-sale', 'summer/launch', 'brand-x'];
/** relative errors of the estimated distinct counts */
const errors: number[] = [];
let exactFigures = 0;

before(async () => {
  await createTopic(topic, 4);
  await createTopic(dlq, 1);
  p = await startPlatform(['subscriptions', 'insights'], {
    PIONEER_SOURCE_TOPICS: topic,
    PIONEER_DEAD_LETTER_TOPIC: dlq,
    PIONEER_INSIGHTS_GROUP: randomName('insights'),
    PIONEER_INSIGHTS_ATTRIBUTION_SECONDS: String(WINDOW_MS / 1000),
    PIONEER_INSIGHTS_LATENESS_SECONDS: String(DAY / 1000),
    PIONEER_INSIGHTS_MAX_SERIES_POINTS: '100',
    // buckets of more than 200 customers are counted by HyperLogLog alone: the test data has both kinds
    PIONEER_INSIGHTS_EXACT_UP_TO: '200',
  });
  a = await createTenant(p.url('subscriptions'), p.adminKey);
  b = await createTenant(p.url('subscriptions'), p.adminKey);
  all = [
    ...sessions({ tenant: a.id, campaigns: CAMPAIGNS, customers: 1500, startMs: start, spanMs: 6 * HOUR, partitions: 4, seed: 1 }),
    ...sessions({ tenant: b.id, campaigns: CAMPAIGNS.slice(0, 2), customers: 300, startMs: start, spanMs: 6 * HOUR, partitions: 4, seed: 2 }),
  ];
  expected = new Expected(all, WINDOW_MS);
  await produce(topic, all.map((e) => adRecord(e)));
});
after(async () => {
  if (errors.length) console.log(`insights: ${exactFigures} exact distinct counts; estimated ones: largest relative error ${(Math.max(...errors) * 100).toFixed(2)} %, mean ${((errors.reduce((x, y) => x + y, 0) / errors.length) * 100).toFixed(2)} % over ${errors.length}`);
  await p?.stop();
});

const url = () => p.url('insights');
const ads = (campaign: string, rest: string) => `/v1/insights/ads/${encodeURIComponent(campaign)}/${rest}`;

/** All of the tenant's events counted (exact counts match): the function has caught up. */
async function caughtUp(tenant: { id: string; key: string }, campaigns: string[]) {
  await waitFor(
    async () => {
      for (const c of campaigns)
        for (const m of ['impressions', 'clicks', 'clickToBasket'] as Metric[]) {
          const r = await api(url(), tenant.key, 'GET', ads(c, `${m}/${date(day0)}/${date(day0)}`));
          if (r.status !== 200 || r.body.events !== expected.figures(tenant.id, c, m, day0, day0 + DAY).events) return false;
        }
      return true;
    },
    { timeout: 60000, message: 'the insights function to count every event' },
  );
}

/** Events exactly; distinct customers exactly unless the answer says it estimated them, then within 2 %. */
function assertClose(got: { value: number; events: number; estimate?: boolean }, want: { value: number; events: number }, what: string) {
  assert.equal(got.events, want.events, `${what}: events`);
  if (!got.estimate) {
    exactFigures++;
    assert.equal(got.value, want.value, `${what}: distinct customers (exact)`);
    return;
  }
  const err = want.value === 0 ? got.value : Math.abs(got.value - want.value) / want.value;
  errors.push(err);
  assert.ok(err <= 0.02, `${what}: ${got.value} distinct customers, exactly ${want.value} (${(err * 100).toFixed(2)} %)`);
}

test('distinct customers and events per campaign match the exact answers over several ranges and granularities', async () => {
  await caughtUp(a, CAMPAIGNS);
  await caughtUp(b, CAMPAIGNS.slice(0, 2));
  for (const tenant of [a, b])
    for (const c of tenant === a ? CAMPAIGNS : CAMPAIGNS.slice(0, 2))
      for (const m of ['impressions', 'clicks', 'clickToBasket'] as Metric[]) {
        // the path form: one day, then two days by day
        const whole = await api(url(), tenant.consumerKey, 'GET', ads(c, `${m}/${date(day0)}/${date(day0)}`));
        assert.equal(whole.status, 200, JSON.stringify(whole.body));
        assert.equal(whole.body.campaignId, c);
        assert.equal(whole.body.metric, m);
        assert.equal(typeof whole.body.estimate, 'boolean');
        assert.equal(whole.body.errorBound, whole.body.estimate ? 0.02 : undefined);
        assertClose(whole.body, expected.figures(tenant.id, c, m, day0, day0 + DAY), `${c} ${m} day`);
        const days = await api(url(), tenant.key, 'GET', ads(c, `${m}/${date(day0)}/${date(day0 + DAY)}?granularity=day`));
        assert.equal(days.status, 200);
        assert.equal(days.body.to, new Date(day0 + 2 * DAY).toISOString(), 'endDate is inclusive');
        assert.deepEqual(days.body.series.map((s: any) => s.start), [new Date(day0).toISOString(), new Date(day0 + DAY).toISOString()]);
        assertClose(days.body.series[0], expected.figures(tenant.id, c, m, day0, day0 + DAY), `${c} ${m} first day`);
        // the query form: 03:17 to 06:45 by hour (minute buckets at both edges)
        const from = day0 + 3 * HOUR + 17 * MINUTE;
        const to = day0 + 6 * HOUR + 45 * MINUTE;
        const hours = await api(url(), tenant.key, 'GET', ads(c, `${m}?from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}&granularity=hour`));
        assert.equal(hours.status, 200, JSON.stringify(hours.body));
        assertClose(hours.body, expected.figures(tenant.id, c, m, from, to), `${c} ${m} ${hours.body.from}..${hours.body.to}`);
        assert.equal(hours.body.series.length, 4);
        for (const s of hours.body.series) {
          const sStart = Date.parse(s.start);
          const sEnd = Math.min(to, Math.floor(sStart / HOUR) * HOUR + HOUR);
          assertClose(s, expected.figures(tenant.id, c, m, sStart, sEnd), `${c} ${m} hour ${s.start}`);
        }
      }
  // clicks processed after their cart event still attribute it: the data had such pairs on other partitions
  const clicksOf = new Map<string, AdEvent[]>();
  for (const e of all) if (e.tenant === a.id && e.kind === 'ad.click') clicksOf.set(e.customerId, [...(clicksOf.get(e.customerId) ?? []), e]);
  const carts = all.filter((e) => e.tenant === a.id && e.kind === 'cart.add');
  const crossed = carts.filter((cart) => (clicksOf.get(cart.customerId) ?? []).some((c) => c.partition !== cart.partition && c.timeMs <= cart.timeMs && c.timeMs >= cart.timeMs - WINDOW_MS));
  assert.ok(crossed.length > 50, `sanity: ${crossed.length} carts attributed by a click on another partition`);
});

test('today so far is the default range, and a date as from', async () => {
  const r = await api(url(), a.key, 'GET', ads(CAMPAIGNS[0]!, 'clicks'));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.from, new Date(day0 + DAY).toISOString(), JSON.stringify(r.body));
  assert.equal(r.body.events, 0, `the test data is all of yesterday: ${JSON.stringify(r.body)}`);
  const d = await api(url(), a.key, 'GET', ads(CAMPAIGNS[0]!, `clicks?from=${date(day0)}&to=${date(day0 + DAY)}`));
  assert.equal(d.status, 200, JSON.stringify(d.body));
  assertClose(d.body, expected.figures(a.id, CAMPAIGNS[0]!, 'clicks', day0, day0 + DAY), 'dates in the query');
});

async function readDeadLetters(count: number) {
  const consumer = kafkaClient().consumer({ groupId: randomName('dlq') });
  const got: { reason: string; kind: string; value: string }[] = [];
  await consumer.connect();
  await subscribeFromStart(consumer, dlq);
  await consumer.run({
    eachMessage: async ({ message }) => {
      got.push({ reason: message.headers!['pioneer-error']!.toString(), kind: message.headers!['pioneer-error-kind']?.toString() ?? '', value: message.value?.toString() ?? '' });
    },
  });
  await waitFor(() => got.length >= count, { timeout: 30000, message: `${count} dead letters` });
  await consumer.disconnect();
  return got;
}

test('late, future and incomplete events go to the dead-letter topic with the reason, and count nowhere', async () => {
  await caughtUp(a, CAMPAIGNS);
  const c = CAMPAIGNS[2]!;
  const before = await api(url(), a.key, 'GET', ads(c, `impressions/${date(day0 - 3 * DAY)}/${date(day0)}`));
  // partition 0 has tenant A's events of yesterday: its watermark is past 07:00, and lateness is one day
  const onTime: AdEvent = { tenant: a.id, kind: 'ad.impression', type: 'ad.impression', timeMs: start + HOUR, customerId: 'on-time', campaignId: c, partition: 0 };
  all.push(onTime);
  expected = new Expected(all, WINDOW_MS);
  await produce(topic, [
    adRecord({ tenant: a.id, type: 'ad.impression', timeMs: day0 - 2 * DAY, customerId: 'late-1', campaignId: c, partition: 0 }),
    adRecord({ tenant: a.id, type: 'ad.impression', timeMs: Date.now() + 2 * DAY, customerId: 'future-1', campaignId: c, partition: 0 }),
    adRecord({ tenant: a.id, type: 'ad.click', timeMs: start, customerId: 'x', partition: 0, data: { customerId: 'x' } }),
    adRecord({ tenant: a.id, type: 'cart.add', timeMs: start, customerId: 'x', partition: 1, data: { customerId: 'x' } }),
    adRecord(onTime),
  ]);
  const letters = await readDeadLetters(4);
  const byKind = (kind: string) => letters.filter((l) => l.kind === kind);
  assert.equal(byKind('late').length, 1);
  assert.match(byKind('late')[0]!.reason, /allowed lateness .* behind the watermark/);
  assert.match(byKind('late')[0]!.value, /late-1/);
  assert.equal(byKind('future').length, 1);
  assert.match(byKind('future')[0]!.reason, /ahead of the clock/);
  assert.deepEqual(byKind('invalid').map((l) => l.reason).sort(), ['data.campaignId: is required on this insights event', 'data.productId: is required on this insights event']);
  const after = await waitFor(async () => {
    const r = await api(url(), a.key, 'GET', ads(c, `impressions/${date(day0 - 3 * DAY)}/${date(day0)}`));
    return r.body.events === before.body.events + 1 ? r : null;
  });
  assert.equal(after.body.series.length, 0);
  const m = await (await fetch(`${url()}/metrics`)).text();
  assert.match(m, /pioneer_insights_dead_letters_total\{reason="late",function="insights"\} 1/);
  assert.match(m, /pioneer_insights_dead_letters_total\{reason="future",function="insights"\} 1/);
});

test('a full redelivery of the topic counts nothing twice', async () => {
  await caughtUp(a, CAMPAIGNS);
  const c = CAMPAIGNS[0]!;
  const path = ads(c, `clickToBasket/${date(day0)}/${date(day0)}`);
  const before = await api(url(), a.key, 'GET', path);
  // the function's consumer group goes back to the start of every partition: each record comes again
  const group = p.env['PIONEER_INSIGHTS_GROUP']!;
  const trigger = p.host.functions.get('insights')!.trigger!;
  await trigger.stop();
  const admin = kafkaClient().admin();
  await admin.connect();
  await admin.resetOffsets({ groupId: group, topic, earliest: true });
  await admin.disconnect();
  await trigger.start();
  await waitFor(async () => {
    const m = await (await fetch(`${url()}/metrics`)).text();
    const skipped = Number(/pioneer_insights_duplicates_total\{function="insights"\} (\d+)/.exec(m)?.[1] ?? 0);
    return skipped >= all.length;
  }, { timeout: 60000, message: 'every record re-delivered and skipped' });
  const again = await api(url(), a.key, 'GET', path);
  assert.deepEqual(again.body, before.body);
});

test('isolation: each tenant reads its own figures only; admin keys get 403; unknown campaigns 404', async () => {
  await caughtUp(b, CAMPAIGNS.slice(0, 2));
  const path = ads(CAMPAIGNS[0]!, `impressions/${date(day0)}/${date(day0)}`);
  const ofA = await api(url(), a.key, 'GET', path);
  const ofB = await api(url(), b.key, 'GET', path);
  assert.equal(ofB.body.events, expected.figures(b.id, CAMPAIGNS[0]!, 'impressions', day0, day0 + DAY).events, 'B sees its own events under the same campaign id');
  assert.notEqual(ofA.body.events, ofB.body.events);
  // brand-x is A's only: B gets 404, as for a campaign nobody has
  assert.equal((await api(url(), b.key, 'GET', ads('brand-x', 'clicks'))).status, 404);
  assert.equal((await api(url(), b.consumerKey, 'GET', ads('brand-x', 'clicks'))).status, 404);
  assert.equal((await api(url(), a.key, 'GET', ads('never-seen', 'clicks'))).status, 404);
  assert.equal((await api(url(), a.key, 'GET', ads('x'.repeat(5000), 'clicks'))).status, 404);
  assert.equal((await api(url(), p.adminKey, 'GET', path)).status, 403);
  assert.equal((await api(url(), undefined, 'GET', path)).status, 401);
  assert.equal((await api(url(), b.key, 'GET', '/v1/insights/flow')).status, 200);
  // A's figures are as they were
  assert.deepEqual((await api(url(), a.key, 'GET', path)).body, ofA.body);
});

test('every bad parameter answers 400 problem+json naming it', async () => {
  const c = encodeURIComponent(CAMPAIGNS[0]!);
  const cases: [string, string][] = [
    [`/v1/insights/ads/${c}/conversions`, 'path:metric'],
    [`/v1/insights/ads/${c}/clicks?granularity=week`, 'query:granularity'],
    [`/v1/insights/ads/${c}/clicks?from=yesterday`, 'query:from'],
    [`/v1/insights/ads/${c}/clicks?from=2026-02-30`, 'query:from'],
    [`/v1/insights/ads/${c}/clicks?to=2026-13-01`, 'query:to'],
    [`/v1/insights/ads/${c}/clicks?from=2026-01-01T10:00:30Z&to=2026-01-02`, 'query:from'],
    [`/v1/insights/ads/${c}/clicks?from=2026-01-02&to=2026-01-01`, 'query:to'],
    [`/v1/insights/ads/${c}/clicks?from=2020-01-01&to=2021-06-01`, 'query:to'],
    [`/v1/insights/ads/${c}/clicks?from=${date(day0 - 30 * DAY)}&to=${date(day0)}&granularity=hour`, 'query:granularity'],
    // older than the 48 h of minute buckets, not on a whole hour
    [`/v1/insights/ads/${c}/clicks?from=${new Date(day0 - 5 * DAY + 90 * MINUTE).toISOString()}&to=${date(day0)}`, 'query:from'],
    [`/v1/insights/ads/${c}/clicks?from=${date(day0 - 5 * DAY)}&to=${new Date(day0 - 4 * DAY + 90 * MINUTE).toISOString()}`, 'query:to'],
    [`/v1/insights/ads/${c}/clicks?from=${date(day0 - 2000 * DAY)}&to=${date(day0 - 1999 * DAY)}`, 'query:from'],
    [`/v1/insights/ads/${c}/clicks/2026-1-1`, 'path:fromDate'],
    [`/v1/insights/ads/${c}/clicks/${date(day0)}/${new Date(day0).toISOString()}`, 'path:endDate'],
    [`/v1/insights/ads/${c}/clicks/${date(day0)}/${date(day0 - 2 * DAY)}`, 'path:endDate'],
    [`/v1/insights/ads/${c}/clicks/2020-01-01/2021-06-01`, 'path:endDate'],
    [`/v1/insights/ads/${c}/clicks/${date(day0)}?from=${date(day0)}`, 'query:from'],
    ['/v1/insights/flow?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z', 'query:to'],
    ['/v1/insights/flow?from=nope', 'query:from'],
  ];
  for (const [path, field] of cases) {
    const r = await api(url(), a.key, 'GET', path);
    assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
    assert.equal(r.headers.get('content-type'), 'application/problem+json', path);
    assert.equal(r.body.errors?.[0]?.field, field, `${path}: ${JSON.stringify(r.body)}`);
  }
});

test('flow statistics: the tenant\'s events per type and minute as they reached the topic', async () => {
  const r = await api(url(), a.key, 'GET', '/v1/insights/flow');
  assert.equal(r.status, 200);
  assert.equal(r.body.series.length, 60);
  const total = r.body.series.reduce((sum: number, s: any) => sum + s.events, 0);
  assert.ok(total >= all.filter((e) => e.tenant === a.id).length, `${total} events in the last hour`);
  assert.ok(r.body.series.some((s: any) => (s.types['com.shop.ad.click'] ?? 0) > 0));
});

test('Redis bytes per campaign-day (hour and day buckets, kept after the minutes expire)', async () => {
  const redis = typeof deps().redis === 'string' ? new Redis(deps().redisUrl) : null;
  if (!redis) return;
  try {
    let bytes = 0;
    let minuteBytes = 0;
    for (const pattern of [`{t:${a.id}}:ins:[bunx]:*:h:*:spring-sale`, `{t:${a.id}}:ins:[bunx]:*:d:*:spring-sale`, `{t:${a.id}}:ins:[bunxg]:*:m:*:spring-sale`])
      for (const key of await redis.keys(pattern)) {
        const n = Number(await redis.memory('USAGE', key));
        if (key.includes(':m:')) minuteBytes += n;
        else bytes += n;
      }
    console.log(`insights: campaign-day of ${expected.figures(a.id, 'spring-sale', 'impressions', day0, day0 + DAY).value} customers: ${bytes} bytes kept (hours and days), ${minuteBytes} bytes of minute buckets for 48 h`);
    assert.ok(bytes > 0 && bytes < 200_000);
  } finally {
    redis.disconnect();
  }
});
