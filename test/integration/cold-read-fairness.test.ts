/**
 * Reads older than the hot window share an instance's cold sources fairly: one tenant's readers hold at most
 * PIONEER_COLD_READS_MAX_PER_TENANT of them (its next reader gets 429 cold_reads_limit), so another tenant's old
 * cursor is still served; past the instance's own bound everyone gets 503 cold_reads_busy. Real Kafka and Redis:
 * the route appends with a one-second hot window, the readers are the tiers a gateway builds.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { coldReadsSchema, sourceSchema } from '../../platform/config/source.ts';
import { createRedis, type PioneerRedis } from '../../platform/redis/client.ts';
import { keys } from '../../platform/redis/keys.ts';
import { createSubscriptionStore } from '../../platform/store/subscriptions.ts';
import { createLogger } from '../../platform/telemetry/logger.ts';
import { ColdReadsBusyError, ColdReadsLimitError, tieredStreamsFor, type TieredReader, type TieredStreams } from '../../platform/tiers/cold-reader.ts';
import {
  api, cloudEvent, createTenant, createTopic, deps, produce, randomName, routeEnv, sleep, startPlatform, structuredMessage, waitFor, type TestPlatform,
} from '../support/helpers.ts';

const topic = randomName('cold-fair');
let p: TestPlatform;
let redis: PioneerRedis;
let tiered: TieredStreams;

before(async () => {
  await createTopic(topic, 2);
  p = await startPlatform(['subscriptions', 'route'], { ...routeEnv(topic), PIONEER_STREAM_HOT_SECONDS: '1' });
  redis = createRedis(deps().redis, { name: 'test-cold-fairness' });
  const log = createLogger({ level: 'silent' });
  tiered = tieredStreamsFor(
    {
      ...sourceSchema.parse({ PIONEER_SOURCE_TOPICS: topic }),
      ...coldReadsSchema.parse({ PIONEER_COLD_READS_MAX: '3', PIONEER_COLD_READS_MAX_PER_TENANT: '2' }),
      PIONEER_KAFKA_CLIENT_ID: randomName('cold-fair'),
      PIONEER_KAFKA_BROKERS: deps().brokers.split(','),
      PIONEER_KAFKA_SSL: false,
    },
    { redis, store: createSubscriptionStore(redis), log, metrics: new Registry(), user: 'test' },
  );
});
after(async () => {
  await tiered?.close();
  redis?.disconnect();
  await p?.stop();
});

/** A tenant with one subscription whose first events have left the hot window. */
async function tenantWithOldEvents(): Promise<{ tenantId: string; subId: string }> {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['old.one'] })).body;
  await produce(topic, Array.from({ length: 30 }, (_, i) => structuredMessage(cloudEvent(t.id, 'old.one', { i }, { partitionkey: `k${i % 3}` }))));
  await waitFor(async () => (await redis.xlen(keys.stream(t.id, sub.id))) >= 30 || undefined, { message: 'the first 30 events appended' });
  await sleep(1500);
  // an append after the window moved on trims the first ones
  await produce(topic, [structuredMessage(cloudEvent(t.id, 'old.one', { i: 30 }, { partitionkey: 'k0' }))]);
  await waitFor(async () => (await redis.xlen(keys.stream(t.id, sub.id))) < 30 || undefined, { message: 'the first events trimmed from Redis' });
  return { tenantId: t.id, subId: sub.id };
}

test("one tenant's readers far behind hold at most their share of an instance's cold sources; another tenant is still served", async () => {
  const a = await tenantWithOldEvents();
  const b = await tenantWithOldEvents();
  const readers: TieredReader[] = [];
  const readCold = async (who: { tenantId: string; subId: string }) => {
    const reader = tiered.reader(who);
    readers.push(reader);
    const page = await reader.read('0-0', 1);
    return { reader, page };
  };
  try {
    // two readers of tenant a read from the oldest event: each holds a cold source (its next step is prefetched)
    const a1 = await readCold(a);
    const a2 = await readCold(a);
    assert.ok(a1.page.cold && a2.page.cold, 'both read from the cold tier');
    assert.equal(a1.page.entries[0]!.cursor, a2.page.entries[0]!.cursor, 'the same oldest event for both');
    assert.equal(tiered.active(), 2);

    // a third of tenant a's is refused with 429, naming the limit; nothing more is held
    await assert.rejects(readCold(a), (err: unknown) => {
      assert.ok(err instanceof ColdReadsLimitError, String(err));
      assert.equal(err.status, 429);
      assert.equal(err.code, 'cold_reads_limit');
      assert.match(err.message, /at most 2 reads older than the hot window per tenant/);
      return true;
    });
    assert.equal(tiered.active(), 2);

    // tenant b's old cursor is served from the instance's third source
    const b1 = await readCold(b);
    assert.ok(b1.page.cold);
    assert.equal(JSON.parse(b1.page.entries[0]!.event).data.i, 0, "tenant b's oldest event");
    assert.equal(tiered.active(), 3);

    // the instance is full now: a fourth reader, of either tenant, is refused with 503
    await assert.rejects(readCold(b), (err: unknown) => err instanceof ColdReadsBusyError && err.status === 503);

    // once one of tenant a's readers closes, tenant a reads cold again
    await a1.reader.close();
    assert.equal(tiered.active(), 2);
    const a3 = await readCold(a);
    assert.ok(a3.page.cold);
    assert.equal(JSON.parse(a3.page.entries[0]!.event).data.i, JSON.parse(a2.page.entries[0]!.event).data.i);
    assert.equal(tiered.active(), 3);
  } finally {
    for (const r of readers) await r.close().catch(() => {});
  }
  assert.equal(tiered.active(), 0, 'every source given back');
});

test("readers of one tenant starting at the same moment pass its share together no more than one at a time", async () => {
  const c = await tenantWithOldEvents();
  const readers = [0, 1, 2].map(() => tiered.reader(c));
  try {
    const results = await Promise.allSettled(readers.map((r) => r.read('0-0', 1)));
    const served = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(served.length, 2, 'two of the three are served');
    assert.equal(refused.length, 1);
    assert.ok(refused[0]!.reason instanceof ColdReadsLimitError, String(refused[0]!.reason));
    assert.equal(tiered.active(), 2);
  } finally {
    for (const r of readers) await r.close().catch(() => {});
  }
  assert.equal(tiered.active(), 0);
});
