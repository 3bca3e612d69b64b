import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, cloudEvent, createTenant, createTopic, kafkaClient, killProcess, platformEnv, produce, randomName, spawnFunctions, startPlatform, structuredMessage, waitFor,
} from '../support/helpers.ts';

test('SIGTERM: the route finishes its batch, commits, and exits 0; nothing is left uncommitted', { timeout: 120000 }, async () => {
  const topic = randomName('events');
  await createTopic(topic, 2);
  const group = randomName('route');
  const env = platformEnv({ PIONEER_SOURCE_TOPICS: topic, PIONEER_ROUTE_GROUP: group, PIONEER_ROUTE_PORT: '0' });
  const p = await startPlatform(['subscriptions', 'gateway'], { PIONEER_ADMIN_KEY: env['PIONEER_ADMIN_KEY']! });
  try {
    const t = await createTenant(p.url('subscriptions'), p.adminKey);
    const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['tick'] })).body.id;
    const route = await spawnFunctions(['route'], env);
    await produce(topic, Array.from({ length: 500 }, (_, i) => structuredMessage(cloudEvent(t.id, 'tick', { i }, { partitionkey: `k${i % 7}` }))));
    await waitFor(async () => (await api(p.url('gateway'), t.key, 'GET', `/v1/subscriptions/${sub}/events?limit=1000`)).body.data.length === 500, {
      message: 'all 500 routed',
    });
    const exited = new Promise<number | null>((r) => route.child.once('exit', (code) => r(code)));
    route.child.kill('SIGTERM');
    assert.equal(await exited, 0, route.output());
    assert.match(route.output(), /SIGTERM: finishing in-flight work and stopping/);

    const admin = kafkaClient().admin();
    await admin.connect();
    const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    const high = await admin.fetchTopicOffsets(topic);
    await admin.disconnect();
    for (const { partition, offset } of committed!.partitions)
      assert.equal(offset, high.find((h) => h.partition === partition)!.high, `partition ${partition} committed up to its end`);
  } finally {
    await p.stop();
  }
});

test('SIGTERM with a consumer connected over SSE: the gateway ends the stream and exits 0 at once, not after the grace period', { timeout: 120000 }, async () => {
  const env = platformEnv({ PIONEER_GATEWAY_PORT: '0', PIONEER_SHUTDOWN_GRACE_MS: '60000' });
  const p = await startPlatform(['subscriptions'], { PIONEER_ADMIN_KEY: env['PIONEER_ADMIN_KEY']! });
  try {
    const t = await createTenant(p.url('subscriptions'), p.adminKey);
    const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['tick'] })).body.id;
    const gateway = await spawnFunctions(['gateway'], env);
    after(() => killProcess(gateway.child));
    const res = await fetch(`${gateway.urls['gateway']}/v1/subscriptions/${sub}/events`, {
      headers: { authorization: `Bearer ${t.key}`, accept: 'text/event-stream' },
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    assert.match(first, /connected to/);

    const exited = new Promise<number | null>((r) => gateway.child.once('exit', (code) => r(code)));
    const sentAt = Date.now();
    gateway.child.kill('SIGTERM');
    let ended = false;
    while (!ended) ended = (await reader.read().catch(() => ({ done: true }))).done === true;
    assert.equal(await exited, 0, gateway.output());
    const took = Date.now() - sentAt;
    assert.ok(took < 10000, `the gateway took ${took} ms to stop with a consumer connected (grace period 60000 ms)`);
  } finally {
    await p.stop();
  }
});
