import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, cloudEvent, createTenant, createTopic, produce, randomName, routeEnv, sleep, startPlatform, structuredMessage,
  waitFor, type TestPlatform,
} from '../support/helpers.ts';
import { deliverEnv, ownRedis, startReceiver, subscribe, waitForAll, type Receiver } from './deliver-receiver.ts';

let p: TestPlatform;
const topic = randomName('events');
const receivers: Receiver[] = [];
const redis = ownRedis();

before(async () => {
  await createTopic(topic, 2);
  p = await startPlatform(['subscriptions', 'route', 'deliver'], {
    PIONEER_REDIS_URL: redis.url,
    ...routeEnv(topic),
    ...deliverEnv(),
  });
});
after(async () => {
  for (const r of receivers) await r.close();
  await p?.stop();
  redis.stop();
});

async function receiver(respond?: Parameters<typeof startReceiver>[0]) {
  const r = await startReceiver(respond);
  receivers.push(r);
  return r;
}

/** A fresh tenant subscribed to a type of its own, pushing to `r`; `send(ns)` produces events with data.n. */
async function setup(r: Receiver) {
  const type = randomName('payment.sent');
  const s = await subscribe(p.url('subscriptions'), p.url('deliver'), p.adminKey, r, type);
  await sleep(300); // the route's index follows within its poll period
  const send = (ns: number[]) => produce(topic, ns.map((n) => structuredMessage(cloudEvent(s.tenant.id, type, { n }, { partitionkey: 'acct-1' }))));
  return { ...s, type, send };
}

const deliveries = async (key: string, subId: string) => (await api(p.url('deliver'), key, 'GET', `/v1/subscriptions/${subId}/deliveries`)).body.data as any[];
const endpoint = async (key: string, subId: string) => (await api(p.url('deliver'), key, 'GET', `/v1/subscriptions/${subId}/endpoint`)).body;

test('an event arrives signed (Standard Webhooks) as a structured CloudEvent, and its attempt is listed', async () => {
  const r = await receiver();
  const s = await setup(r);
  await s.send([1]);
  await waitForAll(r, [1]);
  const got = r.received[0]!;
  assert.deepEqual(got.verifiedWith, [s.secret], 'verifies with the endpoint secret');
  assert.match(got.contentType, /^application\/cloudevents\+json/);
  const ce = JSON.parse(got.body);
  assert.equal(ce.specversion, '1.0');
  assert.equal(ce.tenantid, s.tenant.id);
  assert.equal(ce.type, s.type);
  assert.match(got.webhookId, /^msg_/);
  assert.ok(Math.abs(Number(got.timestamp) * 1000 - Date.now()) < 10_000);

  const list = await waitFor(async () => {
    const d = await deliveries(s.tenant.consumerKey, s.subId);
    return d.length === 1 ? d : undefined;
  });
  assert.equal(list[0].status, 204);
  assert.equal(list[0].outcome, 'delivered');
  assert.equal(list[0].webhook_id, got.webhookId);
  assert.equal(list[0].attempt, 1);
  assert.match(list[0].cursor, /^\d+-\d+$/);
  assert.equal(typeof list[0].latency_ms, 'number');
  const ep = await endpoint(s.tenant.key, s.subId);
  assert.equal(ep.state, 'enabled');
  assert.equal(ep.cursor, list[0].cursor);
  assert.equal(ep.url, r.url);
  assert.match(ep.id, /^ep_/);
  assert.equal(ep.secret, undefined, 'the endpoint view never shows the secret');
});

test('an endpoint failing its first 3 attempts gets the event on the 4th, and nothing after it comes first', async () => {
  const r = await receiver((x) => ({ status: x.n === 1 && x.repeat < 3 ? 500 : 204 }));
  const s = await setup(r);
  await s.send([1, 2, 3, 4]);
  await waitForAll(r, [1, 2, 3, 4]);
  await sleep(300);
  assert.deepEqual(r.received.map((x) => x.n), [1, 1, 1, 1, 2, 3, 4]);
  assert.equal(new Set(r.received.filter((x) => x.n === 1).map((x) => x.webhookId)).size, 1, 'every retry carries the same webhook-id');
  assert.ok(r.received.every((x) => x.verifiedWith.length === 1));
  const d = (await deliveries(s.tenant.key, s.subId)).reverse();
  assert.deepEqual(d.map((a) => [a.attempt, a.status, a.outcome]), [
    [1, 500, 'retry'], [2, 500, 'retry'], [3, 500, 'retry'], [4, 204, 'delivered'], [1, 204, 'delivered'], [1, 204, 'delivered'], [1, 204, 'delivered'],
  ]);
  assert.match(d[0].error, /HTTP 500/);
  assert.ok(d[0].next_attempt_at);
});

test('429 with Retry-After: the next attempt waits as long as the endpoint asked (longer than the schedule)', async () => {
  const r = await receiver((x) => (x.n === 1 && x.repeat === 0 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 }));
  const s = await setup(r);
  await s.send([1, 2]);
  await waitForAll(r, [1, 2]);
  await sleep(100);
  assert.deepEqual(r.received.map((x) => x.n), [1, 1, 2]);
  const gap = r.received[1]!.at - r.received[0]!.at;
  assert.ok(gap >= 950, `retried after ${gap} ms; Retry-After asked 1000 ms, the schedule 200 ms`);
  const d = (await deliveries(s.tenant.key, s.subId)).reverse();
  assert.equal(d[0].status, 429);
});

test('an endpoint that hangs past the timeout is retried; the attempt is recorded as a timeout', async () => {
  const r = await receiver((x) => (x.n === 1 && x.repeat === 0 ? 'hang' : { status: 200 }));
  const s = await setup(r);
  await s.send([1, 2, 3]);
  await waitForAll(r, [1, 2, 3]);
  await sleep(100);
  assert.deepEqual(r.received.map((x) => x.n), [1, 1, 2, 3]);
  const gap = r.received[1]!.at - r.received[0]!.at;
  assert.ok(gap >= 650, `second attempt ${gap} ms after the first (timeout 500 ms + 200 ms)`);
  const d = (await deliveries(s.tenant.key, s.subId)).reverse();
  assert.equal(d[0].status, null);
  assert.match(d[0].error, /timeout/);
  assert.ok(d[0].latency_ms >= 450 && d[0].latency_ms < 2000, String(d[0].latency_ms));
  assert.equal(d[1].outcome, 'delivered');
  assert.equal(d[1].webhook_id, d[0].webhook_id);
});

test('410 Gone disables the endpoint; enabling it resumes with the same event, in order', async () => {
  const r = await receiver((x) => ({ status: x.n === 2 && x.repeat === 0 ? 410 : 204 }));
  const s = await setup(r);
  await s.send([1, 2, 3]);
  await waitFor(async () => (await endpoint(s.tenant.consumerKey, s.subId)).state === 'disabled', { message: 'endpoint disabled' });
  const ep = await endpoint(s.tenant.consumerKey, s.subId);
  assert.match(ep.disabled_reason, /410/);
  await sleep(500);
  assert.deepEqual(r.received.map((x) => x.n), [1, 2], 'nothing is sent to a disabled endpoint');

  const en = await api(p.url('deliver'), s.tenant.key, 'POST', `/v1/subscriptions/${s.subId}/endpoint/enable`);
  assert.equal(en.status, 200);
  assert.equal(en.body.state, 'enabled');
  await waitForAll(r, [3]);
  assert.deepEqual(r.received.map((x) => x.n), [1, 2, 2, 3]);
  assert.equal(r.received[1]!.webhookId, r.received[2]!.webhookId);
});

test('an exhausted event goes to the dead letters and disables the endpoint; a replay delivers them in order, then the live stream', async () => {
  let healthy = false;
  const r = await receiver(() => ({ status: healthy ? 204 : 503 }));
  const s = await setup(r);
  const dead = async () => (await api(p.url('deliver'), s.tenant.consumerKey, 'GET', `/v1/subscriptions/${s.subId}/dead-letters`)).body;
  await s.send([1, 2]);
  await waitFor(async () => (await dead()).data.length === 1, { message: 'first dead letter' });
  let ep = await endpoint(s.tenant.key, s.subId);
  assert.equal(ep.state, 'disabled');
  assert.match(ep.disabled_reason, /6 attempts failed; the last: HTTP 503/);
  assert.equal(r.received.filter((x) => x.n === 1).length, 6, 'the whole schedule (6 attempts) was tried');
  assert.equal(r.received.filter((x) => x.n === 2).length, 0, 'the next event waits behind the failing one');

  // enable: the next event is tried, exhausts its schedule too
  await api(p.url('deliver'), s.tenant.key, 'POST', `/v1/subscriptions/${s.subId}/endpoint/enable`);
  const d = await waitFor(async () => {
    const body = await dead();
    return body.data.length === 2 ? body.data : undefined;
  }, { message: 'second dead letter' });
  assert.deepEqual(d.map((x: any) => x.event.data.n), [1, 2]);
  assert.deepEqual(d.map((x: any) => x.attempts), [6, 6]);
  assert.equal(d[0].webhook_id, r.received.find((x) => x.n === 1)!.webhookId);
  assert.match(d[0].reason, /HTTP 503/);

  await s.send([3]);
  await sleep(400);
  assert.equal(r.received.filter((x) => x.n === 3).length, 0, 'the endpoint is disabled until re-enabled');
  healthy = true;
  const replayFrom = Date.now();
  const replay = await api(p.url('deliver'), s.tenant.key, 'POST', `/v1/subscriptions/${s.subId}/dead-letters/replay`);
  assert.equal(replay.status, 202);
  assert.equal(replay.body.queued, 2);
  await waitFor(() => r.received.filter((x) => x.at >= replayFrom).length >= 3 || undefined, { message: 'replayed and live events' });
  await sleep(200);
  const after = r.received.filter((x) => x.at >= replayFrom);
  assert.deepEqual(after.map((x) => x.n), [1, 2, 3]);
  assert.equal(after[0]!.webhookId, d[0].webhook_id, 'a replayed event keeps its webhook-id');
  assert.equal((await dead()).data.length, 0);
  ep = await endpoint(s.tenant.key, s.subId);
  assert.equal(ep.state, 'enabled');
  assert.equal(ep.pending, null);
});

test('rotating the secret signs with both secrets during the overlap', async () => {
  const r = await receiver();
  const s = await setup(r);
  await s.send([1]);
  await waitForAll(r, [1]);
  const rotated = await api(p.url('deliver'), s.tenant.key, 'POST', `/v1/subscriptions/${s.subId}/endpoint/rotate-secret`);
  assert.equal(rotated.status, 200);
  assert.match(rotated.body.secret, /^whsec_/);
  assert.notEqual(rotated.body.secret, s.secret);
  assert.ok(Date.parse(rotated.body.previous_secret_expires_at) > Date.now());
  r.secrets.push(rotated.body.secret);
  await s.send([2]);
  await waitForAll(r, [2]);
  const second = r.received.find((x) => x.n === 2)!;
  assert.equal(second.signatures.length, 2);
  assert.deepEqual(second.verifiedWith.sort(), [s.secret, rotated.body.secret].sort(), 'verifies with the old and the new secret');
  assert.deepEqual(r.received.find((x) => x.n === 1)!.verifiedWith, [s.secret]);
  const secret = await api(p.url('deliver'), s.tenant.key, 'GET', `/v1/subscriptions/${s.subId}/endpoint/secret`);
  assert.equal(secret.body.secret, rotated.body.secret);
});

test("another tenant's subscription answers 404; a consumer key reads but does not change", async () => {
  const r = await receiver();
  const s = await setup(r);
  const other = await createTenant(p.url('subscriptions'), p.adminKey);
  const base = `/v1/subscriptions/${s.subId}`;
  for (const [method, path] of [
    ['GET', '/deliveries'], ['GET', '/dead-letters'], ['POST', '/dead-letters/replay'], ['GET', '/endpoint'], ['POST', '/endpoint/enable'],
    ['POST', '/endpoint/disable'], ['GET', '/endpoint/secret'], ['POST', '/endpoint/rotate-secret'],
  ] as const) {
    const res = await api(p.url('deliver'), other.key, method, base + path);
    assert.equal(res.status, 404, `${method} ${path}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.code, 'not_found');
    const garbage = await api(p.url('deliver'), s.tenant.key, method, `/v1/subscriptions/nope${path}`);
    assert.equal(garbage.status, 404);
  }
  assert.equal((await api(p.url('deliver'), s.tenant.consumerKey, 'GET', `${base}/deliveries`)).status, 200);
  assert.equal((await api(p.url('deliver'), s.tenant.consumerKey, 'GET', `${base}/endpoint`)).status, 200);
  assert.equal((await api(p.url('deliver'), s.tenant.consumerKey, 'GET', `${base}/endpoint/secret`)).status, 403);
  assert.equal((await api(p.url('deliver'), s.tenant.consumerKey, 'POST', `${base}/endpoint/disable`)).status, 403);
  assert.equal((await api(p.url('deliver'), undefined, 'GET', `${base}/deliveries`)).status, 401);
  const badLimit = await api(p.url('deliver'), s.tenant.key, 'GET', `${base}/deliveries?limit=0`);
  assert.equal(badLimit.status, 400);
  assert.equal(badLimit.body.errors[0].field, 'query:limit');

  // a pull-only subscription has no endpoint
  const pull = await api(p.url('subscriptions'), s.tenant.key, 'POST', '/v1/subscriptions', { types: ['x'] });
  const none = await api(p.url('deliver'), s.tenant.key, 'GET', `/v1/subscriptions/${pull.body.id}/endpoint`);
  assert.equal(none.status, 404);
  assert.match(none.body.title, /no webhook endpoint/);
});
