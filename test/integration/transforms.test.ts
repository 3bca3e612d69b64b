/**
 * Transforms, through the real API, route, gateway and deliver on a real Kafka and Redis: a subscription's JSONata
 * `transform` shapes the data it gets (masking, projection), is checked at creation (400 naming the error), is
 * bounded per evaluation, and an event it fails on is set aside in the subscription's dead letters with the
 * reason, never delivered untransformed, while the events after it flow on. The cold tier derives the same text.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, cloudEvent, createTenant, createTopic, produce, randomName, redisClient, routeEnv, sleep, startPlatform, structuredMessage, waitFor, type TestPlatform,
} from '../support/helpers.ts';
import { deliverEnv, ownRedis, startReceiver, type Receiver } from './deliver-receiver.ts';
import { keys } from '../../platform/redis/keys.ts';

const topic = randomName('transforms');
const redis = ownRedis(); // deliver works every endpoint of its Redis: this file's own
let p: TestPlatform;
let receiver: Receiver;

before(async () => {
  await createTopic(topic, 2);
  receiver = await startReceiver();
  p = await startPlatform(['subscriptions', 'route', 'gateway', 'deliver'], {
    ...routeEnv(topic), ...deliverEnv(), PIONEER_REDIS_URL: redis.url, PIONEER_STREAM_HOT_SECONDS: '1',
  });
});
after(async () => {
  await p?.stop();
  await receiver?.close();
  redis.stop();
});

const page = async (key: string, sub: string, after = '0-0') => (await api(p.url('gateway'), key, 'GET', `/v1/subscriptions/${sub}/events?after=${after}&limit=100`)).body;

test('a transform masks and projects the delivered data; the attributes stay, and the cold tier serves the same text', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const created = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', {
    types: ['payment.sent'], transform: '{ "amount": amount, "iban": $substring(iban, 0, 4) & "****", "from": $event.source }',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.transform, '{ "amount": amount, "iban": $substring(iban, 0, 4) & "****", "from": $event.source }');
  await sleep(400);
  await produce(topic, [0, 1, 2].map((n) => structuredMessage(cloudEvent(t.id, 'payment.sent', { amount: 100 + n, iban: 'NL91ABNA0417164300', holder: 'J. Doe' }, { partitionkey: 'k' }))));
  const body = await waitFor(async () => {
    const b = await page(t.key, created.body.id);
    return b.data.length === 3 ? b : null;
  });
  for (const [n, d] of body.data.entries()) {
    assert.deepEqual(d.event.data, { amount: 100 + n, iban: 'NL91****', from: '/test/bank' });
    assert.equal(d.event.type, 'payment.sent');
    assert.equal(d.event.tenantid, t.id);
    assert.ok(!JSON.stringify(d.event).includes('0417164300') && !JSON.stringify(d.event).includes('J. Doe'), 'nothing of what the transform left out');
  }
  // more than a hot window later, one more event: the first three leave Redis and come back from Kafka, the same
  await sleep(1500);
  await produce(topic, [structuredMessage(cloudEvent(t.id, 'payment.sent', { amount: 200, iban: 'DE89370400440532013000' }, { partitionkey: 'k' }))]);
  const r = redisClient(redis.url);
  try {
    await waitFor(async () => (await r.xlen(keys.stream(t.id, created.body.id))) === 1, { message: 'the first events trimmed' });
  } finally {
    r.disconnect();
  }
  const cold = await page(t.key, created.body.id);
  assert.deepEqual(cold.data.slice(0, 3), body.data, 'the cold tier derives the same ids and text');
});

test('an event the transform fails on is set aside in the dead letters with the reason; the events after it flow on; a replay of dead letters leaves it', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const created = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', {
    types: ['order.placed'], sink: receiver.url, transform: 'total ? { "n": n, "total": total } : $error("no total in the order")',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const sub = created.body.id as string;
  await sleep(400);
  const send = (data: Record<string, unknown>) => structuredMessage(cloudEvent(t.id, 'order.placed', data, { partitionkey: 'o' }));
  // a recursion past the depth bound, too: set aside, and the route goes on at once
  await produce(topic, [send({ n: 1, total: 10 }), send({ n: 2 }), send({ n: 3, total: 30 })]);
  await waitFor(() => receiver.firstReceipts().length === 2 || undefined, { message: 'the two good events delivered' });
  assert.deepEqual(receiver.firstReceipts(), [1, 3]);
  assert.deepEqual((await page(t.key, sub)).data.map((d: any) => d.event.data), [{ n: 1, total: 10 }, { n: 3, total: 30 }]);
  const dead = await api(p.url('deliver'), t.key, 'GET', `/v1/subscriptions/${sub}/dead-letters`);
  assert.equal(dead.status, 200);
  assert.equal(dead.body.data.length, 1);
  assert.match(dead.body.data[0].reason, /^transform failed: no total in the order/);
  assert.deepEqual(dead.body.data[0].event.data, { n: 2 }, 'the event as it came, for its tenant to see');
  // a replay of the dead letters must not deliver it untransformed: it stays where it is
  const replay = await api(p.url('deliver'), t.key, 'POST', `/v1/subscriptions/${sub}/dead-letters/replay`);
  assert.equal(replay.status, 202, JSON.stringify(replay.body));
  assert.equal(replay.body.queued, 0);
  await sleep(500);
  assert.deepEqual(receiver.firstReceipts(), [1, 3]);
  assert.equal((await api(p.url('deliver'), t.key, 'GET', `/v1/subscriptions/${sub}/dead-letters`)).body.data.length, 1);
});

test('a transform past its bounds is set aside naming the bound, and the events after it flow on at once', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const bounds = {
    deep: '($f := function($x){ $x > 0 ? $f($x - 1) + 1 : 0 }; n = 1 ? $f(100000) : n)',
    long: 'n = 1 ? $reduce([1..40], function($acc, $v){ $acc & $acc }, "x") : n',
    // unbounded, this would take 10^10 steps: hours
    slow: 'n = 1 ? $reduce([1..99999], function($a, $v){ $reduce([1..99999], function($b, $w){ $b + $w }, $a) }, 0) : n',
  };
  for (const [name, transform] of Object.entries(bounds)) {
    const created = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { name, types: ['tick'], transform });
    assert.equal(created.status, 201, `${name}: ${JSON.stringify(created.body)}`);
  }
  const subs = (await api(p.url('subscriptions'), t.key, 'GET', '/v1/subscriptions')).body.data as { id: string; name: string }[];
  await sleep(400);
  const started = Date.now();
  await produce(topic, [1, 2].map((n) => structuredMessage(cloudEvent(t.id, 'tick', { n }, { partitionkey: 'b' }))));
  for (const s of subs) await waitFor(async () => (await page(t.key, s.id)).data.length === 1, { message: `${s.name}: the second event` });
  assert.ok(Date.now() - started < 30_000, 'the bounds cut each evaluation short');
  const reasons = Object.fromEntries(
    await Promise.all(subs.map(async (s) => [s.name, (await api(p.url('deliver'), t.key, 'GET', `/v1/subscriptions/${s.id}/dead-letters`)).body.data[0]?.reason])),
  );
  assert.match(reasons['deep'], /transform failed: .*(stack|timeout)/i);
  assert.match(reasons['long'], /transform built a string longer than 262144 characters/);
  assert.match(reasons['slow'], /transform took more than 20000 evaluation steps/);
});

test('a transform is checked at creation and on change: 400 naming the field and the error; null removes it', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const cases: [string, RegExp][] = [
    ['{ "a": ', /does not compile/],
    ['$match(name, /a+/)', /regular expressions are not allowed/],
    ['x'.repeat(4097), /at most 4096 characters/],
  ];
  for (const [transform, message] of cases) {
    const res = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['x'], transform });
    assert.equal(res.status, 400, transform.slice(0, 40));
    assert.equal(res.body.errors[0].field, 'transform');
    assert.match(res.body.errors[0].message, message);
  }
  assert.equal((await api(p.url('subscriptions'), t.key, 'GET', '/v1/subscriptions')).body.data.length, 0, 'nothing created');
  const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['x'] })).body.id as string;
  const bad = await api(p.url('subscriptions'), t.key, 'PATCH', `/v1/subscriptions/${sub}`, { transform: '(' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.errors[0].field, 'transform');
  const set = await api(p.url('subscriptions'), t.key, 'PATCH', `/v1/subscriptions/${sub}`, { transform: '{ "v": v * 2 }' });
  assert.equal(set.status, 200);
  assert.equal(set.body.transform, '{ "v": v * 2 }');
  await sleep(400);
  await produce(topic, [structuredMessage(cloudEvent(t.id, 'x', { v: 21, w: 1 }, { partitionkey: 'p' }))]);
  await waitFor(async () => (await page(t.key, sub)).data.length === 1);
  assert.deepEqual((await page(t.key, sub)).data[0].event.data, { v: 42 });
  const unset = await api(p.url('subscriptions'), t.key, 'PATCH', `/v1/subscriptions/${sub}`, { transform: null });
  assert.equal(unset.status, 200);
  assert.equal(unset.body.transform, undefined);
  await sleep(400);
  await produce(topic, [structuredMessage(cloudEvent(t.id, 'x', { v: 1, w: 2 }, { partitionkey: 'p' }))]);
  await waitFor(async () => (await page(t.key, sub)).data.length === 2);
  assert.deepEqual((await page(t.key, sub)).data[1].event.data, { v: 1, w: 2 });
});
