/**
 * Numbers stay exact end to end, and an event is written as it was received. Events whose `data` holds 20-digit
 * integers and 30-digit decimals, with attributes and nested members in an order JavaScript objects would not
 * keep (integer-like names), are posted to ingest in each mode and produced directly to Kafka by another
 * producer; the test reads them back from the source topic (the record's value), over SSE, from a JSON page, from
 * an export file and from the consumer SDK's files. Every assertion compares text: parsing would round the
 * numbers this test is about.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Consumer as KafkaConsumer } from 'kafkajs';
import {
  api, createTenant, createTopic, kafkaClient, produce, randomName, readSse, routeEnv, startPlatform, waitFor, type TestPlatform,
} from '../support/helpers.ts';
import { Consumer } from '../../consumer-sdk/src/consumer.ts';
import { FileSink } from '../../consumer-sdk/src/file-sink.ts';

const STRUCTURED = 'application/cloudevents+json';
const BATCH = 'application/cloudevents-batch+json';
const TYPE = 'ledger.posted';

/** `data` as a producer wrote it: exact digits, a trailing zero, members in an order a JS object would change. */
const DATA =
  '{"zeta":1,"big":12345678901234567890,"neg":-98765432109876543210,"dec":0.123456789012345678901234567890,' +
  '"large":123456789012345678901234567890.5,"fee":1.10,"lines":[{"sku":"b","qty":10,"amount":99999999999999999999}],' +
  '"by_day":{"20":"x","3":"y","a":{"z":0,"10":-0.0}}}';

let p: TestPlatform;
let kafka: KafkaConsumer;
let tenant: Awaited<ReturnType<typeof createTenant>>;
let subId: string;
const topic = randomName('exact');
/** each source record's value text, by event id (the id is read with a regular expression, not by parsing) */
const recordValues = new Map<string, string>();
/** what each event must read as, wherever it is read: its text as received (tenantid added where it was left out) */
const expected = new Map<string, string>();

const idOf = (json: string) => /"id":"([^"]+)"/.exec(json)?.[1] ?? '';

before(async () => {
  await createTopic(topic, 4);
  p = await startPlatform(['subscriptions', 'route', 'gateway', 'ingest', 'export'], {
    ...routeEnv(topic),
    PIONEER_INGEST_TOPIC: topic,
    PIONEER_EXPORT_DIR: mkdtempSync(join(tmpdir(), 'pioneer-exports-')),
  });
  tenant = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await api(p.url('subscriptions'), tenant.key, 'POST', '/v1/subscriptions', { types: [TYPE] });
  assert.equal(sub.status, 201, JSON.stringify(sub.body));
  subId = sub.body.id;
  // data is validated against the tenant's schema (numbers parsed as doubles for that only)
  const schema = await api(p.url('subscriptions'), tenant.key, 'PUT', `/v1/schemas/${TYPE}`, {
    type: 'object', required: ['big'], properties: { big: { type: 'integer', minimum: 0 }, neg: { type: 'integer' } },
  });
  assert.equal(schema.status, 201, JSON.stringify(schema.body));
  kafka = kafkaClient().consumer({ groupId: randomName('exact-reader') });
  await kafka.connect();
  await kafka.subscribe({ topic, fromBeginning: true });
  await kafka.run({ eachMessage: async ({ message }) => void recordValues.set(idOf(message.value?.toString('utf8') ?? ''), message.value?.toString('utf8') ?? '') });
  await new Promise((r) => setTimeout(r, 300)); // the route's index follows within its poll period
});

after(async () => {
  await kafka?.disconnect();
  await p?.stop();
});

async function post(body: string, headers: Record<string, string>) {
  const res = await fetch(`${p.url('ingest')}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${tenant.key}`, ...headers }, body });
  return { status: res.status, text: await res.text() };
}

/** An event's text: attributes in an unusual order (an integer-like extension name among them), `data` last. */
const eventText = (id: string, extra = '') =>
  `{"type":"${TYPE}","specversion":"1.0","id":"${id}","zext":"z","source":"/ledger","partitionkey":"acct-${id}","123":"n"${extra},"data":${DATA}}`;
const withTenant = (text: string) => `${text.slice(0, -1)},"tenantid":"${tenant.id}"}`;

async function recordOf(id: string): Promise<string> {
  return waitFor(() => recordValues.get(id), { message: `the record of ${id}` });
}

test('structured mode: Kafka gets the text as posted, tenantid added at the end only when absent', async () => {
  const plain = eventText('s-plain');
  assert.equal((await post(plain, { 'content-type': STRUCTURED })).status, 202);
  expected.set('s-plain', withTenant(plain));
  assert.equal(await recordOf('s-plain'), withTenant(plain));

  const named = eventText('s-named', `,"tenantid":"${tenant.id}"`);
  assert.equal((await post(named, { 'content-type': `${STRUCTURED}; charset=utf-8` })).status, 202);
  expected.set('s-named', named);
  assert.equal(await recordOf('s-named'), named, 'an event naming its tenant is written untouched');

  // pretty-printed: written on one line, every token as it was
  const compact = eventText('s-pretty');
  const pretty = `\n${compact.replace(/,"/g, ',\n    "').replace(/":/g, '" : ')}\n`;
  assert.equal((await post(pretty, { 'content-type': STRUCTURED })).status, 202);
  expected.set('s-pretty', withTenant(compact));
  assert.equal(await recordOf('s-pretty'), withTenant(compact));

  // a repeated attribute would read differently to different parsers: refused
  const twice = await post(eventText('s-twice', `,"tenantid":"other","tenantid":"${tenant.id}"`), { 'content-type': STRUCTURED });
  assert.equal(twice.status, 400, twice.text);
  assert.match(twice.text, /"field":"tenantid"/);
  // another tenant's event is still refused
  const foreign = await post(eventText('s-foreign', ',"tenantid":"someone-else"'), { 'content-type': STRUCTURED });
  assert.equal(foreign.status, 403, foreign.text);
});

test('batch mode: each element is written as it was in the array', async () => {
  const first = eventText('b-1');
  const second = eventText('b-2', `,"tenantid":"${tenant.id}"`);
  const body = `[\n  ${first} ,\n${second}\n]`;
  const res = await post(body, { 'content-type': BATCH });
  assert.equal(res.status, 202, res.text);
  expected.set('b-1', withTenant(first));
  expected.set('b-2', second);
  assert.equal(await recordOf('b-1'), withTenant(first));
  assert.equal(await recordOf('b-2'), second);
});

test('binary mode: the body is data, written as its own text after the attributes', async () => {
  const headers = { 'ce-specversion': '1.0', 'ce-id': 'bin-1', 'ce-source': '/ledger', 'ce-type': TYPE, 'ce-partitionkey': 'acct-bin', 'content-type': 'application/json' };
  const res = await post(`${DATA.replace(/,"/g, ',\n "')}\n`, headers);
  assert.equal(res.status, 202, res.text);
  const value = await recordOf('bin-1');
  assert.ok(value.endsWith(`,"datacontenttype":"application/json","data":${DATA},"tenantid":"${tenant.id}"}`), value);
  expected.set('bin-1', value);
});

test('another producer: structured and binary records reach the subscription with their numbers exact', async () => {
  const structured = eventText('k-structured', `,"tenantid":"${tenant.id}"`);
  const keyed = `{"specversion":"1.0","id":"k-keyed","source":"/ledger","type":"${TYPE}","tenantid":"${tenant.id}","data":${DATA}}`;
  await produce(topic, [
    { key: 'acct-k', value: structured, headers: { 'content-type': STRUCTURED } },
    { key: 'acct-k', value: keyed, headers: { 'content-type': STRUCTURED } }, // no partitionkey: the key supplies it, at the end
    {
      key: 'acct-k',
      value: DATA,
      headers: { ce_specversion: '1.0', ce_id: 'k-binary', ce_source: '/ledger', ce_type: TYPE, ce_tenantid: tenant.id, ce_partitionkey: 'acct-k', 'content-type': 'application/json' },
    },
  ]);
  expected.set('k-structured', structured);
  expected.set('k-keyed', `${keyed.slice(0, -1)},"partitionkey":"acct-k"}`);
  expected.set('k-binary', `{"specversion":"1.0","id":"k-binary","source":"/ledger","type":"${TYPE}","tenantid":"${tenant.id}","partitionkey":"acct-k","datacontenttype":"application/json","data":${DATA}}`);
});

/** The expected events, in the order the stream holds them (read over SSE). */
let streamed: { cursor: string; json: string }[] = [];

test('SSE sends every event as the text it was written as', async () => {
  const n = expected.size;
  const { events } = await readSse(`${p.url('gateway')}/v1/subscriptions/${subId}/events`, tenant.consumerKey, { until: (e) => e.length >= n });
  assert.equal(events.length, n);
  streamed = events.map((e) => ({ cursor: e.id!, json: e.data }));
  const byId = new Map(streamed.map((e) => [idOf(e.json), e.json]));
  for (const [id, text] of expected) assert.equal(byId.get(id), text, `SSE data of ${id}`);
  for (const e of streamed) assert.ok(e.json.includes(`"data":${DATA}`));
});

test('a JSON page holds each event as its text', async () => {
  const res = await fetch(`${p.url('gateway')}/v1/subscriptions/${subId}/events?limit=100`, { headers: { authorization: `Bearer ${tenant.consumerKey}` } });
  assert.equal(res.status, 200);
  const body = await res.text();
  const lines = streamed.map((e) => `{"cursor":"${e.cursor}","event":${e.json}}`).join(',');
  assert.ok(body.startsWith(`{"data":[${lines}],`), body);
});

test('an export file holds each event as its text', async () => {
  const created = await api(p.url('export'), tenant.key, 'POST', '/v1/exports', { subscription_id: subId });
  assert.equal(created.status, 202, JSON.stringify(created.body));
  await waitFor(async () => (await api(p.url('export'), tenant.key, 'GET', `/v1/exports/${created.body.id}`)).body.status === 'completed', { message: 'the export' });
  const res = await fetch(`${p.url('export')}/v1/exports/${created.body.id}/file`, { headers: { authorization: `Bearer ${tenant.key}` } });
  assert.equal(res.status, 200);
  const text = gunzipSync(Buffer.from(await res.arrayBuffer())).toString('utf8');
  assert.equal(text, streamed.map((e) => `{"cursor":"${e.cursor}","event":${e.json}}\n`).join(''));
});

test("the consumer SDK's files hold each event as its text", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pioneer-exact-sdk-'));
  const consumer = new Consumer({
    url: p.url('gateway'), apiKey: tenant.consumerKey, subscription: subId, handler: new FileSink({ dir }), checkpoint: join(dir, 'checkpoint.json'),
    heartbeatMs: 1000, maxBatchWaitMs: 50, progressIntervalMs: 0,
  });
  const running = consumer.run();
  const want = streamed.map((e) => `{"cursor":"${e.cursor}","event":${e.json}}\n`).join('');
  const files = () => readdirSync(dir).filter((f) => f.endsWith('.ndjson')).sort();
  try {
    await waitFor(() => files().map((f) => readFileSync(join(dir, f), 'utf8')).join('').length >= want.length, { message: "the consumer's files" });
  } finally {
    await consumer.stop();
    await running;
  }
  assert.equal(files().map((f) => readFileSync(join(dir, f), 'utf8')).join(''), want);
});
