/**
 * Insights buckets expire at their end plus their resolution's retention, from the call that creates them, and a
 * later call into the same bucket neither loses nor moves that expiry; a bucket has no HyperLogLog while its exact
 * set counts, and one that outgrows its bound gets its HyperLogLog then (every customer in it, expiring with the
 * bucket) while the set is dropped and stays dropped. Against the real Redis (a Cluster in the cluster pass),
 * through the store's apply and read.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRedis, type PioneerRedis } from '../../platform/redis/client.ts';
import { insightsKeys } from '../../platform/redis/keys.ts';
import { applyTenantRecords, readFigures, type ApplySettings, type TenantRecord } from '../../platform/insights/store.ts';
import { deps, randomName } from '../support/helpers.ts';

let redis: PioneerRedis;
before(() => {
  redis = createRedis(deps().redis, { name: 'test-insights-retention' });
});
after(() => redis?.disconnect());

const HOUR = 3_600_000;
const DAY = 86_400_000;
const settings: ApplySettings = {
  windowMs: DAY, retention: { m: 48 * HOUR, h: 90 * DAY, d: 730 * DAY }, customerKeepMs: 8 * DAY, maxPerCustomer: 1000, exactMax: 3,
};
const at = { topic: 'src', partition: 0 };

function impressions(from: number, customers: string[], timeMs: number): TenantRecord[] {
  return customers.map((customerId, i) => ({
    offset: BigInt(from + i), flowMinute: Math.floor(timeMs / 60_000), type: 'ad.impression', watermarkAfter: timeMs,
    event: { kind: 'i', timeMs, customerId, campaignId: 'camp', ref: '' },
  }));
}

test('bucket keys expire at the bucket end plus retention, kept by later calls; an outgrown set becomes a HyperLogLog', async () => {
  const tenant = randomName('ten');
  const t = Date.now() - 5 * 60_000;
  const first = await applyTenantRecords(redis, tenant, at, null, impressions(0, ['a', 'b'], t), settings);
  assert.deepEqual(first, { applied: true, recorded: 2, attributed: 0 });

  const expiries = async () => {
    const out: Record<string, { u: number; n: number; x: number }> = {};
    for (const [res, width] of [['m', 60_000], ['h', HOUR], ['d', DAY]] as const) {
      const n = Math.floor(t / width);
      const u = insightsKeys.distinct(tenant, 'impressions', res, n, 'camp');
      const c = insightsKeys.events(tenant, 'impressions', res, n, 'camp');
      const x = `${insightsKeys.prefix(tenant)}x:impressions:${res}:${n}:camp`;
      const [pu, pn, px] = await Promise.all([redis.pexpiretime(u), redis.pexpiretime(c), redis.pexpiretime(x)]);
      const want = (n + 1) * width + settings.retention[res];
      assert.equal(pu, -2, `${res}: no HyperLogLog while the exact set counts`);
      assert.equal(pn, want, `${res}: the counter expires at the bucket's end plus retention`);
      out[res] = { u: pu, n: pn, x: px };
    }
    return out;
  };
  const before = await expiries();
  for (const res of ['m', 'h', 'd']) assert.equal(before[res]!.x, before[res]!.n, `${res}: the exact set likewise`);

  // the same buckets again: a repeated customer and a new one (3 customers: still exact)
  const second = await applyTenantRecords(redis, tenant, at, '2', impressions(2, ['a', 'c'], t), settings);
  assert.equal(second.applied, true);
  assert.deepEqual(await expiries(), before, 'a later call keeps every expiry');
  const x = `${insightsKeys.prefix(tenant)}x:impressions:m:${Math.floor(t / 60_000)}:camp`;
  assert.deepEqual((await redis.smembers(x)).sort(), ['a', 'b', 'c']);
  assert.equal(await redis.get(insightsKeys.events(tenant, 'impressions', 'm', Math.floor(t / 60_000), 'camp')), '4');

  // a fourth customer outgrows exactMax (3): the set goes, and a later call does not bring it back
  await applyTenantRecords(redis, tenant, at, '4', impressions(4, ['d'], t), settings);
  assert.equal(await redis.exists(x), 0, 'the outgrown set is dropped');
  const u = insightsKeys.distinct(tenant, 'impressions', 'm', Math.floor(t / 60_000), 'camp');
  assert.equal(await redis.pfcount(u), 4, 'its HyperLogLog has every customer, those of the set too');
  assert.equal(await redis.pexpiretime(u), before['m']!.n, 'and expires with the bucket');
  await applyTenantRecords(redis, tenant, at, '5', impressions(5, ['a', 'e'], t), settings);
  assert.equal(await redis.exists(x), 0, 'and stays dropped');
  assert.equal(await redis.pfcount(u), 5);
  assert.equal(await redis.pexpiretime(u), before['m']!.n, 'a later call keeps its expiry');
  const [minute] = await readFigures(redis, tenant, 'camp', 'impressions', [[{ res: 'm', n: Math.floor(t / 60_000) }]]);
  assert.deepEqual(minute, { value: 5, events: 7, estimate: true });
});
