/**
 * The ingest API end to end: an HTTP client posts CloudEvents in each mode, a kafkajs consumer of the source
 * topic sees exactly the accepted ones (keyed, tenantid set, structured mode), and every refusal is a problem+json
 * naming the field, with nothing produced. Also the schema registry's versions and compatibility answers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Consumer } from 'kafkajs';
import { decodeKafkaRecord, headersToStrings } from '../../platform/events/kafka-binding.ts';
import type { CloudEventJson } from '../../platform/events/cloudevent.ts';
import { api, createTenant, createTopic, kafkaClient, randomName, sleep, startPlatform, waitFor, type TestPlatform, subscribeFromStart } from '../support/helpers.ts';

const STRUCTURED = 'application/cloudevents+json';
const BATCH = 'application/cloudevents-batch+json';

interface Seen {
  key: string | null;
  partition: number;
  offset: string;
  headers: Record<string, string>;
  /** the record decoded by the platform's Kafka binding, as the route reads it */
  event: CloudEventJson;
}

let p: TestPlatform;
let consumer: Consumer;
const topic = randomName('ingest');
const seen: Seen[] = [];
/** `<source> <id>` of every event a 202 said was produced (not a duplicate). */
const produced = new Set<string>();
let producedCount = 0;
/** ids of events in refused requests: none may reach Kafka. */
const refusedIds = new Set<string>();
let a: Awaited<ReturnType<typeof createTenant>>;
let b: Awaited<ReturnType<typeof createTenant>>;

const newId = () => `evt-${randomBytes(6).toString('hex')}`;
const event = (extra: Record<string, unknown> = {}) => ({
  specversion: '1.0',
  id: newId(),
  source: '/bank/core',
  type: 'payment.sent',
  datacontenttype: 'application/json',
  data: { amount: 5, currency: 'EUR' },
  ...extra,
});

async function post(key: string | undefined, body: string | Blob, headers: Record<string, string>) {
  const res = await fetch(`${p.url('ingest')}/v1/events`, {
    method: 'POST',
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
    body,
  });
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  if (res.status === 202) for (const r of parsed.events) if (!r.duplicate) {
        produced.add(`${r.source} ${r.id}`);
        producedCount++;
      }
  return { status: res.status, body: parsed, headers: res.headers };
}

const postStructured = (key: string, e: unknown) => post(key, JSON.stringify(e), { 'content-type': STRUCTURED });
const postBatch = (key: string, events: unknown[]) => post(key, JSON.stringify(events), { 'content-type': BATCH });

/** A refused request: problem+json with the status, code and field; its events' ids are remembered. */
function assertProblem(res: Awaited<ReturnType<typeof post>>, status: number, code: string, field?: string, ids: string[] = []) {
  for (const id of ids) refusedIds.add(id);
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(res.body.code, code);
  assert.equal(res.body.status, status);
  if (field !== undefined) assert.ok(res.body.errors?.some((e: any) => e.field === field), `expected field ${field} in ${JSON.stringify(res.body)}`);
}

const seenById = (id: string) => seen.filter((s) => s.event.id === id);

before(async () => {
  await createTopic(topic, 4);
  p = await startPlatform(['subscriptions', 'ingest'], {
    PIONEER_INGEST_TOPIC: topic,
    PIONEER_INGEST_MAX_BODY_BYTES: '16384',
    PIONEER_INGEST_MAX_BATCH: '20',
  });
  a = await createTenant(p.url('subscriptions'), p.adminKey);
  b = await createTenant(p.url('subscriptions'), p.adminKey);
  consumer = kafkaClient().consumer({ groupId: randomName('ingest-test'), sessionTimeout: 6000 });
  await consumer.connect();
  await subscribeFromStart(consumer, topic);
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const headers = headersToStrings(message.headers);
      const decoded = decodeKafkaRecord({ key: message.key, value: message.value, headers, timestamp: message.timestamp });
      if (!decoded.event) throw new Error(`ingest wrote a record that is not a CloudEvent: ${decoded.error ?? headers['content-type']}`);
      seen.push({ key: message.key?.toString() ?? null, partition, offset: message.offset, headers, event: decoded.event });
    },
  });
});

after(async () => {
  await consumer?.disconnect();
  await p?.stop();
});

test('structured mode: one event is produced keyed by partitionkey, as a structured CloudEvent, with the tenant set', async () => {
  const e = event({ partitionkey: 'acct-1', subject: 'acct-1' });
  const res = await postStructured(a.key, e);
  assert.equal(res.status, 202, JSON.stringify(res.body));
  assert.equal(res.body.accepted, 1);
  assert.equal(res.body.duplicates, 0);
  const [r] = res.body.events;
  assert.equal(r.id, e.id);
  assert.equal(r.duplicate, false);
  assert.equal(r.topic, topic);

  const [record] = await waitFor(() => (seenById(e.id).length ? seenById(e.id) : undefined), { message: 'the event on the source topic' });
  assert.equal(record!.key, 'acct-1');
  assert.match(record!.headers['content-type'] ?? '', /^application\/cloudevents\+json/, 'structured mode, as the kafka-connector and KafkaSource forward it');
  assert.equal(record!.event.tenantid, a.id);
  assert.equal(record!.event.specversion, '1.0');
  assert.equal(record!.event.type, 'payment.sent');
  assert.equal(record!.event.subject, 'acct-1');
  assert.equal(record!.event.datacontenttype, 'application/json');
  assert.deepEqual(record!.event.data, { amount: 5, currency: 'EUR' });
  // the answer told where it went
  assert.equal(record!.partition, r.partition);
  assert.equal(record!.offset, r.offset);
});

test('binary mode: ce-* headers (percent-decoded) and the body as data', async () => {
  const id = newId();
  const res = await post(a.key, JSON.stringify({ amount: 7, currency: 'USD' }), {
    'ce-specversion': '1.0',
    'ce-id': id,
    'ce-source': '/bank/core',
    'ce-type': 'payment.sent',
    'ce-partitionkey': 'acct-2',
    'ce-subject': 'Bob%20%E2%86%92%20Alice',
    'content-type': 'application/json; charset=utf-8',
  });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  assert.deepEqual(res.body.events.map((r: any) => r.id), [id]);
  const [record] = await waitFor(() => (seenById(id).length ? seenById(id) : undefined));
  assert.equal(record!.key, 'acct-2');
  assert.equal(record!.event.tenantid, a.id);
  assert.equal(record!.event.subject, 'Bob → Alice');
  assert.equal(record!.event.datacontenttype, 'application/json; charset=utf-8');
  assert.deepEqual(record!.event.data, { amount: 7, currency: 'USD' });

  // bytes that are not text go through untouched
  const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x80]);
  const binId = newId();
  const raw = await post(a.key, new Blob([bytes]), {
    'ce-specversion': '1.0', 'ce-id': binId, 'ce-source': '/bank/core', 'ce-type': 'statement.pdf', 'content-type': 'application/octet-stream',
  });
  assert.equal(raw.status, 202, JSON.stringify(raw.body));
  const [bin] = await waitFor(() => (seenById(binId).length ? seenById(binId) : undefined));
  assert.deepEqual(Buffer.from(bin!.event.data_base64 ?? '', 'base64'), bytes);
  assert.equal(bin!.event.datacontenttype, 'application/octet-stream');
  assert.equal(bin!.key, null);
});

test('batch mode: every event is produced, in order per partitionkey, and the answer lists each id', async () => {
  const events = [
    event({ partitionkey: 'acct-3', data: { n: 1 } }),
    event({ partitionkey: 'acct-4', data: { n: 2 } }),
    event({ partitionkey: 'acct-3', data: { n: 3 } }),
    event({ partitionkey: 'acct-3', data: { n: 4 }, tenantid: a.id }), // naming its own tenant is fine
  ];
  const res = await postBatch(a.key, events);
  assert.equal(res.status, 202, JSON.stringify(res.body));
  assert.equal(res.body.accepted, 4);
  assert.deepEqual(res.body.events.map((r: any) => r.id), events.map((e) => e.id));
  const records = await waitFor(() => {
    const r = events.map((e) => seenById(e.id)[0]);
    return r.every(Boolean) ? (r as Seen[]) : undefined;
  });
  assert.deepEqual(records.map((r) => r.key), ['acct-3', 'acct-4', 'acct-3', 'acct-3']);
  assert.ok(records.every((r) => r.event.tenantid === a.id));
  // same key: same partition, offsets in the batch's order
  const acct3 = [records[0]!, records[2]!, records[3]!];
  assert.equal(new Set(acct3.map((r) => r.partition)).size, 1);
  assert.deepEqual(acct3.map((r) => (r.event.data as { n: number }).n), [1, 3, 4]);
  assert.ok(BigInt(acct3[0]!.offset) < BigInt(acct3[1]!.offset) && BigInt(acct3[1]!.offset) < BigInt(acct3[2]!.offset));
  res.body.events.forEach((r: any, i: number) => {
    assert.equal(r.partition, records[i]!.partition);
    assert.equal(r.offset, records[i]!.offset);
  });
});

test('idempotent ingest: the same source+id is accepted once, answered as a duplicate, and GET tells where it went', async () => {
  const e = event({ partitionkey: 'acct-5' });
  const first = await postStructured(a.key, e);
  assert.equal(first.status, 202);
  const again = await postStructured(a.key, { ...e, data: { amount: 999 } });
  assert.equal(again.status, 202);
  assert.equal(again.body.accepted, 0);
  assert.equal(again.body.duplicates, 1);
  assert.equal(again.body.events[0].duplicate, true);
  assert.equal(again.body.events[0].offset, first.body.events[0].offset);
  // inside a batch: the repeat, and the same id from another source (a different event)
  const other = { ...e, source: '/bank/other' };
  const batch = await postBatch(a.key, [e, other, other]);
  assert.equal(batch.status, 202);
  assert.deepEqual(batch.body.events.map((r: any) => r.duplicate), [true, false, true]);
  // the same source+id from another tenant is that tenant's own event
  const fromB = await postStructured(b.key, e);
  assert.equal(fromB.status, 202);
  assert.equal(fromB.body.events[0].duplicate, false);

  await waitFor(() => seenById(e.id).length >= 3);
  await sleep(300);
  const records = seenById(e.id);
  assert.equal(records.length, 3, 'one record per (tenant, source, id)');
  assert.deepEqual(records.map((r) => `${r.event.tenantid} ${r.event.source}`).sort(), [`${a.id} /bank/core`, `${a.id} /bank/other`, `${b.id} /bank/core`].sort());
  assert.deepEqual(records.find((r) => r.event.tenantid === a.id && r.event.source === '/bank/core')!.event.data, { amount: 5, currency: 'EUR' });

  const got = await api(p.url('ingest'), a.consumerKey, 'GET', `/v1/events/${e.id}`);
  assert.equal(got.status, 200, JSON.stringify(got.body));
  assert.equal(got.body.id, e.id);
  assert.deepEqual(got.body.data.map((d: any) => d.source), ['/bank/core', '/bank/other']);
  const core = got.body.data[0];
  assert.equal(core.status, 'accepted');
  assert.equal(core.topic, topic);
  assert.equal(core.partition, first.body.events[0].partition);
  assert.equal(core.offset, first.body.events[0].offset);
  assert.equal(core.type, 'payment.sent');
  assert.ok(Date.parse(got.body.remembered_until) > Date.now() + 23 * 3600_000);
  const one = await api(p.url('ingest'), a.key, 'GET', `/v1/events/${e.id}?source=${encodeURIComponent('/bank/other')}`);
  assert.deepEqual(one.body.data.map((d: any) => d.source), ['/bank/other']);

  // another tenant's id, and an id never ingested: 404, never data
  const c = await createTenant(p.url('subscriptions'), p.adminKey);
  const cross = await api(p.url('ingest'), c.key, 'GET', `/v1/events/${e.id}`);
  assert.equal(cross.status, 404);
  assert.equal(cross.body.code, 'not_found');
  assert.equal((await api(p.url('ingest'), a.key, 'GET', `/v1/events/${newId()}`)).status, 404);
});

test('schema registry: versions, compatible and incompatible changes, invalid schemas, isolation', async () => {
  const subs = p.url('subscriptions');
  const type = 'order.placed';
  const v1 = { type: 'object', required: ['amount'], properties: { amount: { type: 'integer', minimum: 0 }, currency: { enum: ['EUR', 'USD'] } } };
  const put1 = await api(subs, a.key, 'PUT', `/v1/schemas/${type}`, v1);
  assert.equal(put1.status, 201, JSON.stringify(put1.body));
  assert.equal(put1.body.version, 1);
  assert.deepEqual(put1.body.schema, v1);
  const same = await api(subs, a.key, 'PUT', `/v1/schemas/${type}`, v1);
  assert.equal(same.status, 200);
  assert.equal(same.body.version, 1);

  const v2 = { ...v1, properties: { ...v1.properties, note: { type: 'string' }, currency: { enum: ['EUR', 'USD', 'GBP'] } } };
  const put2 = await api(subs, a.key, 'PUT', `/v1/schemas/${type}`, v2);
  assert.equal(put2.status, 201, JSON.stringify(put2.body));
  assert.equal(put2.body.version, 2);

  const newRequired = await api(subs, a.key, 'PUT', `/v1/schemas/${type}`, { ...v2, required: ['amount', 'note'] });
  assertProblem(newRequired, 409, 'incompatible_schema', 'properties.note');
  assert.match(newRequired.body.title, /newly required/);
  assert.equal(newRequired.body.latest_version, 2);
  const changedType = await api(subs, a.key, 'PUT', `/v1/schemas/${type}`, { ...v2, properties: { ...v2.properties, amount: { type: 'string' } } });
  assertProblem(changedType, 409, 'incompatible_schema', 'properties.amount.type');
  const removedValue = await api(subs, a.key, 'PUT', `/v1/schemas/${type}`, { ...v2, properties: { ...v2.properties, currency: { enum: ['EUR'] } } });
  assertProblem(removedValue, 409, 'incompatible_schema', 'properties.currency.enum');
  const invalid = await api(subs, a.key, 'PUT', `/v1/schemas/${type}`, { type: 'object', properties: { amount: { type: 'integr' } } });
  assertProblem(invalid, 400, 'invalid_schema', 'properties.amount.type');
  const notJson = await api(subs, a.key, 'PUT', `/v1/schemas/${type}`, '{"type":', { 'content-type': 'application/schema+json' });
  assertProblem(notJson, 400, 'malformed_json', 'body');

  const list = await api(subs, a.consumerKey, 'GET', `/v1/schemas/${type}`);
  assert.equal(list.status, 200);
  assert.equal(list.body.latest_version, 2);
  assert.deepEqual(list.body.versions.map((v: any) => v.version), [1, 2]);
  assert.deepEqual(list.body.schema, v2);
  const first = await api(subs, a.key, 'GET', `/v1/schemas/${type}?version=1`);
  assert.deepEqual(first.body.schema, v1);
  assertProblem(await api(subs, a.key, 'GET', `/v1/schemas/${type}?version=3`), 404, 'not_found');
  assertProblem(await api(subs, a.key, 'GET', `/v1/schemas/${type}?version=latest`), 400, 'invalid_request', 'query:version');
  assertProblem(await api(subs, a.consumerKey, 'PUT', `/v1/schemas/${type}`, v2), 403, 'forbidden');
  // schemas are per tenant: B sees none of A's and may register its own v1
  assertProblem(await api(subs, b.key, 'GET', `/v1/schemas/${type}`), 404, 'not_found');
  const bPut = await api(subs, b.key, 'PUT', `/v1/schemas/${type}`, { type: 'object' });
  assert.equal(bPut.status, 201);
  assert.equal(bPut.body.version, 1);
});

test('data is validated against the latest schema of its type: refusals name the JSON path, nothing is produced', async () => {
  const type = 'order.placed'; // registered for tenant A by the test above (v2)
  const bad = event({ type, data: { amount: -1, currency: 'EUR' } });
  const r1 = await postStructured(a.key, bad);
  assertProblem(r1, 400, 'schema_violation', 'data.amount', [bad.id]);
  assert.match(r1.body.title, /data\.amount: must be >= 0 \(schema of order\.placed v2\)/);

  const missing = event({ type, data: { currency: 'EUR' } });
  assertProblem(await postStructured(a.key, missing), 400, 'schema_violation', 'data.amount', [missing.id]);

  // all or nothing: one bad event refuses the whole batch
  const good = event({ type, data: { amount: 1, currency: 'GBP', note: 'v2 field' } });
  const badInBatch = event({ type, data: { amount: 2, currency: 'JPY' } });
  const batch = await postBatch(a.key, [good, badInBatch]);
  assertProblem(batch, 400, 'schema_violation', '[1].data.currency', [good.id, badInBatch.id]);

  const binId = newId();
  const binary = await post(a.key, JSON.stringify({ amount: 'ten' }), {
    'ce-specversion': '1.0', 'ce-id': binId, 'ce-source': '/shop', 'ce-type': type, 'content-type': 'application/json',
  });
  assertProblem(binary, 400, 'schema_violation', 'data.amount', [binId]);
  const b64 = event({ type, data: undefined, data_base64: Buffer.from('{}').toString('base64') });
  assertProblem(await postStructured(a.key, b64), 400, 'schema_violation', 'data_base64', [b64.id]);

  // valid data passes; tenant B's schema of the same type is its own (any object), so B's event passes too
  const ok = event({ type, data: { amount: 3, currency: 'GBP' } });
  assert.equal((await postStructured(a.key, ok)).status, 202);
  const bOk = event({ type, data: { anything: true } });
  assert.equal((await postStructured(b.key, bOk)).status, 202);
  // a new compatible version applies at once
  const v3 = { type: 'object', required: ['amount'], properties: { amount: { type: 'number', minimum: 0 }, currency: { enum: ['EUR', 'USD', 'GBP', 'JPY'] }, note: { type: 'string' } } };
  assert.equal((await api(p.url('subscriptions'), a.key, 'PUT', `/v1/schemas/${type}`, v3)).status, 201);
  const nowOk = event({ type, data: { amount: 2.5, currency: 'JPY' } });
  assert.equal((await postStructured(a.key, nowOk)).status, 202);
});

test('bad input: each refusal is a clear problem+json naming the field', async () => {
  const id = newId();
  assertProblem(await post(a.key, '{"specversion":"1.0",', { 'content-type': STRUCTURED }), 400, 'malformed_json', 'body');
  const noType = event({ id });
  delete (noType as any).type;
  assertProblem(await postStructured(a.key, noType), 400, 'invalid_event', 'type', [id]);
  const badSpec = event({ specversion: '0.3' });
  assertProblem(await postStructured(a.key, badSpec), 400, 'invalid_event', 'specversion', [badSpec.id]);
  const badTime = event({ time: 'yesterday' });
  assertProblem(await postStructured(a.key, badTime), 400, 'invalid_event', 'time', [badTime.id]);
  const notObject = await postStructured(a.key, [event()]);
  assertProblem(notObject, 400, 'invalid_event', 'body');
  // valid JSON nested far deeper than any event: refused, not a stack overflow (a 500)
  const deepEvent = event({ data: 'NESTED' });
  const deep = JSON.stringify(deepEvent).replace('"NESTED"', `${'['.repeat(1_000)}${']'.repeat(1_000)}`);
  assertProblem(await post(a.key, deep, { 'content-type': STRUCTURED }), 400, 'invalid_request', 'body', [deepEvent.id]);

  // binary mode names the header
  const binId = newId();
  assertProblem(await post(a.key, '{}', { 'ce-specversion': '1.0', 'ce-id': binId, 'ce-type': 't', 'content-type': 'application/json' }), 400, 'invalid_event', 'header:ce-source', [binId]);
  const badData = newId();
  assertProblem(await post(a.key, '{not json', { 'ce-specversion': '1.0', 'ce-id': badData, 'ce-source': '/s', 'ce-type': 't', 'content-type': 'application/json' }), 400, 'invalid_event', 'body', [badData]);

  // content types that are no mode
  const plain = event();
  assertProblem(await post(a.key, JSON.stringify(plain), { 'content-type': 'application/json' }), 415, 'unsupported_media_type', 'header:content-type', [plain.id]);
  assertProblem(await post(a.key, 'hello', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type', 'header:content-type');
  assertProblem(await post(a.key, '<e/>', { 'content-type': 'application/cloudevents+xml' }), 415, 'unsupported_media_type', 'header:content-type');

  // batches: not an array, empty, an invalid member named by index, too many events
  assertProblem(await post(a.key, JSON.stringify(event()), { 'content-type': BATCH }), 400, 'invalid_batch', 'body');
  assertProblem(await postBatch(a.key, []), 400, 'invalid_batch', 'body');
  const fine = event();
  const noSource = event();
  delete (noSource as any).source;
  assertProblem(await postBatch(a.key, [fine, noSource]), 400, 'invalid_event', '[1].source', [fine.id, noSource.id]);
  const many = Array.from({ length: 21 }, () => event({ data: undefined }));
  assertProblem(await postBatch(a.key, many), 413, 'batch_too_large', 'body', many.map((e) => e.id));

  // oversized body
  const big = event({ data: { blob: 'x'.repeat(20000) } });
  assertProblem(await postStructured(a.key, big), 413, 'payload_too_large', 'body', [big.id]);

  // another tenant's event, alone or in a batch
  const foreign = event({ tenantid: b.id });
  assertProblem(await postStructured(a.key, foreign), 403, 'tenant_mismatch', 'tenantid', [foreign.id]);
  const mixed = [event(), event({ tenantid: b.id })];
  assertProblem(await postBatch(a.key, mixed), 403, 'tenant_mismatch', '[1].tenantid', mixed.map((e) => e.id));

  // keys that may not ingest
  const byConsumer = event();
  assertProblem(await postStructured(a.consumerKey, byConsumer), 403, 'forbidden', undefined, [byConsumer.id]);
  const byAdmin = event();
  assertProblem(await postStructured(p.adminKey, byAdmin), 403, 'forbidden', undefined, [byAdmin.id]);
  const anonymous = event();
  assertProblem(await post(undefined, JSON.stringify(anonymous), { 'content-type': STRUCTURED }), 401, 'unauthorized', 'header:authorization', [anonymous.id]);
});

test('a flood beyond the tenant rate limit is answered 429 with Retry-After, and the excess is not produced', async () => {
  const floodTopic = randomName('ingest-flood');
  await createTopic(floodTopic, 2);
  const limited = await startPlatform(['ingest'], {
    PIONEER_INGEST_TOPIC: floodTopic,
    PIONEER_INGEST_RATE_PER_SECOND: '2',
    PIONEER_INGEST_RATE_BURST: '5',
    PIONEER_INGEST_MAX_BATCH: '5',
  });
  try {
    const t = await createTenant(p.url('subscriptions'), p.adminKey);
    const statuses: number[] = [];
    let limitedRes: any;
    for (let i = 0; i < 12; i++) {
      const res = await fetch(`${limited.url('ingest')}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.key}`, 'content-type': STRUCTURED },
        body: JSON.stringify(event()),
      });
      statuses.push(res.status);
      if (res.status === 429) limitedRes = { headers: res.headers, body: await res.json() };
      else await res.text();
    }
    const accepted = statuses.filter((s) => s === 202).length;
    // 5 from the burst, perhaps one more refilled while the requests ran (2/s)
    assert.ok(accepted >= 5 && accepted <= 7, statuses.join(','));
    assert.ok(statuses.slice(accepted).every((s) => s === 429), statuses.join(','));
    assert.equal(limitedRes.body.code, 'rate_limited');
    assert.match(limitedRes.headers.get('content-type'), /problem\+json/);
    assert.ok(Number(limitedRes.headers.get('retry-after')) >= 1);
    // another tenant is not limited by this one's flood
    const other = await fetch(`${limited.url('ingest')}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${b.key}`, 'content-type': STRUCTURED },
      body: JSON.stringify(event()),
    });
    assert.equal(other.status, 202);

    const admin = kafkaClient().admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(floodTopic);
      assert.equal(offsets.reduce((n, o) => n + Number(o.high), 0), accepted + 1);
    } finally {
      await admin.disconnect();
    }
  } finally {
    await limited.stop();
  }
});

test('metrics count accepted, duplicate and refused events by reason, and produce latency', async () => {
  const text = await (await fetch(`${p.url('ingest')}/metrics`)).text();
  // a series by its name and labels; others (the host's `function` label) may be there too
  const value = (series: string) => {
    const [name, wanted = ''] = series.replace(/}$/, '').split('{');
    for (const line of text.split('\n')) {
      const m = /^([^{ ]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
      const labels = (m?.[2] ?? '').split(',');
      if (m && m[1] === name && (wanted === '' || wanted.split(',').every((l) => labels.includes(l)))) return Number(m[3]);
    }
    return NaN;
  };
  assert.equal(value('pioneer_ingest_events_total{result="accepted"}'), producedCount);
  assert.ok(value('pioneer_ingest_events_total{result="duplicate"}') >= 3);
  assert.equal(value('pioneer_ingest_refused_events_total{reason="schema_violation"}'), 6); // 5 requests, one a batch of 2
  assert.equal(value('pioneer_ingest_refused_events_total{reason="tenant_mismatch"}'), 3);
  assert.equal(value('pioneer_ingest_refused_events_total{reason="batch_too_large"}'), 21);
  assert.ok(value('pioneer_ingest_produce_seconds_count') >= 1);
});

test('exactly the accepted events reached the source topic: none of the refused ones, no duplicates', async () => {
  await waitFor(() => seen.length >= producedCount, { message: `${producedCount} records on the source topic` });
  await sleep(500);
  const keys = seen.map((s) => `${s.event.source} ${s.event.id}`);
  assert.equal(seen.length, producedCount);
  assert.equal(new Set(seen.map((s) => `${s.event.tenantid} ${s.event.source} ${s.event.id}`)).size, seen.length);
  assert.deepEqual(new Set(keys), produced);
  assert.ok(refusedIds.size > 20);
  for (const id of refusedIds) assert.equal(seenById(id).length, 0, `refused event ${id} was produced`);
  const admin = kafkaClient().admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    assert.equal(offsets.reduce((n, o) => n + Number(o.high), 0), seen.length);
  } finally {
    await admin.disconnect();
  }
});
