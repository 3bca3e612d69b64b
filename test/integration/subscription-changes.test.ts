/**
 * Subscription changes reach the route before the events that follow them: an event that reaches the topic after
 * a creation or a change was answered is matched with it, however long the route's poll period, and an index
 * reloads the changed tenant only, or everything when the change stream cannot tell what changed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRedis, type PioneerRedis } from '../../platform/redis/client.ts';
import { keys } from '../../platform/redis/keys.ts';
import { createSubscriptionStore, type SubscriptionStore } from '../../platform/store/subscriptions.ts';
import { createSubscriptionIndex } from '../../platform/store/subscription-index.ts';
import { createLogger } from '../../platform/telemetry/logger.ts';
import {
  api, cloudEvent, createTenant, createTopic, deps, produce, randomName, startPlatform, structuredMessage, waitFor, type TestPlatform,
} from '../support/helpers.ts';

let p: TestPlatform;
let redis: PioneerRedis;
const topic = randomName('changes');

before(async () => {
  await createTopic(topic, 2);
  // a poll period far longer than the test: only the route's check before each batch can see the changes
  p = await startPlatform(['subscriptions', 'route', 'gateway'], {
    PIONEER_SOURCE_TOPICS: topic, PIONEER_ROUTE_GROUP: randomName('route'), PIONEER_SUBSCRIPTION_POLL_MS: '60000',
  });
  redis = createRedis(deps().redis, { name: 'test-subscription-changes' });
});
after(async () => {
  redis?.disconnect();
  await p?.stop();
});

const page = async (key: string, subId: string) =>
  (await api(p.url('gateway'), key, 'GET', `/v1/subscriptions/${subId}/events?limit=1000`)).body.data.map((d: any) => `${d.event.type}:${d.event.data.i}`);

test('events sent right after a subscription is created or changed are matched with it, whatever the poll period', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  // the route has read the topic already (an event of nobody's), so its next batch comes after the changes
  await produce(topic, [structuredMessage(cloudEvent(t.id, 'warm.up', { i: 0 }))]);
  await waitFor(async () => {
    const m = await (await fetch(`${p.url('route')}/metrics`)).text();
    return /pioneer_route_events_total\{[^}]*\} [1-9]/.test(m);
  }, { message: 'the route to read its first record' });

  const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['a'] })).body;
  await produce(topic, Array.from({ length: 5 }, (_, i) => structuredMessage(cloudEvent(t.id, 'a', { i }, { partitionkey: 'k' }))));
  await waitFor(async () => (await page(t.key, sub.id)).length === 5, { timeout: 15_000, message: 'the 5 events sent right after the creation' });

  assert.equal((await api(p.url('subscriptions'), t.key, 'PATCH', `/v1/subscriptions/${sub.id}`, { types: ['b'] })).status, 200);
  await produce(topic, [
    structuredMessage(cloudEvent(t.id, 'a', { i: 5 }, { partitionkey: 'k' })),
    structuredMessage(cloudEvent(t.id, 'b', { i: 6 }, { partitionkey: 'k' })),
  ]);
  await waitFor(async () => (await page(t.key, sub.id)).length === 6, { timeout: 15_000, message: 'the event of the new type' });
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(await page(t.key, sub.id), ['a:0', 'a:1', 'a:2', 'a:3', 'a:4', 'b:6'], 'the old type no longer matches; the new one does at once');
});

/** A store that counts which tenants an index lists. */
function countingStore(): { store: SubscriptionStore; listed: string[] } {
  const real = createSubscriptionStore(redis);
  const listed: string[] = [];
  const store: SubscriptionStore = { ...real, list: async (tenantId: string) => (listed.push(tenantId), real.list(tenantId)) };
  return { store, listed };
}

test('an index reloads the changed tenant only, and everything when a change is missing from the change stream', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const b = await createTenant(p.url('subscriptions'), p.adminKey);
  const subA = (await api(p.url('subscriptions'), a.key, 'POST', '/v1/subscriptions', { types: ['x'] })).body;
  const subB = (await api(p.url('subscriptions'), b.key, 'POST', '/v1/subscriptions', { types: ['x'] })).body;
  const { store, listed } = countingStore();
  const index = createSubscriptionIndex({ store, log: createLogger({ level: 'silent' }), pollMs: 60_000 });
  await index.refresh(true);
  const tenantCount = listed.length;
  assert.ok(tenantCount >= 2, 'the first load lists every tenant');
  const matches = (tenantId: string, type: string) => index.match(tenantId, { type, id: '1', source: '/s', specversion: '1.0' }).map((s) => s.sub.id);
  assert.deepEqual(matches(a.id, 'x'), [subA.id]);

  listed.length = 0;
  await api(p.url('subscriptions'), a.key, 'PATCH', `/v1/subscriptions/${subA.id}`, { types: ['y'] });
  await index.current();
  // other test files change their own tenants' subscriptions meanwhile: those may be listed too, never tenant b
  assert.ok(listed.includes(a.id), 'the changed tenant is listed again');
  assert.ok(!listed.includes(b.id), 'the unchanged tenant is not');
  assert.ok(listed.length < tenantCount, `not every tenant (${listed.length} of ${tenantCount})`);
  assert.deepEqual(matches(a.id, 'x'), []);
  assert.deepEqual(matches(a.id, 'y'), [subA.id]);
  assert.deepEqual(matches(b.id, 'x'), [subB.id], 'the other tenant keeps its subscriptions');

  listed.length = 0;
  await index.current();
  assert.ok(!listed.includes(a.id) && !listed.includes(b.id), 'nothing of theirs changed: neither listed');

  // a bump whose entry never came (a crash between the two): the index cannot tell what changed
  listed.length = 0;
  await redis.incr(keys.subscriptionsVersion());
  await api(p.url('subscriptions'), b.key, 'DELETE', `/v1/subscriptions/${subB.id}`);
  await index.current();
  assert.ok(listed.length >= tenantCount, `every tenant listed again (${listed.length} of ${tenantCount})`);
  assert.deepEqual(matches(b.id, 'x'), []);
  assert.deepEqual(matches(a.id, 'y'), [subA.id]);
  index.stop();
});

test('a change compiles again only the subscriptions whose record changed: the others, and other tenants, keep theirs', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const b = await createTenant(p.url('subscriptions'), p.adminKey);
  const subsA: { id: string }[] = [];
  for (let i = 0; i < 20; i++) subsA.push((await api(p.url('subscriptions'), a.key, 'POST', '/v1/subscriptions', { types: ['x'], filters: [{ sql: `id = '${i}' OR TRUE` }] })).body);
  const subB = (await api(p.url('subscriptions'), b.key, 'POST', '/v1/subscriptions', { types: ['x'] })).body;
  const index = createSubscriptionIndex({ store: createSubscriptionStore(redis), log: createLogger({ level: 'silent' }), pollMs: 60_000 });
  await index.refresh(true);
  const event = { type: 'x', id: '1', source: '/s', specversion: '1.0' };
  const beforeA = index.match(a.id, event);
  const beforeB = index.match(b.id, event);
  assert.equal(beforeA.length, 20);
  assert.equal(beforeB.length, 1);

  // one of tenant a's twenty changes, over and over: each change is seen, the other nineteen are not compiled again
  for (let round = 0; round < 5; round++) {
    await api(p.url('subscriptions'), a.key, 'PATCH', `/v1/subscriptions/${subsA[0]!.id}`, { types: round % 2 === 0 ? ['y'] : ['x'] });
    await index.current();
    const nowA = index.match(a.id, event);
    assert.equal(nowA.length, round % 2 === 0 ? 19 : 20, `round ${round}: the changed subscription follows its types`);
    for (const s of nowA.filter((s) => s.sub.id !== subsA[0]!.id)) assert.ok(beforeA.includes(s), `round ${round}: ${s.sub.id} is the one compiled before`);
    assert.ok(index.match(b.id, event)[0] === beforeB[0], `round ${round}: the other tenant's subscription is the one compiled before`);
  }
  assert.equal(index.size(), (await createSubscriptionStore(redis).reloadIfChanged(null))!.subs.length, 'the count follows the changes');

  // a full reload (the cannot-tell case) reuses what did not change as well
  await index.refresh(true);
  assert.ok(index.match(b.id, event)[0] === beforeB[0], 'a full reload keeps an unchanged subscription compiled');
  index.stop();
});
