/**
 * Flow statistics end to end: GET /v1/insights/flow answers, per minute and type, the tenant's events as they
 * reached the source topics, the entries the route appended to its subscriptions, and those delivered (a webhook
 * answered 2xx, a JSON page or an SSE stream sent them), each for its own tenant only.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, cloudEvent, createTenant, createTopic, produce, randomName, redisClient, routeEnv, sleep, startPlatform, structuredMessage, waitFor, type TestPlatform } from '../support/helpers.ts';
import { deliverEnv, ownRedis, startReceiver, type Receiver } from './deliver-receiver.ts';
import { createRedis } from '../../platform/redis/client.ts';
import { createFlowCounter, FLOW_TYPES_PER_MINUTE } from '../../platform/insights/flow.ts';
import { insightsKeys } from '../../platform/redis/keys.ts';

const topic = randomName('flow');
const redis = ownRedis(); // deliver works every endpoint of its Redis: this file's own
let p: TestPlatform;
let receiver: Receiver;

before(async () => {
  await createTopic(topic, 2);
  receiver = await startReceiver();
  p = await startPlatform(['subscriptions', 'route', 'gateway', 'deliver', 'insights'], {
    ...routeEnv(topic), ...deliverEnv(), PIONEER_REDIS_URL: redis.url, PIONEER_INSIGHTS_GROUP: randomName('insights'),
  });
});
after(async () => {
  await p?.stop();
  await receiver?.close();
  redis.stop();
});

type Stage = { events: number; types: Record<string, number> };
/** the series summed over its minutes, per stage */
async function flowOf(key: string): Promise<{ ingested: Record<string, number>; routed: Record<string, number>; delivered: Record<string, number> }> {
  const r = await api(p.url('insights'), key, 'GET', '/v1/insights/flow');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const sum = (into: Record<string, number>, types: Record<string, number>) => {
    for (const [t, n] of Object.entries(types)) into[t] = (into[t] ?? 0) + n;
  };
  const out = { ingested: {}, routed: {}, delivered: {} };
  for (const s of r.body.series as { events: number; types: Record<string, number>; routed: Stage; delivered: Stage }[]) {
    sum(out.ingested, s.types);
    sum(out.routed, s.routed.types);
    sum(out.delivered, s.delivered.types);
    assert.equal(s.routed.events, Object.values(s.routed.types).reduce((a, b) => a + b, 0));
  }
  return out;
}

test('ingested, routed and delivered per type: each stage counts what it did, for its own tenant', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const b = await createTenant(p.url('subscriptions'), p.adminKey);
  const pulled = await api(p.url('subscriptions'), a.key, 'POST', '/v1/subscriptions', { types: ['order.placed'] });
  const pushed = await api(p.url('subscriptions'), a.key, 'POST', '/v1/subscriptions', { types: ['order.placed', 'order.paid'], sink: receiver.url });
  assert.equal(pulled.status, 201);
  assert.equal(pushed.status, 201);
  await sleep(400);
  const send = (tenant: string, type: string, n: number) => structuredMessage(cloudEvent(tenant, type, { n }, { partitionkey: `k${n % 3}` }));
  await produce(topic, [
    ...[1, 2, 3].map((n) => send(a.id, 'order.placed', n)), ...[4, 5].map((n) => send(a.id, 'order.paid', n)),
    send(a.id, 'order.shipped', 6), send(b.id, 'order.placed', 7),
  ]);
  await waitFor(() => receiver.received.length >= 5 || undefined, { message: 'five webhooks delivered' });
  const page = await api(p.url('gateway'), a.key, 'GET', `/v1/subscriptions/${pulled.body.id}/events?after=0-0&limit=100`);
  assert.equal(page.body.data.length, 3);

  const want = {
    ingested: { 'order.placed': 3, 'order.paid': 2, 'order.shipped': 1 },
    routed: { 'order.placed': 6, 'order.paid': 2 }, // three to each subscription, two to the webhook's
    delivered: { 'order.placed': 6, 'order.paid': 2 }, // five webhooks, three in the page
  };
  const got = await waitFor(async () => {
    const f = await flowOf(a.key);
    return JSON.stringify(f) === JSON.stringify(want) ? f : undefined;
  }, { message: `the flow of tenant A: ${JSON.stringify(want)}`, timeout: 30_000 }).catch(async (err) => {
    console.log('flow of tenant A:', JSON.stringify(await flowOf(a.key)));
    throw err;
  });
  assert.deepEqual(got, want);
  // tenant B's event reached the topic; B has no subscription: nothing routed or delivered, and none of A's
  assert.deepEqual(await waitFor(async () => {
    const f = await flowOf(b.key);
    return f.ingested['order.placed'] === 1 ? f : undefined;
  }), { ingested: { 'order.placed': 1 }, routed: {}, delivered: {} });
});

test('a tenant sending endless types keeps its flow hash small: past the bound they count as "(other)"', async () => {
  const r = createRedis({ PIONEER_REDIS_URL: redis.url }, { name: 'test' });
  const flow = createFlowCounter(r, 'routed', { flushMs: 60_000 });
  try {
    const tenant = randomName('tenant');
    const minute = Math.floor(Date.now() / 60_000);
    for (let i = 0; i < FLOW_TYPES_PER_MINUTE + 200; i++) flow.add(tenant, `type.${i}`);
    flow.add(tenant, 'x'.repeat(10_000));
    await flow.close();
    const raw = redisClient(redis.url);
    try {
      // counted in the minute it was added in (a flush across a minute's end may name the next one)
      const key = (await raw.exists(insightsKeys.stageFlow(tenant, 'routed', minute))) ? insightsKeys.stageFlow(tenant, 'routed', minute) : insightsKeys.stageFlow(tenant, 'routed', minute + 1);
      const h = await raw.hgetall(key);
      assert.equal(Object.keys(h).length, FLOW_TYPES_PER_MINUTE + 1);
      assert.equal(h['(other)'], '201');
      assert.equal(Object.values(h).reduce((s, n) => s + Number(n), 0), FLOW_TYPES_PER_MINUTE + 201, 'every event counted once');
      assert.ok((await raw.pttl(key)) > 47 * 3_600_000, 'kept for 48 h');
    } finally {
      raw.disconnect();
    }
  } finally {
    r.disconnect();
  }
});
