import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, cloudEvent, createTopic, killProcess, ownService, produce, randomName, routeEnv, sleep, spawnFunctions,
  startPlatform, structuredMessage, waitFor, type TestPlatform,
} from '../support/helpers.ts';
import { deliverEnv, ownRedis, startReceiver, subscribe, waitForAll, type Receiver } from './deliver-receiver.ts';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function receiver(respond: Parameters<typeof startReceiver>[0]): Promise<Receiver> {
  const r = await startReceiver(respond);
  cleanups.push(() => r.close());
  return r;
}

test('kill -9 of deliver in the middle of an attempt: another instance repeats it with the same webhook-id, nothing lost or reordered', async () => {
  const topic = randomName('events');
  await createTopic(topic, 2);
  const redis = ownRedis();
  cleanups.push(() => redis.stop());
  const p: TestPlatform = await startPlatform(['subscriptions', 'route'], {
    PIONEER_REDIS_URL: redis.url,
    ...routeEnv(topic),
    ...deliverEnv({ PIONEER_DELIVER_TIMEOUT_MS: '60000' }),
  });
  cleanups.push(() => p.stop());
  let hung: () => void = () => {};
  const hanging = new Promise<void>((r) => (hung = r));
  const r = await receiver((x) => {
    if (x.n === 3 && x.repeat === 0) {
      hung();
      return 'hang';
    }
    return { status: 204 };
  });
  const env = { ...p.env, PIONEER_DELIVER_PORT: '0' };
  const first = await spawnFunctions(['deliver'], env);
  cleanups.push(() => killProcess(first.child));

  const type = randomName('payment.sent');
  const s = await subscribe(p.url('subscriptions'), first.urls['deliver']!, p.adminKey, r, type);
  await sleep(300);
  const ns = [1, 2, 3, 4, 5, 6];
  await produce(topic, ns.map((n) => structuredMessage(cloudEvent(s.tenant.id, type, { n }, { partitionkey: 'acct-1' }))));
  await hanging;
  await killProcess(first.child, 'SIGKILL');
  const killedAt = Date.now();

  const second = await spawnFunctions(['deliver'], env);
  cleanups.push(() => killProcess(second.child));
  await waitForAll(r, ns, 30000);
  await sleep(200);
  assert.deepEqual(r.received.map((x) => x.n), [1, 2, 3, 3, 4, 5, 6], 'the cut-short attempt is repeated, then the rest in order');
  const threes = r.received.filter((x) => x.n === 3);
  assert.equal(threes[0]!.webhookId, threes[1]!.webhookId, 'the repeated attempt carries the same webhook-id');
  assert.ok(threes[1]!.at >= killedAt);
  assert.ok(r.received.every((x) => x.verifiedWith.length === 1));

  const d = (await api(second.urls['deliver']!, s.tenant.key, 'GET', `/v1/subscriptions/${s.subId}/deliveries`)).body.data as any[];
  const three = d.find((a) => a.webhook_id === threes[0]!.webhookId);
  assert.equal(three.attempt, 2, 'the attempt the crash cut short counts');
  assert.equal(three.outcome, 'delivered');
});

test('kill -9 of redis-server while delivering: every event arrives, in order, a repeat only with the same webhook-id', async () => {
  const redis = ownService('redis');
  const redisUrl = redis.start();
  cleanups.push(() => redis.stop());
  const topic = randomName('events');
  await createTopic(topic, 2);
  const p = await startPlatform(['subscriptions', 'route', 'deliver'], {
    PIONEER_REDIS_URL: redisUrl,
    ...routeEnv(topic),
    ...deliverEnv(),
  });
  cleanups.push(() => p.stop());
  const r = await receiver(async () => {
    await sleep(15);
    return { status: 204 };
  });
  const type = randomName('payment.sent');
  const s = await subscribe(p.url('subscriptions'), p.url('deliver'), p.adminKey, r, type);
  await sleep(1500); // the subscription reaches the append-only file (fsync every second) and the route's index

  const total = 80;
  const ns = Array.from({ length: total }, (_, i) => i + 1);
  await produce(topic, ns.map((n) => structuredMessage(cloudEvent(s.tenant.id, type, { n }, { partitionkey: 'acct-1' }))));
  await waitFor(() => r.received.length >= 20 || undefined, { timeout: 30000, message: '20 deliveries before the crash' });
  redis.kill9();
  const receivedAtCrash = r.received.length;
  await sleep(700);
  redis.start();

  await waitForAll(r, ns, 90000);
  await sleep(300);
  assert.ok(receivedAtCrash < total, 'the crash came in the middle of the deliveries');
  assert.deepEqual(r.firstReceipts(), ns, 'every event arrived, first receipts in order');
  const ids = new Map<number, Set<string>>();
  for (const x of r.received) ids.set(x.n, (ids.get(x.n) ?? new Set()).add(x.webhookId));
  for (const [n, set] of ids) assert.equal(set.size, 1, `event ${n} arrived under ${set.size} webhook-ids`);
  assert.ok(r.received.every((x) => x.verifiedWith.length === 1), 'every delivery verifies');
  // repeats are allowed only for events that may have been delivered in Redis's last unsynced second
  const repeats = r.received.length - total;
  console.log(`redis kill -9: ${receivedAtCrash} delivered before the crash, ${repeats} repeated after it`);
});

test('a retry timer survives kill -9 of deliver: the next attempt keeps to the time stored in Redis', async () => {
  const topic = randomName('events');
  await createTopic(topic, 1);
  const redis = ownRedis();
  cleanups.push(() => redis.stop());
  const p: TestPlatform = await startPlatform(['subscriptions', 'route'], {
    PIONEER_REDIS_URL: redis.url,
    ...routeEnv(topic),
    ...deliverEnv(),
  });
  cleanups.push(() => p.stop());
  const r = await receiver((x) => (x.n === 1 && x.repeat === 0 ? { status: 503, headers: { 'retry-after': '3' } } : { status: 204 }));
  const env = { ...p.env, PIONEER_DELIVER_PORT: '0' };
  const first = await spawnFunctions(['deliver'], env);
  cleanups.push(() => killProcess(first.child));
  const type = randomName('payment.sent');
  const s = await subscribe(p.url('subscriptions'), first.urls['deliver']!, p.adminKey, r, type);
  await sleep(300);
  await produce(topic, [1, 2].map((n) => structuredMessage(cloudEvent(s.tenant.id, type, { n }, { partitionkey: 'acct-1' }))));
  await waitFor(() => r.received.length >= 1 || undefined, { message: 'first attempt' });
  await sleep(200);
  await killProcess(first.child, 'SIGKILL');
  const second = await spawnFunctions(['deliver'], env);
  cleanups.push(() => killProcess(second.child));
  await waitForAll(r, [1, 2]);
  await waitFor(() => r.received.length >= 3 || undefined, { message: 'the retry and the next event' });
  assert.deepEqual(r.received.map((x) => x.n), [1, 1, 2]);
  const gap = r.received[1]!.at - r.received[0]!.at;
  assert.ok(gap >= 2900, `retried ${gap} ms after the first attempt; the endpoint asked for 3000 ms`);
  const d = (await api(second.urls['deliver']!, s.tenant.key, 'GET', `/v1/subscriptions/${s.subId}/deliveries`)).body.data as any[];
  assert.deepEqual(d.reverse().map((a) => [a.attempt, a.status]), [[1, 503], [2, 204], [1, 204]]);
});
