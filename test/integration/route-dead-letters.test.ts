import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, cloudEvent, createTenant, createTopic, kafkaClient, produce, randomName, startPlatform, structuredMessage, waitFor, subscribeFromStart, type TestPlatform,
} from '../support/helpers.ts';

let p: TestPlatform;
const topic = randomName('events');
const legacy = randomName('legacy');
const dlq = `${topic}.dlq`;

before(async () => {
  await createTopic(topic, 2);
  await createTopic(legacy, 1);
  await createTopic(dlq, 1);
  p = await startPlatform(['subscriptions', 'route', 'gateway'], {
    PIONEER_SOURCE_TOPICS: `${topic},${legacy}`,
    PIONEER_ROUTE_GROUP: randomName('route'),
    PIONEER_DEAD_LETTER_TOPIC: dlq,
    PIONEER_MAX_RECORD_BYTES: '4096',
    PIONEER_TOPIC_MAPPINGS: JSON.stringify({ [legacy]: { tenant: '$.owner', type: 'legacy.payment', id: '$.txid', partitionkey: '$.account', time: '$.ts' } }),
  });
});
after(async () => p?.stop());

async function readDeadLetters(count: number) {
  const consumer = kafkaClient().consumer({ groupId: randomName('dlq') });
  const got: { reason: string; value: string; offset?: string }[] = [];
  await consumer.connect();
  await subscribeFromStart(consumer, dlq);
  await consumer.run({
    eachMessage: async ({ message }) => {
      got.push({ reason: message.headers!['pioneer-error']!.toString(), value: message.value?.toString() ?? '', offset: message.headers!['pioneer-source-offset']?.toString() });
    },
  });
  await waitFor(() => got.length >= count, { timeout: 30000, message: `${count} dead letters` });
  await consumer.disconnect();
  return got;
}

test('malformed and oversized records go to the dead-letter topic with the reason, and routing continues', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] })).body;
  await new Promise((r) => setTimeout(r, 300));
  const good = (n: number) => structuredMessage(cloudEvent(t.id, 'payment.sent', { n }, { partitionkey: 'acct-1' }));
  await produce(topic, [
    good(1),
    { key: 'acct-1', value: '{"specversion": "1.0", "id": ', headers: { 'content-type': 'application/cloudevents+json' } }, // truncated JSON
    structuredMessage({ ...cloudEvent(t.id, 'payment.sent', {}), id: undefined, partitionkey: 'acct-1' }), // no id
    structuredMessage({ ...cloudEvent('', 'payment.sent', {}), tenantid: undefined, partitionkey: 'acct-1' }), // no tenant
    { key: 'acct-1', value: 'plain text, no CloudEvent' }, // no mapping for this topic
    structuredMessage(cloudEvent(t.id, 'payment.sent', { pad: 'x'.repeat(5000) }, { partitionkey: 'acct-1' })), // oversized
    good(2),
  ]);
  const dead = await readDeadLetters(5);
  const reasons = dead.map((d) => d.reason);
  assert.ok(reasons.some((r) => /not valid JSON/.test(r)), reasons.join(' | '));
  assert.ok(reasons.some((r) => /id: is required/.test(r)), reasons.join(' | '));
  assert.ok(reasons.some((r) => /tenantid: is required/.test(r)), reasons.join(' | '));
  assert.ok(reasons.some((r) => /no mapping/.test(r)), reasons.join(' | '));
  assert.ok(reasons.some((r) => /larger than 4096/.test(r)), reasons.join(' | '));
  assert.ok(dead.every((d) => d.offset !== undefined), 'each dead letter names its source offset');
  assert.ok(dead.some((d) => d.value === 'plain text, no CloudEvent'), 'the original value is kept');

  const page = await waitFor(async () => {
    const r = await api(p.url('gateway'), t.key, 'GET', `/v1/subscriptions/${sub.id}/events`);
    return r.body.data.length === 2 ? r : undefined;
  });
  assert.deepEqual(page.body.data.map((d: any) => d.event.data.n), [1, 2]);
  assert.equal((await fetch(`${p.url('route')}/healthz`)).status, 200);
});

test('records that are not CloudEvents are adapted by the topic mapping', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['legacy.payment'] })).body;
  await new Promise((r) => setTimeout(r, 300));
  await produce(legacy, [{ key: null, value: JSON.stringify({ owner: t.id, txid: 'tx-9', account: 'acct-5', ts: 1767225600000, amount: 12 }) }]);
  const page = await waitFor(async () => {
    const r = await api(p.url('gateway'), t.key, 'GET', `/v1/subscriptions/${sub.id}/events`);
    return r.body.data.length === 1 ? r : undefined;
  });
  const ce = page.body.data[0].event;
  assert.equal(ce.id, 'tx-9');
  assert.equal(ce.type, 'legacy.payment');
  assert.equal(ce.tenantid, t.id);
  assert.equal(ce.partitionkey, 'acct-5');
  assert.equal(ce.time, '2026-01-01T00:00:00.000Z');
  assert.equal(ce.source, `kafka:${legacy}`);
  assert.deepEqual(ce.data.amount, 12);
});

test("a record whose tenantid names no tenant goes to the dead-letter topic; a tenant created a moment ago is routed", async () => {
  const ghost = `ten_${randomName('ghost').replace(/-/g, '')}`;
  const marker = randomName('marker');
  // the new tenant's subscription is created and its event produced at once, before any index poll
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] })).body;
  await produce(topic, [
    structuredMessage(cloudEvent(ghost, 'payment.sent', { marker }, { partitionkey: 'acct-9' })),
    structuredMessage(cloudEvent(t.id, 'payment.sent', { marker, n: 1 }, { partitionkey: 'acct-9' })),
  ]);
  const consumer = kafkaClient().consumer({ groupId: randomName('dlq') });
  const got: { reason: string; value: string }[] = [];
  await consumer.connect();
  await subscribeFromStart(consumer, dlq);
  await consumer.run({
    eachMessage: async ({ message }) => {
      const value = message.value?.toString() ?? '';
      if (value.includes(marker)) got.push({ reason: message.headers!['pioneer-error']!.toString(), value });
    },
  });
  try {
    await waitFor(() => got.length >= 1, { timeout: 30000, message: 'the unknown tenant dead letter' });
    const page = await waitFor(async () => {
      const r = await api(p.url('gateway'), t.key, 'GET', `/v1/subscriptions/${sub.id}/events`);
      return r.body.data.length === 1 ? r : undefined;
    });
    assert.equal(page.body.data[0].event.data.n, 1);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(got.length, 1, 'only the unknown tenant record is dead-lettered');
    assert.match(got[0]!.reason, new RegExp(`tenantid: no tenant '${ghost}'`));
    assert.equal(JSON.parse(got[0]!.value).tenantid, ghost);
  } finally {
    await consumer.disconnect();
  }
});
