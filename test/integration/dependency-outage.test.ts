/**
 * A dependency outage as a client sees it: with Redis or Kafka down, every function's API answers
 * 503 problem+json naming the dependency (`redis_unavailable`, `kafka_unavailable`) with `Retry-After`, within the
 * documented time (docs/disaster-recovery.md), and once the dependency is back the same calls succeed and nothing
 * was lost or written twice: an ingest call retried with the same event id produces the event once.
 * Redis and the Kafka broker are the test's own, so that stopping them touches no other test.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REDIS_COMMAND_TIMEOUT_MS } from '../../platform/redis/client.ts';
import { api, createTenant, kafkaClient, ownService, randomName, sleep, startPlatform, waitFor, type TestPlatform } from '../support/helpers.ts';

const PRODUCE_TIMEOUT_MS = 2000;
/** what an answer may take beyond the documented bound: a loaded test machine, the HTTP round trip */
const MARGIN_MS = 1000;

const newId = () => `evt-${randomBytes(6).toString('hex')}`;
const event = (id: string) => ({ specversion: '1.0', id, source: '/bank/core', type: 'payment.sent', datacontenttype: 'application/json', data: { amount: 5 } });

/** Calls the API and measures how long the answer took. */
async function timed(base: string, key: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const started = Date.now();
  const res = await api(base, key, method, path, body, headers);
  return { ...res, ms: Date.now() - started };
}

function assertUnavailable(res: { status: number; headers: Headers; body: any; ms: number }, code: string, boundMs: number, what: string): void {
  assert.equal(res.status, 503, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/, `${what}: problem+json`);
  assert.equal(res.body.code, code, `${what}: code`);
  assert.equal(res.body.status, 503, `${what}: status in the body`);
  assert.ok(Number(res.headers.get('retry-after')) >= 1, `${what}: Retry-After (${res.headers.get('retry-after')})`);
  assert.ok(res.ms <= boundMs + MARGIN_MS, `${what}: answered after ${res.ms} ms (bound ${boundMs} ms)`);
}

/** Opens an SSE stream: its status, headers and problem body, the stream itself left at once when it opened. */
async function timedSse(base: string, key: string, path: string) {
  const started = Date.now();
  const res = await fetch(base + path, { headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' } });
  const body = res.status === 200 ? (await res.body?.cancel(), null) : await res.json();
  return { status: res.status, headers: res.headers, body, ms: Date.now() - started };
}

/** Every record of `topic` on `brokers`, counted by CloudEvent id (ingest writes structured CloudEvents). */
async function recordsById(brokers: string, topic: string, expected: string[]): Promise<Map<string, number>> {
  const consumer = kafkaClient(brokers).consumer({ groupId: randomName('outage-check') });
  const counts = new Map<string, number>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const id = JSON.parse(message.value!.toString()).id as string;
        counts.set(id, (counts.get(id) ?? 0) + 1);
      },
    });
    await waitFor(() => expected.every((id) => counts.has(id)), { timeout: 30000, message: `${expected.join(', ')} in ${topic}` });
    await sleep(1000); // a duplicate would have arrived by now
  } finally {
    await consumer.disconnect();
  }
  return counts;
}

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
});

test('Redis down: every function answers 503 redis_unavailable with Retry-After within the command timeout; back up, nothing lost', { timeout: 180000 }, async (t) => {
  const redisSvc = ownService('redis');
  const redisUrl = redisSvc.start();
  cleanups.push(() => redisSvc.stop());
  const topic = randomName('outage-redis');
  const p: TestPlatform = await startPlatform(['subscriptions', 'gateway', 'ingest', 'deliver', 'export'], {
    PIONEER_REDIS_URL: redisUrl,
    PIONEER_INGEST_TOPIC: topic,
    PIONEER_SOURCE_TOPICS: topic,
    PIONEER_INGEST_PRODUCE_TIMEOUT_MS: String(PRODUCE_TIMEOUT_MS),
    PIONEER_EXPORT_DIR: join(redisSvc.dir, 'exports'),
  });
  cleanups.push(() => p.stop());
  const tenant = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await api(p.url('subscriptions'), tenant.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] });
  assert.equal(sub.status, 201);
  const exp = await api(p.url('export'), tenant.key, 'POST', '/v1/exports', { subscription_id: sub.body.id });
  assert.equal(exp.status, 202, JSON.stringify(exp.body));
  const before = await api(p.url('ingest'), tenant.key, 'POST', '/v1/events', event(newId()), { 'content-type': 'application/cloudevents+json' });
  assert.equal(before.status, 202);

  const pending = newId(); // ingested while Redis is down, then again once it is back
  const calls: [name: string, () => Promise<Awaited<ReturnType<typeof timed>> | Awaited<ReturnType<typeof timedSse>>>][] = [
    ['subscriptions: GET /v1/subscriptions', () => timed(p.url('subscriptions'), tenant.key, 'GET', '/v1/subscriptions')],
    ['subscriptions: POST /v1/subscriptions', () => timed(p.url('subscriptions'), tenant.key, 'POST', '/v1/subscriptions', { types: ['x'] })],
    ['gateway: GET events (JSON page)', () => timed(p.url('gateway'), tenant.consumerKey, 'GET', `/v1/subscriptions/${sub.body.id}/events`)],
    ['gateway: GET events (SSE)', () => timedSse(p.url('gateway'), tenant.consumerKey, `/v1/subscriptions/${sub.body.id}/events`)],
    ['ingest: POST /v1/events', () => timed(p.url('ingest'), tenant.key, 'POST', '/v1/events', event(pending), { 'content-type': 'application/cloudevents+json' })],
    ['ingest: GET /v1/events/{id}', () => timed(p.url('ingest'), tenant.key, 'GET', `/v1/events/${pending}`)],
    ['deliver: GET deliveries', () => timed(p.url('deliver'), tenant.key, 'GET', `/v1/subscriptions/${sub.body.id}/deliveries`)],
    ['export: GET /v1/exports/{id}', () => timed(p.url('export'), tenant.key, 'GET', `/v1/exports/${exp.body.id}`)],
  ];

  await sleep(1200); // what was written is on disk (AOF, fsync every second)
  redisSvc.stop();
  // at once (the clients are reconnecting), and again a few seconds into the outage (reconnection back-off at its longest)
  for (const round of ['at once', 'after 5 s']) {
    if (round !== 'at once') await sleep(5000);
    for (const [name, call] of calls) {
      const res = await call();
      t.diagnostic(`Redis down, ${round}: ${name} -> ${res.status} ${res.body?.code} in ${res.ms} ms`);
      assertUnavailable(res, 'redis_unavailable', REDIS_COMMAND_TIMEOUT_MS, `${name} (${round})`);
    }
  }

  redisSvc.start();
  await waitFor(async () => (await api(p.url('subscriptions'), tenant.key, 'GET', '/v1/subscriptions')).status === 200, { message: 'subscriptions answer again' });
  for (const [name, call] of calls) {
    if (name.startsWith('subscriptions: POST')) continue; // not a read: it would create a subscription
    const res = await waitFor(async () => {
      const r = await call();
      return r.status < 300 ? r : null;
    }, { timeout: 20000, message: `${name} to succeed again` });
    assert.ok(res.status === 200 || res.status === 202, `${name}: ${res.status}`);
  }
  // the retried ingest went through once; retried again it is a duplicate, not a second record
  const again = await api(p.url('ingest'), tenant.key, 'POST', '/v1/events', event(pending), { 'content-type': 'application/cloudevents+json' });
  assert.equal(again.status, 202);
  assert.equal(again.body.events[0].duplicate, true);
  const list = await api(p.url('subscriptions'), tenant.key, 'GET', '/v1/subscriptions');
  assert.deepEqual(list.body.data.map((s: { id: string }) => s.id), [sub.body.id], 'the subscription survived; the refused creation made none');
  const counts = await recordsById(p.env['PIONEER_KAFKA_BROKERS']!, topic, [before.body.events[0].id, pending]);
  assert.equal(counts.get(pending), 1, 'the event ingested after the outage is in Kafka once');
  assert.equal([...counts.values()].reduce((a, b) => a + b, 0), 2, 'nothing else was written');
});

test('Kafka down or silent: POST /v1/events answers 503 kafka_unavailable within the produce timeout; a retry with the same id writes the event once', { timeout: 240000 }, async (t) => {
  const kafkaSvc = ownService('kafka');
  const brokers = kafkaSvc.start();
  cleanups.push(() => kafkaSvc.stop());
  const pid = () => Number(readFileSync(join(kafkaSvc.dir, 'kafka.pid'), 'utf8').trim());
  const topic = randomName('outage-kafka');
  const p = await startPlatform(['subscriptions', 'ingest'], {
    PIONEER_KAFKA_BROKERS: brokers,
    PIONEER_INGEST_TOPIC: topic,
    PIONEER_INGEST_PRODUCE_TIMEOUT_MS: String(PRODUCE_TIMEOUT_MS),
  });
  cleanups.push(() => p.stop());
  const tenant = await createTenant(p.url('subscriptions'), p.adminKey);
  const ingest = (id: string) => timed(p.url('ingest'), tenant.key, 'POST', '/v1/events', event(id), { 'content-type': 'application/cloudevents+json' });
  const first = newId();
  assert.equal((await ingest(first)).status, 202);

  // a broker that accepts connections but answers nothing (SIGSTOP): the send is in flight at the deadline
  const silent = newId();
  process.kill(pid(), 'SIGSTOP');
  let resumed = false;
  cleanups.push(() => {
    if (!resumed) process.kill(pid(), 'SIGCONT');
  });
  const hung = await ingest(silent);
  t.diagnostic(`Kafka silent: POST /v1/events -> ${hung.status} ${hung.body?.code} in ${hung.ms} ms`);
  assertUnavailable(hung, 'kafka_unavailable', PRODUCE_TIMEOUT_MS, 'POST /v1/events, broker silent');
  assert.ok(hung.ms >= PRODUCE_TIMEOUT_MS - 100, `answered at the deadline, not before (${hung.ms} ms)`);
  // while that send may still reach Kafka, its reservation holds: a retry is told to wait, not let through
  const meanwhile = await ingest(silent);
  assert.equal(meanwhile.status, 409, JSON.stringify(meanwhile.body));
  assert.equal(meanwhile.body.code, 'duplicate_in_flight');
  process.kill(pid(), 'SIGCONT');
  resumed = true;
  const settled = await waitFor(async () => {
    const r = await ingest(silent);
    return r.status === 202 ? r : null;
  }, { timeout: 60000, interval: 500, message: 'the retried event to be accepted' });
  t.diagnostic(`Kafka silent: the retry after it answered again -> 202 duplicate=${settled.body.events[0].duplicate}`);

  // a broker that is gone (kill -9): connections are refused
  kafkaSvc.kill9();
  const gone = newId();
  for (const round of ['at once', 'again']) {
    const res = await ingest(gone);
    t.diagnostic(`Kafka down, ${round}: POST /v1/events -> ${res.status} ${res.body?.code} in ${res.ms} ms`);
    assertUnavailable(res, 'kafka_unavailable', PRODUCE_TIMEOUT_MS, `POST /v1/events, broker down (${round})`);
  }
  kafkaSvc.start();
  const back = await waitFor(async () => {
    const r = await ingest(gone);
    return r.status === 202 ? r : null;
  }, { timeout: 90000, interval: 500, message: 'ingest to accept the event once the broker is back' });
  assert.equal(back.body.events[0].duplicate, false, 'the event was not written during the outage');
  const repeat = await ingest(gone);
  assert.equal(repeat.status, 202);
  assert.equal(repeat.body.events[0].duplicate, true);
  assert.equal(repeat.body.events[0].offset, back.body.events[0].offset);

  const counts = await recordsById(brokers, topic, [first, silent, gone]);
  assert.deepEqual(
    [first, silent, gone].map((id) => counts.get(id) ?? 0),
    [1, 1, 1],
    'each event once in Kafka',
  );
  assert.equal(counts.size, 3, 'no other record');
});
