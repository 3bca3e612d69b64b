/**
 * The export function against the real Kafka and Redis: replays re-derive exactly a subscription's events of
 * an interval from Kafka (marked, in source order per key), refuse bad intervals naming the field; exports
 * write the buffered stream to a gzipped NDJSON file whose manifest matches it; other tenants get 404.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  api, cloudEvent, createTenant, createTopic, produce, randomName, redisClient, routeEnv, sleep, startPlatform,
  structuredMessage, waitFor, type TestPlatform,
} from '../support/helpers.ts';
import { exportKeys } from '../../platform/redis/keys.ts';
import { newId } from '../../platform/ids.ts';

let p: TestPlatform;
const topic = randomName('events');

before(async () => {
  await createTopic(topic, 4);
  p = await startPlatform(['subscriptions', 'route', 'gateway', 'export'], {
    ...routeEnv(topic),
    PIONEER_EXPORT_DIR: mkdtempSync(join(tmpdir(), 'pioneer-exports-')),
  });
});
after(async () => p?.stop());

async function allEvents(key: string, subId: string): Promise<{ cursor: string; event: any }[]> {
  const out: { cursor: string; event: any }[] = [];
  let after: string | undefined;
  for (;;) {
    const r = await api(p.url('gateway'), key, 'GET', `/v1/subscriptions/${subId}/events?limit=1000${after ? `&after=${after}` : ''}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    out.push(...r.body.data);
    if (!r.body.has_more) return out;
    after = r.body.next_cursor;
  }
}

async function subscribe(key: string, body: unknown): Promise<string> {
  const r = await api(p.url('subscriptions'), key, 'POST', '/v1/subscriptions', body);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
}

/** Events n = from..to-1 of tenant `t` over three keys; even n are payments over 100 (matching), odd n are not. */
function batch(t: string, from: number, to: number, other?: string) {
  const out = [];
  for (let n = from; n < to; n++) {
    const key = `acct-${n % 3}`;
    out.push(structuredMessage(cloudEvent(t, 'payment.sent', { n }, { amount: n % 2 === 0 ? 500 : 5, partitionkey: key })));
    if (n % 4 === 0) out.push(structuredMessage(cloudEvent(t, 'balance.snapshot', { n }, { amount: 500, partitionkey: key })));
    if (other) out.push(structuredMessage(cloudEvent(other, 'payment.sent', { n }, { amount: 500, partitionkey: key })));
  }
  return out;
}

async function waitForReplay(key: string, subId: string, id: string) {
  return waitFor(
    async () => {
      const r = await api(p.url('export'), key, 'GET', `/v1/subscriptions/${subId}/replays/${id}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.status !== 'running' ? r.body : undefined;
    },
    { timeout: 60000, message: `replay ${id} to finish` },
  );
}

test('a replayed event keeps the text it came as: a 20-digit amount and the key order stay, the mark is added at the end', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await subscribe(a.key, { types: ['payment.exact'] });
  await sleep(300);
  const since = new Date(Date.now() - 1000).toISOString();
  const text = `{"specversion":"1.0","type":"payment.exact","source":"/test/exact","id":"${newId('evt')}","tenantid":"${a.id}","partitionkey":"acct-1","data":{"z":1,"amount":12345678901234567890,"fee":0.123456789012345678901234567890}}`;
  await produce(topic, [{ key: 'acct-1', value: text, headers: { 'content-type': 'application/cloudevents+json' } }]);
  await waitFor(async () => (await allEvents(a.key, sub)).length === 1, { message: 'the live event' });
  const started = await api(p.url('export'), a.key, 'POST', `/v1/subscriptions/${sub}/replay`, { since, until: new Date().toISOString() });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  assert.equal((await waitForReplay(a.key, sub, started.body.id)).status, 'completed');
  const page = await (await fetch(`${p.url('gateway')}/v1/subscriptions/${sub}/events`, { headers: { authorization: `Bearer ${a.key}` } })).text();
  assert.ok(page.includes(`"event":${text}}`), `the live entry as written: ${page.slice(0, 400)}`);
  assert.ok(page.includes(`"event":${text.slice(0, -1)},"pioneerreplay":"${started.body.id}"}`), `the replayed entry as written, marked: ${page.slice(0, 800)}`);
});

test('a replay counts the records its filters could not judge within the work budget, and appends the rest', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await subscribe(a.key, { types: ['payment.costly'], filters: [{ sql: "subject LIKE '%a_a_a_a_a_a_a_a_a_a_a_a_b%'" }] });
  await sleep(300);
  const since = new Date(Date.now() - 1000).toISOString();
  await produce(topic, [
    structuredMessage(cloudEvent(a.id, 'payment.costly', { n: 1 }, { subject: 'a'.repeat(300_000), partitionkey: 'k' })), // over the budget
    structuredMessage(cloudEvent(a.id, 'payment.costly', { n: 2 }, { subject: `${'a_'.repeat(12)}b`.replace(/_/g, 'a'), partitionkey: 'k' })), // a match
  ]);
  await waitFor(async () => (await allEvents(a.key, sub)).length === 1, { message: 'the live match' });
  const started = await api(p.url('export'), a.key, 'POST', `/v1/subscriptions/${sub}/replay`, { since, until: new Date().toISOString() });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const done = await waitForReplay(a.key, sub, started.body.id);
  assert.equal(done.status, 'completed', JSON.stringify(done));
  assert.deepEqual([done.counts.matched, done.counts.appended, done.counts.budget_exceeded], [1, 1, 1]);
  assert.deepEqual((await allEvents(a.key, sub)).map((e) => e.event.data.n), [2, 2]);
});

test('a replay re-appends exactly the subscription’s matching events of the interval, in source order per key, marked with the replay id', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const b = await createTenant(p.url('subscriptions'), p.adminKey);
  const subA = await subscribe(a.key, { types: ['payment.sent'], filters: [{ sql: 'amount > 100' }] });
  const subB = await subscribe(b.key, { types: ['payment.sent'] });
  await sleep(300);

  await produce(topic, batch(a.id, 0, 20, b.id));
  await waitFor(async () => (await allEvents(a.key, subA)).length === 10, { message: 'the first live events' });
  await sleep(50);
  const since = new Date().toISOString();
  await sleep(50);
  await produce(topic, batch(a.id, 20, 60, b.id));
  await waitFor(async () => (await allEvents(a.key, subA)).length === 30, { message: 'the interval’s live events' });
  await sleep(50);
  const until = new Date().toISOString();
  await sleep(50);
  await produce(topic, batch(a.id, 60, 70, b.id));
  const live = await waitFor(async () => {
    const e = await allEvents(a.key, subA);
    return e.length === 35 ? e : undefined;
  }, { message: 'all live events' });
  const bBefore = (await allEvents(b.key, subB)).length;

  const started = await api(p.url('export'), a.key, 'POST', `/v1/subscriptions/${subA}/replay`, { since, until });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  assert.match(started.body.id, /^rpl_[0-9a-z]{26}$/);
  assert.equal(started.body.status, 'running');
  assert.equal(started.headers.get('location'), `/v1/subscriptions/${subA}/replays/${started.body.id}`);
  const second = await api(p.url('export'), a.key, 'POST', `/v1/subscriptions/${subA}/replay`, { since, until });
  assert.equal(second.status, 409, 'one replay at a time per subscription');
  assert.equal(second.body.code, 'replay_running');

  const done = await waitForReplay(a.key, subA, started.body.id);
  assert.equal(done.status, 'completed', JSON.stringify(done));
  assert.equal(done.counts.appended, 20);
  assert.equal(done.counts.matched, 20);

  const after = await allEvents(a.key, subA);
  assert.deepEqual(after.slice(0, 35).map((e) => e.cursor), live.map((e) => e.cursor), 'the live entries stay as they were');
  const replayed = after.slice(35);
  assert.equal(replayed.length, 20);
  for (const e of replayed) assert.equal(e.event.pioneerreplay, started.body.id);
  assert.ok(live.every((e) => e.event.pioneerreplay === undefined));
  // exactly the interval's matching events: even n in 20..59, each once
  assert.deepEqual(replayed.map((e) => e.event.data.n).sort((x: number, y: number) => x - y), [...Array(20).keys()].map((i) => 20 + 2 * i));
  // in source order per partition key, and the same events (ids) the route appended live
  for (const key of ['acct-0', 'acct-1', 'acct-2']) {
    const ns = replayed.filter((e) => e.event.partitionkey === key).map((e) => e.event.data.n);
    assert.deepEqual(ns, [...ns].sort((x, y) => x - y), `order of ${key}`);
  }
  const liveIds = new Map(live.map((e) => [e.event.data.n, e.event.id]));
  for (const e of replayed) assert.equal(e.event.id, liveIds.get(e.event.data.n));
  // another tenant's subscription is untouched
  assert.equal((await allEvents(b.key, subB)).length, bBefore);

  // a second replay may start once the first is done
  const again = await api(p.url('export'), a.key, 'POST', `/v1/subscriptions/${subA}/replay`, { since: until });
  assert.equal(again.status, 202, JSON.stringify(again.body));
  const againDone = await waitForReplay(a.key, subA, again.body.id);
  assert.equal(againDone.status, 'completed');
  assert.equal(againDone.counts.appended, 5, 'events since `until`: even n in 60..69');
});

test('replay requests with bad times answer 400 naming the field; another tenant gets 404', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const b = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await subscribe(a.key, { types: ['payment.sent'] });
  const path = `/v1/subscriptions/${sub}/replay`;
  const post = (body: unknown, key = a.key) => api(p.url('export'), key, 'POST', path, body);
  const hour = 3600_000;

  const cases: [unknown, string, RegExp][] = [
    [{}, 'since', /RFC 3339|expected/i],
    [{ since: 'yesterday' }, 'since', /RFC 3339/],
    [{ since: new Date(Date.now() + hour).toISOString() }, 'since', /future/],
    [{ since: new Date(Date.now() - hour).toISOString(), until: new Date(Date.now() - 2 * hour).toISOString() }, 'until', /after since/],
    [{ since: new Date(Date.now() - hour).toISOString(), until: 'soon' }, 'until', /RFC 3339/],
    [{ since: new Date(Date.now() - hour).toISOString(), extra: 1 }, 'body', /"extra"/],
  ];
  for (const [body, field, message] of cases) {
    const r = await post(body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
    assert.equal(r.headers.get('content-type'), 'application/problem+json');
    assert.equal(r.body.errors[0].field, field, JSON.stringify(r.body));
    assert.match(r.body.errors[0].message, message);
  }
  // the test broker keeps 168 h: 200 h ago is beyond what Kafka can serve, and the answer says what is
  const old = await post({ since: new Date(Date.now() - 200 * hour).toISOString() });
  assert.equal(old.status, 400);
  assert.equal(old.body.code, 'since_before_retention');
  assert.equal(old.body.errors[0].field, 'since');
  const earliest = Date.parse(old.body.earliest_available);
  assert.ok(Math.abs(earliest - (Date.now() - 168 * hour)) < 60_000, old.body.earliest_available);
  assert.match(old.body.title, new RegExp(`earliest available time is ${old.body.earliest_available}`));

  const bad = await api(p.url('export'), a.key, 'POST', path, 'not json', { 'content-type': 'application/json' });
  assert.equal(bad.status, 400);
  // isolation: another tenant's key, a consumer key, an unknown replay
  assert.equal((await post({ since: new Date(Date.now() - hour).toISOString() }, b.key)).status, 404);
  assert.equal((await post({ since: new Date(Date.now() - hour).toISOString() }, a.consumerKey)).status, 403);
  const started = await post({ since: new Date(Date.now() - 60_000).toISOString() });
  assert.equal(started.status, 202);
  assert.equal((await api(p.url('export'), b.key, 'GET', `/v1/subscriptions/${sub}/replays/${started.body.id}`)).status, 404);
  const bSub = await subscribe(b.key, { types: ['payment.sent'] });
  assert.equal((await api(p.url('export'), b.key, 'GET', `/v1/subscriptions/${bSub}/replays/${started.body.id}`)).status, 404);
  assert.equal((await api(p.url('export'), a.key, 'GET', `/v1/subscriptions/${sub}/replays/rpl_nothing`)).status, 404);
  const mine = await waitForReplay(a.consumerKey, sub, started.body.id);
  assert.equal(mine.status, 'completed');
});

test('an export downloads as gzipped NDJSON whose sha256, count and cursors match its manifest; other tenants get 404', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const b = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await subscribe(a.key, { types: ['payment.sent'], filters: [{ sql: 'amount > 100' }] });
  await sleep(300);
  await produce(topic, batch(a.id, 0, 400));
  const events = await waitFor(async () => {
    const e = await allEvents(a.key, sub);
    return e.length === 200 ? e : undefined;
  }, { message: 'the events' });

  const created = await api(p.url('export'), a.key, 'POST', '/v1/exports', { subscription_id: sub });
  assert.equal(created.status, 202, JSON.stringify(created.body));
  assert.match(created.body.id, /^exp_[0-9a-z]{26}$/);
  assert.equal(created.headers.get('location'), `/v1/exports/${created.body.id}`);
  const done = await waitFor(async () => {
    const r = await api(p.url('export'), a.consumerKey, 'GET', `/v1/exports/${created.body.id}`);
    return r.body.status !== 'running' ? r.body : undefined;
  }, { message: 'the export' });
  assert.equal(done.status, 'completed', JSON.stringify(done));
  const m = done.manifest;
  assert.equal(m.count, 200);
  assert.equal(m.subscription_id, sub);
  assert.equal(m.end_cursor, events[events.length - 1]!.cursor);
  assert.equal(m.first_cursor, events[0]!.cursor);
  // source positions: the last offset appended per partition, as many partitions as the events came from
  const partitions = Object.keys(m.source_positions);
  assert.ok(partitions.length >= 2 && partitions.every((k) => k.startsWith(`${topic}/`)), JSON.stringify(m.source_positions));

  const res = await fetch(`${p.url('export')}/v1/exports/${created.body.id}/file`, { headers: { authorization: `Bearer ${a.key}` } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/gzip');
  const file = Buffer.from(await res.arrayBuffer());
  assert.equal(file.length, m.bytes);
  assert.equal(createHash('sha256').update(file).digest('hex'), m.sha256);
  const lines = gunzipSync(file).toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, m.count);
  assert.deepEqual(lines.map((l) => l.cursor), events.map((e) => e.cursor));
  assert.deepEqual(lines.map((l) => l.event), events.map((e) => e.event));

  // an interval: from the 50th event's time to the 150th's
  const from = new Date(Number(events[50]!.cursor.split('-')[0])).toISOString();
  const to = new Date(Number(events[150]!.cursor.split('-')[0])).toISOString();
  const part = await api(p.url('export'), a.key, 'POST', '/v1/exports', { subscription_id: sub, from, to });
  assert.equal(part.status, 202);
  const partDone = await waitFor(async () => {
    const r = await api(p.url('export'), a.key, 'GET', `/v1/exports/${part.body.id}`);
    return r.body.status === 'completed' ? r.body : undefined;
  }, { message: 'the interval export' });
  const inInterval = events.filter((e) => {
    const ms = Number(e.cursor.split('-')[0]);
    return ms >= Date.parse(from) && ms < Date.parse(to);
  });
  assert.equal(partDone.manifest.count, inInterval.length);
  assert.equal(partDone.manifest.end_cursor, inInterval[inInterval.length - 1]?.cursor ?? partDone.manifest.start_after);
  assert.equal(partDone.manifest.source_positions, null, 'an export ending before the head cannot name exact source positions');

  // isolation and validation
  assert.equal((await api(p.url('export'), b.key, 'GET', `/v1/exports/${created.body.id}`)).status, 404);
  assert.equal((await api(p.url('export'), b.key, 'GET', `/v1/exports/${created.body.id}/file`)).status, 404);
  const foreign = await api(p.url('export'), b.key, 'POST', '/v1/exports', { subscription_id: sub });
  assert.equal(foreign.status, 404);
  assert.equal(foreign.body.errors[0].field, 'subscription_id');
  assert.equal((await api(p.url('export'), a.consumerKey, 'POST', '/v1/exports', { subscription_id: sub })).status, 403);
  const noSub = await api(p.url('export'), a.key, 'POST', '/v1/exports', {});
  assert.equal(noSub.status, 400);
  assert.equal(noSub.body.errors[0].field, 'subscription_id');
  const badTo = await api(p.url('export'), a.key, 'POST', '/v1/exports', { subscription_id: sub, from, to: from });
  assert.equal(badTo.status, 400);
  assert.equal(badTo.body.errors[0].field, 'to');
  const future = await api(p.url('export'), a.key, 'POST', '/v1/exports', { subscription_id: sub, from: new Date(Date.now() + 3600_000).toISOString() });
  assert.equal(future.body.errors[0].field, 'from');
  assert.equal((await api(p.url('export'), a.key, 'GET', '/v1/exports/exp_nothing')).status, 404);
});

test('the file of an export still being written answers 409 export_not_ready; one whose writer died reads as failed, its file 409 export_failed', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await subscribe(a.key, { types: ['payment.sent'] });
  const redis = redisClient();
  try {
    // an export as another instance leaves it while writing (record and lease), and one whose instance died (no lease)
    const record = (id: string) =>
      JSON.stringify({ id, subscription_id: sub, status: 'running', interval: { from: null, to: null }, created_at: new Date().toISOString(), completed_at: null, manifest: null, error: null });
    const writing = newId('exp');
    const dead = newId('exp');
    await redis.set(exportKeys.export(a.id, writing), record(writing), 'PX', 60000);
    await redis.set(exportKeys.exportLease(a.id, writing), '1', 'PX', 60000);
    await redis.set(exportKeys.export(a.id, dead), record(dead), 'PX', 60000);

    const busy = await api(p.url('export'), a.key, 'GET', `/v1/exports/${writing}/file`);
    assert.equal(busy.status, 409);
    assert.equal(busy.body.code, 'export_not_ready');
    assert.equal((await api(p.url('export'), a.key, 'GET', `/v1/exports/${writing}`)).body.status, 'running');

    const gone = await api(p.url('export'), a.key, 'GET', `/v1/exports/${dead}`);
    assert.equal(gone.body.status, 'failed');
    assert.match(gone.body.error, /interrupted/);
    const file = await api(p.url('export'), a.key, 'GET', `/v1/exports/${dead}/file`);
    assert.equal(file.status, 409);
    assert.equal(file.body.code, 'export_failed');
  } finally {
    redis.disconnect();
  }
});
