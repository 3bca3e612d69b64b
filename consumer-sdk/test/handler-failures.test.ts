/**
 * A customer's own handler against the real platform (route and gateway in this process): failures stop
 * progress and are retried, never skipped; a restart resumes from the checkpoint; an event the route derived
 * again with a new cursor (after a Redis crash) is dropped by (source, id).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  api, cloudEvent, createTenant, createTopic, produce, randomName, redisClient, routeEnv, startPlatform,
  structuredMessage, waitFor, type TestPlatform,
} from '../../test/support/helpers.ts';
import { keys } from '../../platform/redis/keys.ts';
import { Consumer } from '../src/consumer.ts';
import { createCheckpointStore } from '../src/checkpoint.ts';
import type { Delivery } from '../src/handler.ts';

let p: TestPlatform;
const topic = randomName('sdk-handler');

before(async () => {
  await createTopic(topic, 4);
  p = await startPlatform(['subscriptions', 'route', 'gateway'], routeEnv(topic));
});
after(async () => p?.stop());

const fast = { initialMs: 20, maxMs: 300, factor: 2, jitter: 0.5 };

async function setup() {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] });
  assert.equal(sub.status, 201, JSON.stringify(sub.body));
  await new Promise((r) => setTimeout(r, 300)); // the route's subscription index follows within its poll period
  return { tenant: t, subId: sub.body.id as string };
}

function events(tenantId: string, from: number, to: number) {
  return Array.from({ length: to - from }, (_, i) => {
    const n = from + i;
    return cloudEvent(tenantId, 'payment.sent', { n }, { id: `ev-${n}`, partitionkey: `acct-${n % 3}` });
  });
}

test('a failing handler is retried until it succeeds: nothing skipped, nothing twice, in order', async () => {
  const { tenant, subId } = await setup();
  const checkpoint = join(mkdtempSync(join(tmpdir(), 'pioneer-handler-')), 'checkpoint.json');
  const handed: Delivery[] = [];
  let calls = 0;
  let failUntil = 0;
  const attempts: number[] = [];
  const handler = async (batch: Delivery[], ctx: { attempt: number }) => {
    calls++;
    attempts.push(ctx.attempt);
    if (calls <= 5) throw new Error(`downstream refused call ${calls}`);
    if (Date.now() < failUntil) throw new Error('downstream is down');
    handed.push(...batch);
  };
  const c = new Consumer({
    url: p.url('gateway'), apiKey: tenant.consumerKey, subscription: subId, checkpoint, handler,
    heartbeatMs: 1000, backoff: fast, handlerBackoff: fast, progressIntervalMs: 0, maxBatchEvents: 50,
  });
  const run = c.run();
  await produce(topic, events(tenant.id, 0, 300).map(structuredMessage));
  await waitFor(() => handed.length >= 100, { timeout: 30000, message: 'the first 100 events' });
  failUntil = Date.now() + 1500; // an outage of 1.5 s in the middle
  await produce(topic, events(tenant.id, 300, 600).map(structuredMessage));
  await waitFor(() => handed.length >= 600, { timeout: 30000, message: 'all 600 events' });
  await c.stop();
  await run;

  assert.ok(calls > 5 + 12, `the handler was retried (${calls} calls)`);
  assert.ok(attempts.some((a) => a > 1), 'retries are told their attempt number');
  assert.equal(handed.length, 600);
  assert.equal(new Set(handed.map((d) => d.event.id)).size, 600, 'no duplicates');
  for (let i = 1; i < handed.length; i++) assert.ok(cursorLess(handed[i - 1]!.cursor, handed[i]!.cursor), 'cursors strictly increase');
  for (const key of ['acct-0', 'acct-1', 'acct-2']) {
    const ns = handed.filter((d) => d.event.partitionkey === key).map((d) => (d.event.data as { n: number }).n);
    assert.deepEqual(ns, [...ns].sort((a, b) => a - b), `per-key order of ${key}`);
  }
  const cp = await createCheckpointStore(checkpoint).load();
  assert.equal(cp?.cursor, handed[handed.length - 1]!.cursor);
  assert.equal(cp?.events, 600);

  // a restart resumes after the checkpoint; an event derived again with a new cursor is dropped
  const redis = redisClient();
  try {
    const streamKey = keys.stream(tenant.id, subId);
    const [[, fields]] = (await redis.xrange(streamKey, '-', '+', 'COUNT', 1)) as [string, string[]][] as [[string, string[]]];
    const redone = await redis.xrange(streamKey, '-', '+');
    const again: Delivery[] = [];
    const c2 = new Consumer({
      url: p.url('gateway'), apiKey: tenant.consumerKey, subscription: subId, checkpoint, heartbeatMs: 1000, backoff: fast, progressIntervalMs: 0,
      handler: async (batch) => void again.push(...batch),
    });
    const run2 = c2.run();
    await redis.xadd(streamKey, '*', ...fields); // the first event again, with a new cursor (as after a Redis crash)
    await redis.xadd(streamKey, '*', ...(redone[599]![1] as string[]));
    await produce(topic, events(tenant.id, 600, 610).map(structuredMessage));
    await waitFor(() => again.length >= 10, { timeout: 30000, message: 'the 10 new events' });
    await new Promise((r) => setTimeout(r, 500));
    await c2.stop();
    await run2;
    assert.deepEqual(again.map((d) => d.event.id).sort(), events(tenant.id, 600, 610).map((e) => e.id).sort());
    assert.equal(c2.status().duplicatesDropped, 2);
  } finally {
    redis.disconnect();
  }
});

function cursorLess(a: string, b: string): boolean {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am < bm || (am === bm && as < bs);
}
