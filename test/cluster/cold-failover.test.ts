/**
 * The cold tier through a Kafka failover (the cluster pass of scripts/test.sh only): a reader pages through events
 * that have left the hot window, which the gateway fetches again from the source partitions' leaders, while the
 * broker leading most of those partitions is killed with SIGKILL; the pages go on from the new leaders, and the
 * reader gets every event once, in per-key order, under ascending ids (that they are the ids a reader that never
 * left got is test/integration/tiers.test.ts's).
 * The broker is started again whatever the outcome: the rest of the cluster pass uses the same cluster.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, cloudEvent, createTenant, createTopic, deps, leaveHotWindow, produce, randomName, redisClient, routeEnv, sleep, startPlatform, structuredMessage,
} from '../support/helpers.ts';
import { compareIds } from '../../platform/redis/streams.ts';
import { CLUSTER_PASS, kafkaLeaderFault } from './faults.ts';

const KEYS = 16;
// 32,000 events: eight cold steps, most of them read after the kill
const PER_KEY = 2000;

if (CLUSTER_PASS && deps().cluster) {
  test('the broker leading most source partitions killed with SIGKILL while a reader pages through the cold tier: every event once, in per-key order, from the new leaders', { timeout: 240_000 }, async () => {
    const topic = randomName('cold-failover');
    await createTopic(topic, 4);
    const p = await startPlatform(['subscriptions', 'route', 'gateway'], { ...routeEnv(topic), PIONEER_STREAM_HOT_SECONDS: '1' });
    const redis = redisClient();
    const fault = await kafkaLeaderFault(topic)();
    try {
      const t = await createTenant(p.url('subscriptions'), p.adminKey);
      const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['pay'] })).body.id as string;
      await sleep(400); // the route's index follows within its poll period
      const since = new Date(Date.now() - 1000).toISOString();
      const messages = Array.from({ length: KEYS * PER_KEY }, (_, n) => {
        const key = `k${n % KEYS}`;
        return structuredMessage(cloudEvent(t.id, 'pay', { seq: Math.floor(n / KEYS), pad: 'x'.repeat(200) }, { subject: key, partitionkey: key }));
      });
      await produce(topic, messages);
      await leaveHotWindow(redis, {
        tenantId: t.id, subId: sub, count: KEYS * PER_KEY, topic,
        last: structuredMessage(cloudEvent(t.id, 'pay', { seq: PER_KEY }, { subject: 'k0', partitionkey: 'k0' })),
      });

      const got: { id: string; key: string; seq: number }[] = [];
      let cursor: string | null = null;
      let pages = 0;
      let failedPages = 0;
      const deadline = Date.now() + 150_000;
      while (got.length < KEYS * PER_KEY) {
        assert.ok(Date.now() < deadline, `read ${got.length} of ${KEYS * PER_KEY} events in time (${failedPages} pages failed)`);
        const query: string = cursor === null ? `since=${encodeURIComponent(since)}` : `after=${cursor}`;
        const res = await api(p.url('gateway'), t.consumerKey, 'GET', `/v1/subscriptions/${sub}/events?${query}&limit=1000`);
        if (res.status !== 200) {
          // a page may fail while no broker leads a partition yet: the reader asks again from the same cursor
          assert.ok(res.status >= 500, `a page answered ${res.status}: ${JSON.stringify(res.body)}`);
          failedPages++;
          await sleep(500);
          continue;
        }
        for (const d of res.body.data) {
          const e = d.event as { subject: string; data: { seq: number } };
          got.push({ id: d.cursor, key: e.subject, seq: e.data.seq });
        }
        cursor = res.body.next_cursor;
        // the leader dies after the first page: the rest is read through the failover
        if (++pages === 1) await fault.kill();
      }
      const first = got.slice(0, KEYS * PER_KEY);
      for (let i = 1; i < first.length; i++) assert.ok(compareIds(first[i - 1]!.id, first[i]!.id) < 0, `ids ascend: ${first[i - 1]!.id} then ${first[i]!.id}`);
      const last = new Map<string, number>();
      for (const e of first) {
        assert.equal(e.seq, (last.get(e.key) ?? -1) + 1, `${e.key}: #${e.seq} follows #${last.get(e.key) ?? -1}`);
        last.set(e.key, e.seq);
      }
      for (let k = 0; k < KEYS; k++) assert.equal(last.get(`k${k}`), PER_KEY - 1, `k${k} read through its last event`);
      assert.ok(pages > 3, `the read took several pages after the kill (${pages})`);
    } finally {
      await fault.restore();
      redis.disconnect();
      await p.stop();
    }
  });
}

// kafkajs clients of the killed broker can keep this process alive after the test reported: end it then
after(() => {
  setTimeout(() => process.exit(), 2000).unref();
});
