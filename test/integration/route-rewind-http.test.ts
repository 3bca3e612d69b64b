/**
 * The route behind an HTTP trigger (Knative KafkaSource, OpenFaaS kafka-connector) cannot ask for a rewind: when
 * Redis comes back without its last writes, the route reads the lost interval from Kafka itself and routes it
 * before the record in hand, so the subscription stream holds every event of the partition once, in order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from 'kafkajs';
import { startFunction } from '../../adapters/http/start-function.ts';
import { mountTrigger } from '../../adapters/http/serve-trigger.ts';
import { createApp } from '../../platform/http/app.ts';
import type { EventBatch } from '../../platform/events/inbound.ts';
import { createLogger } from '../../platform/telemetry/logger.ts';
import { createMetrics } from '../../platform/telemetry/metrics.ts';
import { keys, positionField } from '../../platform/redis/keys.ts';
import type { PioneerFunction } from '../../platform/runtime/contract.ts';
import {
  api, cloudEvent, createTenant, createTopic, platformEnv, produce, randomName, redisClient, routeEnv, startPlatform, waitFor, type TestPlatform,
} from '../support/helpers.ts';

const TOTAL = 14;
/** records delivered before the state Redis comes back with */
const KEPT = 5;
/** records delivered, and then lost by Redis, before the one that finds the loss */
const LOST_AFTER = 10;

type Redis = ReturnType<typeof redisClient>;

/** How the trigger posts record `offset` of partition 0 whose value is `value`. */
type Deliver = (route: PioneerFunction, topic: string, offset: number, value: string) => Promise<Response>;

/** A KafkaSource posts a record that is no CloudEvent to it (no content-type header) wrapped, with its position in the id. */
const knative: Deliver = async (route, topic, offset, value) =>
  route.app.request('/', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'ce-specversion': '1.0',
      'ce-id': `partition:0/offset:${offset}`,
      'ce-source': `/apis/v1/namespaces/pioneer/kafkasources/route#${topic}`,
      'ce-type': 'dev.knative.kafka.event',
      'ce-subject': `partition:0#${offset}`,
      'ce-key': 'k',
    },
    body: value,
  });

/** The kafka-connector posts the record's value with its position in headers. */
const connector: Deliver = async (route, topic, offset, value) =>
  route.app.request('/', {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents+json', 'x-topic': topic, 'x-kafka-partition': '0', 'x-kafka-offset': String(offset) },
    body: value,
  });

interface Snapshot {
  lastEntry: string;
  subPosition: string;
  routePosition: string;
}

/** What Redis lost, given the state after the first KEPT records. */
type Loss = (redis: Redis, k: { stream: string; subPositions: string; field: string }, kept: Snapshot) => Promise<void>;

/**
 * Redis restarted without its last writes: the stream without its newest entries, the subscription's position
 * back with them, and the route's position behind (the same server) or gone (kept on another master, lost whole).
 */
const lastWrites = (routePosition: 'behind' | 'gone'): Loss => async (redis, k, kept) => {
  const newer = (await redis.xrange(k.stream, `(${kept.lastEntry}`, '+')) as [string, string[]][];
  assert.ok(newer.length > 0);
  await redis.xdel(k.stream, ...newer.map(([id]) => id));
  await redis.hset(k.subPositions, k.field, kept.subPosition);
  if (routePosition === 'behind') await redis.hset(keys.routePositions(), k.field, kept.routePosition);
  else await redis.hdel(keys.routePositions(), k.field);
};

/** A new, empty Redis for the tenant and the route: the stream, the subscription's and the route's positions gone. */
const everything: Loss = async (redis, k) => {
  await redis.del(k.stream);
  await redis.hdel(k.subPositions, k.field);
  await redis.hdel(keys.routePositions(), k.field);
};

async function scenario(p: TestPlatform, route: PioneerFunction, redis: Redis, deliver: Deliver, lose: Loss): Promise<void> {
  const topic = randomName('events');
  await createTopic(topic, 1);
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['tick'] })).body.id as string;
  // created after `sub`: once the route's index has it, it has `sub` too
  const warm = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['warm'] })).body.id as string;
  const k = { stream: keys.stream(t.id, sub), subPositions: keys.positions(t.id, sub), field: positionField(topic, 0) };
  await waitFor(async () => {
    const res = await route.app.request('/', {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify(cloudEvent(t.id, 'warm', {})),
    });
    assert.equal(res.status, 202);
    return (await redis.xlen(keys.stream(t.id, warm))) > 0;
  }, { message: "the route's index to hold the subscriptions" });

  // the records as the source topic holds them (one partition: offsets 0..TOTAL-1); JSON values without the
  // structured content-type header, which a KafkaSource wraps and the route still reads as CloudEvents
  const values = Array.from({ length: TOTAL }, (_, n) => JSON.stringify(cloudEvent(t.id, 'tick', { n }, { partitionkey: 'k' })));
  await produce(topic, values.map((value): Message => ({ key: 'k', value })));
  const post = async (offset: number) => assert.equal((await deliver(route, topic, offset, values[offset]!)).status, 202, `record ${offset} answered 202`);
  const read = async () => ((await redis.xrange(k.stream, '-', '+')) as [string, string[]][]).map(([, f]) => JSON.parse(f[3]!).data.n as number);

  for (let i = 0; i < KEPT; i++) await post(i);
  const entries = (await redis.xrange(k.stream, '-', '+')) as [string, string[]][];
  assert.deepEqual(entries.map(([, f]) => JSON.parse(f[3]!).data.n), [0, 1, 2, 3, 4]);
  const kept: Snapshot = {
    lastEntry: entries[entries.length - 1]![0],
    subPosition: (await redis.hget(k.subPositions, k.field))!,
    routePosition: (await redis.hget(keys.routePositions(), k.field))!,
  };
  assert.equal(kept.subPosition, String(KEPT - 1));
  assert.equal(kept.routePosition, String(KEPT));
  for (let i = KEPT; i < LOST_AFTER; i++) await post(i);
  assert.equal((await read()).length, LOST_AFTER);

  await lose(redis, k, kept);
  assert.ok((await read()).length < LOST_AFTER, 'Redis lost appends');
  // the trigger committed every record before LOST_AFTER: it delivers the next one only
  for (let i = LOST_AFTER; i < TOTAL; i++) await post(i);
  assert.deepEqual(await read(), Array.from({ length: TOTAL }, (_, n) => n), 'every event of the partition once, in order');
  assert.equal(await redis.hget(keys.routePositions(), k.field), String(TOTAL));
}

test('behind an HTTP trigger, the route re-derives what Redis lost from Kafka itself: every event once, in order', { timeout: 120_000 }, async (t) => {
  const env = platformEnv({ ...routeEnv(randomName('events')) });
  const p = await startPlatform(['subscriptions'], { PIONEER_ADMIN_KEY: env['PIONEER_ADMIN_KEY']! });
  const route = await startFunction('route', env);
  const redis = redisClient();
  try {
    await t.test("KafkaSource: the stream's newest entries and the route's position lost", () => scenario(p, route, redis, knative, lastWrites('gone')));
    await t.test("KafkaSource: the stream's newest entries lost, the route's position behind", () => scenario(p, route, redis, knative, lastWrites('behind')));
    await t.test('kafka-connector: a new, empty Redis for the tenant and the route', () => scenario(p, route, redis, connector, everything));
  } finally {
    redis.disconnect();
    await route.close();
    await p.stop();
  }
});

test('an HTTP trigger marks its batches not seekable, and answers 503 (retry) to a handler that asks for a rewind anyway', async () => {
  const batches: EventBatch[] = [];
  const log = createLogger({ level: 'silent' });
  const fn: PioneerFunction = {
    name: 'probe',
    app: createApp({ name: 'probe', log, metrics: createMetrics(), ready: async () => ({}) }),
    trigger: { topics: [], groupId: 'probe', handle: async (b) => (batches.push(b), { rewindTo: '0' }) },
    close: async () => {},
  };
  mountTrigger(fn);
  const res = await connector(fn, 'legacy.payments', 7, JSON.stringify(cloudEvent('ten_x', 'tick', {})));
  assert.equal(res.status, 503, 'not done: the trigger retries the record');
  assert.equal(batches[0]!.seekable, false);
  assert.deepEqual(batches[0]!.events[0]!.position, { topic: 'legacy.payments', partition: 0, offset: '7' });
});
