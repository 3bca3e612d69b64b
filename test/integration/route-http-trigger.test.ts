import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFunction } from '../../adapters/http/start-function.ts';
import { keys } from '../../platform/redis/keys.ts';
import { api, cloudEvent, createTenant, platformEnv, randomName, redisClient, startPlatform, waitFor } from '../support/helpers.ts';

test('hosted as a container, the route appends a CloudEvent posted twice without its Kafka position once (by source and id)', async () => {
  const env = platformEnv({ PIONEER_SOURCE_TOPICS: randomName('events'), PIONEER_ROUTE_GROUP: randomName('route') });
  const p = await startPlatform(['subscriptions'], { PIONEER_ADMIN_KEY: env['PIONEER_ADMIN_KEY']! });
  const route = await startFunction('route', env);
  const redis = redisClient();
  try {
    const t = await createTenant(p.url('subscriptions'), p.adminKey);
    const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['tick'] })).body.id as string;
    const first = cloudEvent(t.id, 'tick', { n: 1 }, { partitionkey: 'k' });
    const second = cloudEvent(t.id, 'tick', { n: 2 }, { partitionkey: 'k' });
    const post = (body: unknown) =>
      route.app.request('/', { method: 'POST', headers: { 'content-type': 'application/cloudevents+json' }, body: JSON.stringify(body) });
    // the route's index follows the new subscription within its poll period: post until it is appended
    await waitFor(async () => {
      assert.equal((await post(first)).status, 202);
      return (await redis.xlen(keys.stream(t.id, sub))) === 1;
    }, { message: 'the first event appended' });
    for (const body of [first, second, first, second]) assert.equal((await post(body)).status, 202);
    const entries = (await redis.xrange(keys.stream(t.id, sub), '-', '+')) as [string, string[]][];
    assert.deepEqual(entries.map(([, f]) => JSON.parse(f[3]!).data.n), [1, 2], 'each event once, in the order first posted');
  } finally {
    redis.disconnect();
    await route.close();
    await p.stop();
  }
});
