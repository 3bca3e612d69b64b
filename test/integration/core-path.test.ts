import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, cloudEvent, createTenant, createTopic, produce, randomName, readSse, routeEnv, startPlatform,
  structuredMessage, waitFor, type TestPlatform,
} from '../support/helpers.ts';

let p: TestPlatform;
const topic = randomName('events');

before(async () => {
  await createTopic(topic, 4);
  p = await startPlatform(['subscriptions', 'route', 'gateway'], routeEnv(topic));
});
after(async () => p?.stop());

test('a source event reaches the matching subscription over SSE and JSON, and nothing else does', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const b = await createTenant(p.url('subscriptions'), p.adminKey);
  const subA = await api(p.url('subscriptions'), a.key, 'POST', '/v1/subscriptions', {
    types: ['payment.sent'],
    filters: [{ prefix: { subject: 'acct-' } }, { sql: 'amount > 100' }],
  });
  assert.equal(subA.status, 201, JSON.stringify(subA.body));
  const subB = await api(p.url('subscriptions'), b.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] });
  assert.equal(subB.status, 201);
  await new Promise((r) => setTimeout(r, 300)); // the route's index follows within its poll period

  await produce(topic, [
    structuredMessage(cloudEvent(a.id, 'payment.sent', { n: 1 }, { subject: 'acct-1', amount: 500, partitionkey: 'acct-1' })),
    structuredMessage(cloudEvent(a.id, 'payment.sent', { n: 2 }, { subject: 'acct-1', amount: 50, partitionkey: 'acct-1' })), // filtered out
    structuredMessage(cloudEvent(a.id, 'balance.snapshot', { n: 3 }, { subject: 'acct-1', amount: 500, partitionkey: 'acct-1' })), // other type
    structuredMessage(cloudEvent(b.id, 'payment.sent', { n: 4 }, { subject: 'acct-1', amount: 500, partitionkey: 'acct-9' })), // other tenant
  ]);

  const { events, status } = await readSse(`${p.url('gateway')}/v1/subscriptions/${subA.body.id}/events`, a.consumerKey, { until: (e) => e.length >= 1 });
  assert.equal(status, 200);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.event, 'payment.sent');
  const ce = JSON.parse(events[0]!.data);
  assert.deepEqual(ce.data, { n: 1 });
  assert.equal(ce.tenantid, a.id);
  assert.match(events[0]!.id!, /^\d+-\d+$/);

  const page = await api(p.url('gateway'), a.consumerKey, 'GET', `/v1/subscriptions/${subA.body.id}/events`);
  assert.equal(page.status, 200);
  assert.deepEqual(page.body.data.map((d: any) => d.event.data.n), [1]);
  assert.equal(page.body.data[0].cursor, events[0]!.id);
  assert.equal(page.body.has_more, false);

  const pageB = await waitFor(async () => {
    const r = await api(p.url('gateway'), b.key, 'GET', `/v1/subscriptions/${subB.body.id}/events`);
    return r.body.data.length === 1 ? r : undefined;
  });
  assert.deepEqual(pageB.body.data.map((d: any) => d.event.data.n), [4]);
  // tenant B's keys against tenant A's subscription: 404, never data
  const cross = await api(p.url('gateway'), b.key, 'GET', `/v1/subscriptions/${subA.body.id}/events`);
  assert.equal(cross.status, 404);
});

test('a structured record reaches the consumer as it was written: exact big numbers, one line, partitionkey from the key', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['ledger.posted'] });
  assert.equal(sub.status, 201);
  await new Promise((r) => setTimeout(r, 300));
  const ce = (id: string, extra = '') =>
    `{"specversion":"1.0","id":"${id}","source":"/ledger","type":"ledger.posted","tenantid":"${t.id}"${extra},"data":{"amount_minor":12345678901234567890}}`;
  const headers = { 'content-type': 'application/cloudevents+json; charset=utf-8' };
  const asWritten = ce('big', ',"partitionkey":"acct-1"');
  const pretty = JSON.stringify(JSON.parse(ce('pretty', ',"partitionkey":"acct-1"')), null, 2);
  await produce(topic, [
    { key: 'acct-1', value: asWritten, headers },
    { key: 'acct-1', value: pretty, headers },
    { key: 'acct-1', value: ce('keyed'), headers }, // no partitionkey: the record's key supplies it
  ]);
  const { events } = await readSse(`${p.url('gateway')}/v1/subscriptions/${sub.body.id}/events`, t.consumerKey, { until: (e) => e.length >= 3 });
  assert.equal(events.length, 3);
  assert.equal(events[0]!.data, asWritten, 'stored and sent exactly as the record carried it');
  assert.match(events[0]!.data, /"amount_minor":12345678901234567890/);
  assert.ok(!/[\r\n]/.test(events[1]!.data), 'a multi-line record is sent on one line');
  assert.equal(JSON.parse(events[1]!.data).id, 'pretty');
  assert.equal(JSON.parse(events[2]!.data).partitionkey, 'acct-1');
});
