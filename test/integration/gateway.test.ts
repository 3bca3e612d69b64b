import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, cloudEvent, createTenant, createTopic, produce, randomName, readSse, redisClient, startPlatform, structuredMessage, waitFor, type TestPlatform,
} from '../support/helpers.ts';
import { keys } from '../../platform/redis/keys.ts';

let p: TestPlatform;
const topic = randomName('events');

before(async () => {
  await createTopic(topic, 4);
  p = await startPlatform(['subscriptions', 'route', 'gateway'], {
    PIONEER_SOURCE_TOPICS: topic,
    PIONEER_ROUTE_GROUP: randomName('route'),
    PIONEER_SSE_MAX_PER_TENANT: '2',
  });
});
after(async () => p?.stop());

async function tenantWithEvents(n: number) {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['tick'] })).body;
  await new Promise((r) => setTimeout(r, 300));
  await produce(topic, Array.from({ length: n }, (_, i) => structuredMessage(cloudEvent(t.id, 'tick', { i }, { partitionkey: 'one-key' }))));
  const url = `${p.url('gateway')}/v1/subscriptions/${sub.id}/events`;
  await waitFor(async () => (await api(p.url('gateway'), t.key, 'GET', `/v1/subscriptions/${sub.id}/events?limit=1000`)).body.data.length === n, {
    message: `${n} events routed`,
  });
  return { t, sub, url };
}

test('a client that disconnects at random points and resumes with Last-Event-ID sees no gap and no duplicate', async () => {
  const { t, url } = await tenantWithEvents(300);
  const got: number[] = [];
  let last: string | undefined;
  while (got.length < 300) {
    const stopAt = 1 + Math.floor(Math.random() * 60);
    const { events } = await readSse(url, t.consumerKey, { lastEventId: last, until: (e) => e.length >= stopAt || got.length + e.length >= 300 });
    for (const e of events) got.push(JSON.parse(e.data).data.i);
    last = events[events.length - 1]?.id ?? last;
  }
  assert.deepEqual(got, Array.from({ length: 300 }, (_, i) => i));
});

test('JSON pages follow next_cursor; ?since starts at a time; garbage cursors get a 400 naming the field', async () => {
  const { t, sub, url } = await tenantWithEvents(25);
  const seen: number[] = [];
  let cursor: string | undefined;
  for (;;) {
    const r = await api(p.url('gateway'), t.key, 'GET', `/v1/subscriptions/${sub.id}/events?limit=10${cursor ? `&after=${cursor}` : ''}`);
    seen.push(...r.body.data.map((d: any) => d.event.data.i));
    cursor = r.body.next_cursor;
    if (!r.body.has_more) break;
  }
  assert.deepEqual(seen, Array.from({ length: 25 }, (_, i) => i));
  const future = await api(p.url('gateway'), t.key, 'GET', `/v1/subscriptions/${sub.id}/events?since=${new Date(Date.now() + 60000).toISOString()}`);
  assert.deepEqual(future.body.data, []);
  const past = await api(p.url('gateway'), t.key, 'GET', `/v1/subscriptions/${sub.id}/events?since=2000-01-01T00:00:00Z&limit=1000`);
  assert.equal(past.body.data.length, 25);

  for (const [headers, query, field] of [
    [{ 'last-event-id': 'not-a-cursor' }, '', 'header:Last-Event-ID'],
    [{}, '?after=12abc', 'query:after'],
    [{}, '?since=yesterday', 'query:since'],
    [{ accept: 'application/json' }, '?limit=0', 'query:limit'],
  ] as const) {
    const r = await fetch(url + query, { headers: { authorization: `Bearer ${t.key}`, accept: 'text/event-stream', ...headers } });
    assert.equal(r.status, 400, `${field}`);
    const body = (await r.json()) as any;
    assert.equal(body.errors[0].field, field);
  }
});

test('a cursor older than the size cap still resumes: what Redis no longer holds comes from the source topic, with the same cursors', async () => {
  const { t, sub } = await tenantWithEvents(20);
  const cursors: string[] = (await api(p.url('gateway'), t.key, 'GET', `/v1/subscriptions/${sub.id}/events?limit=100`)).body.data.map((d: any) => d.cursor);
  const first = cursors[0]!;
  // the size cap trims the oldest 15 as the next append arrives
  const redis = redisClient();
  assert.equal(await redis.hget(keys.positions(t.id, sub.id), '~trimmed'), null, 'nothing trimmed yet');
  await p.stop();
  p = await startPlatform(['subscriptions', 'route', 'gateway'], { PIONEER_SOURCE_TOPICS: topic, PIONEER_ROUTE_GROUP: randomName('route'), PIONEER_STREAM_MAX_LENGTH: '5', PIONEER_SSE_MAX_PER_TENANT: '2' });
  const url = `${p.url('gateway')}/v1/subscriptions/${sub.id}/events`;
  await produce(topic, [structuredMessage(cloudEvent(t.id, 'tick', { i: 20 }, { partitionkey: 'one-key' }))]);
  await waitFor(async () => (await redis.xlen(keys.stream(t.id, sub.id))) === 5, { message: 'the size cap trims the stream' });
  redis.disconnect();
  const sse = await readSse(url, t.consumerKey, { lastEventId: first, until: (e) => e.length >= 20 });
  assert.equal(sse.status, 200);
  assert.deepEqual(sse.events.map((e) => JSON.parse(e.data).data.i), Array.from({ length: 20 }, (_, i) => i + 1));
  assert.deepEqual(sse.events.slice(0, 19).map((e) => e.id), cursors.slice(1), 'the same cursors as before the trim');
  const page = await api(p.url('gateway'), t.key, 'GET', `/v1/subscriptions/${sub.id}/events?after=${cursors[14]}`);
  assert.equal(page.status, 200);
  assert.deepEqual(page.body.data.map((d: any) => d.event.data.i).slice(0, 5), [15, 16, 17, 18, 19]);
  // the other tests share the platform: give it back with its usual settings
  await p.stop();
  p = await startPlatform(['subscriptions', 'route', 'gateway'], { PIONEER_SOURCE_TOPICS: topic, PIONEER_ROUTE_GROUP: randomName('route'), PIONEER_SSE_MAX_PER_TENANT: '2' });
});

test('concurrent event streams are limited per tenant (429 with Retry-After); closing one frees its place', async () => {
  const { t, url } = await tenantWithEvents(1);
  const controllers = [new AbortController(), new AbortController()];
  const open = controllers.map((ac) => fetch(url, { headers: { authorization: `Bearer ${t.consumerKey}`, accept: 'text/event-stream' }, signal: ac.signal }));
  const responses = await Promise.all(open);
  assert.deepEqual(responses.map((r) => r.status), [200, 200]);
  const third = await fetch(url, { headers: { authorization: `Bearer ${t.consumerKey}`, accept: 'text/event-stream' } });
  assert.equal(third.status, 429);
  assert.ok(Number(third.headers.get('retry-after')) > 0);
  assert.equal(((await third.json()) as any).code, 'too_many_streams');
  controllers[0]!.abort();
  await waitFor(async () => {
    const r = await fetch(url, { headers: { authorization: `Bearer ${t.consumerKey}`, accept: 'text/event-stream' } });
    const ok = r.status === 200;
    await r.body?.cancel();
    return ok;
  }, { message: 'a place to free up' });
  controllers[1]!.abort();
});

test('a deleted subscription ends its open stream with a final event, and a new connection gets 404', async () => {
  const { t, sub, url } = await tenantWithEvents(1);
  const reading = readSse(url, t.consumerKey, { until: (e) => e.some((x) => x.event === 'pioneer.subscription.deleted'), timeout: 20000 });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await api(p.url('subscriptions'), t.key, 'DELETE', `/v1/subscriptions/${sub.id}`)).status, 204);
  const { events } = await reading;
  assert.equal(events[events.length - 1]!.event, 'pioneer.subscription.deleted');
  assert.equal((await readSse(url, t.consumerKey, { until: () => true })).status, 404);
});

test('stats: each of the tenant\'s subscriptions with its buffered count and oldest and newest cursors; other tenants see none of it', async () => {
  const { t, sub } = await tenantWithEvents(7);
  const empty = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { name: 'quiet', types: ['nothing.yet'] })).body;
  const page = await api(p.url('gateway'), t.key, 'GET', `/v1/subscriptions/${sub.id}/events?limit=100`);
  const cursors = page.body.data.map((d: any) => d.cursor);
  const stats = await api(p.url('gateway'), t.consumerKey, 'GET', '/v1/stats');
  assert.equal(stats.status, 200);
  assert.equal(stats.body.tenant_id, t.id);
  assert.equal(stats.body.subscriptions, 2);
  assert.equal(stats.body.buffered, 7);
  const busy = stats.body.data.find((d: any) => d.id === sub.id);
  assert.equal(busy.buffered, 7);
  assert.equal(busy.oldest_cursor, cursors[0]);
  assert.equal(busy.newest_cursor, cursors[6]);
  assert.equal(busy.newest_time, new Date(Number(cursors[6].split('-')[0])).toISOString());
  assert.deepEqual(stats.body.data.find((d: any) => d.id === empty.id), {
    id: empty.id, name: 'quiet', buffered: 0, oldest_cursor: null, newest_cursor: null, oldest_time: null, newest_time: null,
  });
  const other = await createTenant(p.url('subscriptions'), p.adminKey);
  const theirs = await api(p.url('gateway'), other.key, 'GET', '/v1/stats');
  assert.deepEqual(theirs.body, { tenant_id: other.id, subscriptions: 0, buffered: 0, data: [] });
  assert.equal((await api(p.url('gateway'), p.adminKey, 'GET', '/v1/stats')).status, 403);
});
