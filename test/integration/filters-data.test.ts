/**
 * Filters on event data end to end: subscriptions created through the subscriptions API filter on what is inside
 * an event (`data.amount > 100`, `exact: { "data.merchant.country": "NL" }`); events produced to the source topic
 * in both Kafka modes and posted to the ingest API in each mode go through the route to Redis, and a reader sees
 * exactly the events whose data matches. Data that is not there, not JSON, or not a value is a missing attribute.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, cloudEvent, createTenant, createTopic, produce, randomName, readSse, routeEnv, startPlatform, structuredMessage, waitFor,
  type TestPlatform,
} from '../support/helpers.ts';

let p: TestPlatform;
// one partition: the route sees the events in the order they were produced and posted
const topic = randomName('data-filters');
const TYPE = 'card.payment';

before(async () => {
  await createTopic(topic, 1);
  await createTopic(`${topic}.dlq`, 1);
  p = await startPlatform(['subscriptions', 'ingest', 'route', 'gateway'], { ...routeEnv(topic), PIONEER_INGEST_TOPIC: topic });
});
after(async () => p?.stop());

/** Every event of a subscription, from its JSON pages: the `id` of each, in order. */
async function idsOf(subId: string, key: string): Promise<string[]> {
  const ids: string[] = [];
  let after = '';
  for (;;) {
    const page = await api(p.url('gateway'), key, 'GET', `/v1/subscriptions/${subId}/events${after ? `?after=${after}` : ''}`);
    assert.equal(page.status, 200, JSON.stringify(page.body));
    for (const d of page.body.data) ids.push(d.event.id);
    if (!page.body.has_more || page.body.data.length === 0) return ids;
    after = page.body.data[page.body.data.length - 1].cursor;
  }
}

test('a subscription filtering on data.amount and data.merchant.country receives exactly the events whose data matches, from every producer', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const create = (filters: unknown) => api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: [TYPE], filters });
  const dutchAndLarge = await create([{ sql: 'data.amount > 100' }, { exact: { 'data.merchant.country': 'NL' } }]);
  assert.equal(dutchAndLarge.status, 201, JSON.stringify(dutchAndLarge.body));
  assert.deepEqual(dutchAndLarge.body.filters, [{ sql: 'data.amount > 100' }, { exact: { 'data.merchant.country': 'NL' } }]);
  // not NL: also every event where the country is missing, as `not` of a missing attribute's `exact` would
  const notDutch = await create([{ not: { exact: { 'data.merchant.country': 'NL' } } }]);
  assert.equal(notDutch.status, 201, JSON.stringify(notDutch.body));
  // every event: tells when the route has seen them all
  const all = await create([]);
  assert.equal(all.status, 201);
  await new Promise((r) => setTimeout(r, 300)); // the route's index follows within its poll period

  const nl = (amount: unknown, extra: Record<string, unknown> = {}) => ({ amount, merchant: { country: 'NL', name: 'Bakkerij' }, ...extra });
  const ce = (id: string, data: unknown, extra: Record<string, unknown> = {}) => ({ ...cloudEvent(t.id, TYPE, data, { partitionkey: 'card-1', ...extra }), id });
  const binaryRecord = (id: string, value: string, contentType: string) => ({
    key: 'card-1',
    value,
    headers: { ce_specversion: '1.0', ce_id: id, ce_source: '/cards', ce_type: TYPE, ce_tenantid: t.id, 'content-type': contentType },
  });

  // straight to the source topic, in both modes of the Kafka binding
  await produce(topic, [
    structuredMessage(ce('k-match', nl(500))), // matches
    structuredMessage(ce('k-small', nl(50))), // amount too small
    structuredMessage(ce('k-edge', nl(100))), // not greater than 100
    structuredMessage(ce('k-de', { amount: 500, merchant: { country: 'DE' } })), // another country
    structuredMessage(ce('k-no-merchant', { amount: 500 })), // no merchant: country missing
    structuredMessage(ce('k-object', { amount: 500, merchant: { country: { code: 'NL' } } })), // an object is no value
    structuredMessage(ce('k-fraction', nl(100.5))), // not an Integer: a cast error, no match
    structuredMessage(ce('k-string-amount', nl('500'))), // a String holding an integer casts as CESQL casts it
    structuredMessage(ce('k-array-data', [nl(500)])), // data is an array: no member `amount`
    structuredMessage(ce('k-no-data', undefined)), // no data at all
    binaryRecord('k-binary', JSON.stringify(nl(2000)), 'application/json'), // matches
    binaryRecord('k-text', 'amount=500 country=NL', 'text/plain'), // not JSON: missing
    binaryRecord('k-bytes', '{"amount":500,"merchant":{"country":"NL"}}', 'application/octet-stream'), // data_base64: missing
  ]);

  // through the ingest API, after the records above: structured, batch, and binary with a JSON or text body
  const post = async (body: string, headers: Record<string, string>) => {
    const res = await fetch(`${p.url('ingest')}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${t.key}`, ...headers }, body });
    assert.equal(res.status, 202, await res.text());
  };
  await post(JSON.stringify(ce('i-structured', nl(150))), { 'content-type': 'application/cloudevents+json' }); // matches
  await post(JSON.stringify([ce('i-batch-small', nl(99)), ce('i-batch', nl(101, { note: 'x' }))]), { 'content-type': 'application/cloudevents-batch+json' });
  const binary = { 'ce-specversion': '1.0', 'ce-source': '/cards', 'ce-type': TYPE, 'ce-partitionkey': 'card-1' };
  await post(JSON.stringify(nl(7000)), { ...binary, 'ce-id': 'i-binary', 'content-type': 'application/json' }); // matches
  await post('{"amount": 7000, "merchant": {"country": "NL"}}', { ...binary, 'ce-id': 'i-binary-text', 'content-type': 'text/plain' }); // text: missing

  const everything = [
    'k-match', 'k-small', 'k-edge', 'k-de', 'k-no-merchant', 'k-object', 'k-fraction', 'k-string-amount', 'k-array-data', 'k-no-data',
    'k-binary', 'k-text', 'k-bytes', 'i-structured', 'i-batch-small', 'i-batch', 'i-binary', 'i-binary-text',
  ];
  await waitFor(async () => (await idsOf(all.body.id, t.consumerKey)).length >= everything.length, { timeout: 30000, message: 'the route to see every event' });
  assert.deepEqual(await idsOf(all.body.id, t.consumerKey), everything);

  const expected = ['k-match', 'k-string-amount', 'k-binary', 'i-structured', 'i-batch', 'i-binary'];
  assert.deepEqual(await idsOf(dutchAndLarge.body.id, t.consumerKey), expected);
  assert.deepEqual(await idsOf(notDutch.body.id, t.consumerKey), [
    'k-de', 'k-no-merchant', 'k-object', 'k-array-data', 'k-no-data', 'k-text', 'k-bytes', 'i-binary-text',
  ]);

  // over SSE, what a reader sees is the events as they were written, data included
  const { events, status } = await readSse(`${p.url('gateway')}/v1/subscriptions/${dutchAndLarge.body.id}/events`, t.consumerKey, {
    until: (e) => e.length >= expected.length,
  });
  assert.equal(status, 200);
  assert.deepEqual(events.map((e) => JSON.parse(e.data).id), expected);
  assert.deepEqual(events.map((e) => JSON.parse(e.data).data.amount), [500, '500', 2000, 150, 101, 7000]);
  assert.ok(events.every((e) => e.event === TYPE && JSON.parse(e.data).data.merchant.country === 'NL'));
});

test('a bad data path answers 400 naming the field, and changes nothing', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: [TYPE], filters: [{ sql: 'DATA.amount > 100' }] });
  assert.equal(sub.status, 201, JSON.stringify(sub.body));
  const refused: [unknown, string, RegExp][] = [
    [[{ sql: 'merchant.country = 1' }], 'filters[0].sql', /data path starting with data/],
    [[{ sql: 'data.amount. > 1' }], 'filters[0].sql', /member name \(letters, digits and _\) after '\.' at position 12/],
    [[{ any: [{ sql: `data.${'a.'.repeat(16)}a = 1` }] }], 'filters[0].any[0].sql', /at most 16 members/],
    [[{ exact: { type: TYPE } }, { exact: { 'data.merchant-id': 'm1' } }], 'filters[1].exact.data.merchant-id', /letters, digits and _ only.*found 'merchant-id'/],
    [[{ prefix: { 'data.': 'x' } }], 'filters[0].prefix.data.', /letters, digits and _ only/],
  ];
  for (const [filters, field, message] of refused) {
    for (const [method, path] of [['POST', '/v1/subscriptions'], ['PATCH', `/v1/subscriptions/${sub.body.id}`]] as const) {
      const r = await api(p.url('subscriptions'), t.key, method, path, { filters });
      assert.equal(r.status, 400, `${method} ${JSON.stringify(filters)}: ${r.status} ${JSON.stringify(r.body)}`);
      assert.equal(r.headers.get('content-type'), 'application/problem+json');
      const hit = r.body.errors.find((e: { field: string }) => e.field === field);
      assert.ok(hit, `expected an error on ${field}, got ${JSON.stringify(r.body.errors)}`);
      assert.match(hit.message, message);
    }
  }
  const unchanged = await api(p.url('subscriptions'), t.key, 'GET', `/v1/subscriptions/${sub.body.id}`);
  assert.deepEqual(unchanged.body.filters, [{ sql: 'DATA.amount > 100' }]);
});
