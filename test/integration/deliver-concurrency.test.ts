import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  cloudEvent, createTopic, produce, randomName, routeEnv, sleep, startPlatform, structuredMessage, type TestPlatform,
} from '../support/helpers.ts';
import { deliverEnv, ownRedis, startReceiver, subscribe, waitForAll, type Receiver } from './deliver-receiver.ts';

let p: TestPlatform;
const topic = randomName('events');
const receivers: Receiver[] = [];
const redis = ownRedis();

before(async () => {
  await createTopic(topic, 4);
  p = await startPlatform(['subscriptions', 'route', 'deliver'], {
    PIONEER_REDIS_URL: redis.url,
    ...routeEnv(topic),
    // the failing endpoint hangs each attempt for the whole timeout
    ...deliverEnv({ PIONEER_DELIVER_TIMEOUT_MS: '3000', PIONEER_DELIVER_RETRY_SCHEDULE: '0,100ms,100ms,100ms,100ms,100ms,100ms,100ms' }),
  });
});
after(async () => {
  for (const r of receivers) await r.close();
  await p?.stop();
  redis.stop();
});

test('an endpoint that hangs does not delay another endpoint: its events arrive within the usual latency, in order', async () => {
  const down = await startReceiver(() => 'hang');
  const healthy = await startReceiver(() => ({ status: 204 }));
  receivers.push(down, healthy);
  const type = randomName('payment.sent');
  const a = await subscribe(p.url('subscriptions'), p.url('deliver'), p.adminKey, down, type);
  const b = await subscribe(p.url('subscriptions'), p.url('deliver'), p.adminKey, healthy, type);
  await sleep(300);

  const rounds = 20;
  for (let n = 1; n <= rounds; n++) {
    await produce(topic, [
      structuredMessage(cloudEvent(a.tenant.id, type, { n }, { partitionkey: 'acct-a' })),
      structuredMessage(cloudEvent(b.tenant.id, type, { n }, { partitionkey: 'acct-b' })),
    ]);
    await sleep(100);
  }
  const ns = Array.from({ length: rounds }, (_, i) => i + 1);
  await waitForAll(healthy, ns);

  const latencies = healthy.received.map((r) => r.at - r.eventTime).sort((x, y) => x - y);
  const p50 = latencies[Math.floor(latencies.length / 2)]!;
  const max = latencies[latencies.length - 1]!;
  console.log(`healthy endpoint while the other hangs: ${rounds} events, latency p50 ${p50} ms, max ${max} ms (source event to webhook received)`);
  assert.deepEqual(healthy.firstReceipts(), ns, 'in order');
  assert.ok(max < 1000, `the healthy endpoint's slowest event took ${max} ms; the other endpoint's attempts hang 3000 ms each`);
  assert.ok(healthy.received.every((r) => r.verifiedWith.length === 1));
  // meanwhile the hanging endpoint is stuck on its first event: strict order, one request at a time
  assert.ok(down.received.length >= 1);
  assert.ok(down.received.every((r) => r.n === 1), `down endpoint got ${down.received.map((r) => r.n).join(',')}`);
});
