import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  api, cloudEvent, createTenant, createTopic, ownService, produce, randomName, sleep, startPlatform, structuredMessage, waitFor,
} from '../support/helpers.ts';
import { keys } from '../../platform/redis/keys.ts';

const TOTAL = 3000;

test('kill -9 of redis-server mid-stream, restart: each subscription stream holds every matched event exactly once', { timeout: 240000 }, async () => {
  const redisSvc = ownService('redis');
  const redisUrl = redisSvc.start();
  const topic = randomName('events');
  await createTopic(topic, 4);
  const p = await startPlatform(['subscriptions', 'route'], { PIONEER_REDIS_URL: redisUrl, PIONEER_SOURCE_TOPICS: topic, PIONEER_ROUTE_GROUP: randomName('route') });
  try {
    const t = await createTenant(p.url('subscriptions'), p.adminKey);
    const all = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['tick'] })).body.id as string;
    const even = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['tick'], filters: [{ sql: 'seq % 2 = 0' }] })).body.id as string;
    await sleep(1500); // subscriptions are on disk (AOF fsyncs every second) before the crash

    const msg = (i: number) => structuredMessage(cloudEvent(t.id, 'tick', { i }, { seq: i, partitionkey: `k${i % 20}` }));
    const producing = (async () => {
      for (let i = 0; i < TOTAL; i += 100) {
        await produce(topic, Array.from({ length: 100 }, (_, j) => msg(i + j)));
        await sleep(40);
      }
    })();
    await sleep(800);
    redisSvc.kill9();
    await sleep(1500);
    redisSvc.start();
    await producing;

    const redis = new Redis(redisUrl);
    const read = async (sub: string) =>
      ((await redis.xrange(keys.stream(t.id, sub), '-', '+')) as [string, string[]][]).map(([, f]) => JSON.parse(f[3]!).data.i as number);
    await waitFor(async () => (await read(all)).length >= TOTAL && (await read(even)).length >= TOTAL / 2, { timeout: 120000, message: 'every event routed again' });
    await sleep(1000); // anything extra (a duplicate) would have arrived by now
    const got = await read(all);
    assert.equal(got.length, TOTAL, 'no duplicates');
    assert.deepEqual([...new Set(got)].sort((a, b) => a - b), Array.from({ length: TOTAL }, (_, i) => i), 'none lost');
    const gotEven = await read(even);
    assert.equal(gotEven.length, TOTAL / 2);
    assert.ok(gotEven.every((i) => i % 2 === 0));
    // per ordering key, source order is kept
    for (let k = 0; k < 20; k++) {
      const seqs = got.filter((i) => i % 20 === k);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `key k${k} in order`);
    }
    redis.disconnect();
  } finally {
    await p.stop();
    redisSvc.stop();
  }
});

test('Redis comes back without its last writes (the AOF tail a power cut loses): the route re-derives them from Kafka, once', { timeout: 240000 }, async () => {
  const redisSvc = ownService('redis');
  const redisUrl = redisSvc.start();
  const topic = randomName('events');
  await createTopic(topic, 2);
  const p = await startPlatform(['subscriptions', 'route'], { PIONEER_REDIS_URL: redisUrl, PIONEER_SOURCE_TOPICS: topic, PIONEER_ROUTE_GROUP: randomName('route') });
  try {
    const t = await createTenant(p.url('subscriptions'), p.adminKey);
    const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['tick'] })).body.id as string;
    await sleep(1200);
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 50 });
    const aof = join(redisSvc.dir, 'appendonlydir');
    const incr = () => join(aof, readdirSync(aof).find((f) => f.endsWith('.incr.aof'))!);
    const before = statSync(incr()).size;
    const msg = (i: number) => structuredMessage(cloudEvent(t.id, 'tick', { i }, { partitionkey: `k${i % 10}` }));
    await produce(topic, Array.from({ length: 1000 }, (_, i) => msg(i)));
    const read = async () => ((await redis.xrange(keys.stream(t.id, sub), '-', '+')) as [string, string[]][]).map(([, f]) => JSON.parse(f[3]!).data.i as number);
    await waitFor(async () => (await read()).length === 1000, { message: 'the first 1000 routed' });
    await sleep(1500); // Kafka offsets committed

    redisSvc.kill9();
    const after = statSync(incr()).size;
    truncateSync(incr(), before + Math.floor((after - before) * 0.5)); // the last writes never reached the disk
    redisSvc.start();
    const survived = (await read()).length;
    assert.ok(survived < 1000, `the truncated AOF lost appends (${survived} survived)`);

    await produce(topic, Array.from({ length: 200 }, (_, i) => msg(1000 + i)));
    await waitFor(async () => (await read()).length >= 1200, { timeout: 60000, message: 'the lost appends derived again' });
    await sleep(1000);
    const got = await read();
    assert.equal(got.length, 1200, 'no duplicates');
    assert.deepEqual([...new Set(got)].sort((a, b) => a - b), Array.from({ length: 1200 }, (_, i) => i), 'none lost');
    for (let k = 0; k < 10; k++) {
      const seqs = got.filter((i) => i % 10 === k);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `key k${k} in order`);
    }
    redis.disconnect();
  } finally {
    await p.stop();
    redisSvc.stop();
  }
});
