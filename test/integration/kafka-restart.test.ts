import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../platform/telemetry/logger.ts';
import { createKafka, kafkaProbe } from '../../platform/kafka/client.ts';
import { hostKafkaTrigger } from '../../adapters/local/kafka-trigger.ts';
import { encodeStructured } from '../../platform/events/kafka-binding.ts';
import { createTopic, ownService, produce, randomName, sleep, testKafkaClient, testKafkaClientKind, waitFor } from '../support/helpers.ts';

test('kill -9 of the broker while a consumer runs: after a restart it resumes without losing a committed message; /readyz follows the broker', { timeout: 240000 }, async () => {
  const kafkaSvc = ownService('kafka');
  const brokers = kafkaSvc.start();
  const log = createLogger({ level: 'silent' });
  const topic = randomName('restart');
  const seen = new Map<number, number>();
  let host: ReturnType<typeof hostKafkaTrigger> | undefined;
  // the readiness check the route and export functions answer /readyz with
  const probe = kafkaProbe(testKafkaClient('probe', brokers));
  try {
    await createTopic(topic, 2, brokers);
    const msg = (n: number) => {
      const r = encodeStructured({ specversion: '1.0', id: `e${n}`, source: '/t', type: 't', tenantid: 'x', partitionkey: `k${n % 5}`, data: { n } });
      return { key: r.key, value: r.value, headers: r.headers };
    };
    await produce(topic, Array.from({ length: 200 }, (_, n) => msg(n)), brokers);
    host = hostKafkaTrigger({
      kafka:
        testKafkaClientKind() === 'kafkajs'
          ? createKafka({ brokers: [brokers], clientId: 'restart', log, retry: { initialRetryTime: 200, retries: 30, maxRetryTime: 2000 } })
          : testKafkaClient('restart', brokers),
      trigger: {
        topics: [topic],
        groupId: randomName('g'),
        handle: async (batch) => {
          for (const e of batch.events) {
            const n = (e.event!.data as { n: number }).n;
            seen.set(n, (seen.get(n) ?? 0) + 1);
          }
        },
      },
      log,
      sessionTimeout: 6000,
    });
    await host.start();
    await waitFor(() => seen.size === 200, { timeout: 30000, message: 'the first 200 messages' });
    await sleep(500); // the last batch's offsets are committed

    assert.equal(await probe.reachable(), true, 'ready while the broker runs');
    assert.equal(await probe.reachable(), true, 'ready again on the kept connection');

    kafkaSvc.kill9();
    const askedAt = Date.now();
    assert.equal(await probe.reachable(), false, 'not ready while the broker is down');
    const took = Date.now() - askedAt;
    assert.ok(took < 5000, `the probe took ${took} ms to answer during the outage`);
    await sleep(2000);
    kafkaSvc.start();
    await waitFor(() => probe.reachable(), { timeout: 30000, message: 'ready again after the broker restarted' });
    await produce(topic, Array.from({ length: 200 }, (_, i) => msg(200 + i)), brokers);
    await waitFor(() => seen.size === 400, { timeout: 120000, message: 'the 200 messages produced after the restart' });
    for (let n = 0; n < 400; n++) assert.ok(seen.has(n), `message ${n} was lost`);
    // committed messages are not handed over again (at most the last uncommitted batch could be)
    const again = [...seen.entries()].filter(([n, count]) => n < 200 && count > 1);
    assert.equal(again.length, 0, `committed messages delivered again: ${again.map(([n]) => n).join(',')}`);
  } finally {
    await probe.close();
    await host?.stop().catch(() => {});
    kafkaSvc.stop();
  }
});
