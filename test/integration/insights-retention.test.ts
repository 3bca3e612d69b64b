/**
 * Insights buckets expire at their end plus their resolution's retention, from the call that creates them, and a
 * later call into the same bucket neither loses nor moves that expiry; a bucket has no HyperLogLog while it holds
 * its customers exactly, and one whose customers outgrow the bound gets its HyperLogLog then (every customer in
 * it, expiring with the bucket) while the customers are dropped from the bucket and stay dropped. Against the real Redis (a Cluster in the cluster pass),
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

test('bucket keys expire at the bucket end plus retention, kept by later calls; outgrown customers go to a HyperLogLog', async () => {
  const tenant = randomName('ten');
  const t = Date.now() - 5 * 60_000;
  const first = await applyTenantRecords(redis, tenant, at, null, impressions(0, ['a', 'b'], t), settings);
  assert.deepEqual(first, { applied: true, recorded: 2, attributed: 0 });

  const bucket = (res: string, n: number) => `${insightsKeys.prefix(tenant)}b:impressions:${res}:${n}:camp`;
  const m = Math.floor(t / 60_000);
  const hourOfMinutes = insightsKeys.minutes(tenant, 'impressions', Math.floor(t / HOUR), 'camp');
  const expiries = async () => {
    const out: Record<string, number> = {};
    for (const [res, width] of [['m', 60_000], ['h', HOUR], ['d', DAY]] as const) {
      const n = Math.floor(t / width);
      // the minutes of an hour are one hash, kept until the hour's end plus the minute retention
      const key = res === 'm' ? hourOfMinutes : bucket(res, n);
      const end = res === 'm' ? (Math.floor(t / HOUR) + 1) * HOUR : (n + 1) * width;
      const [pu, pb] = await Promise.all([redis.pexpiretime(insightsKeys.distinct(tenant, 'impressions', res, n, 'camp')), redis.pexpiretime(key)]);
      assert.equal(pu, -2, `${res}: no HyperLogLog while the bucket holds its customers exactly`);
      assert.equal(pb, end + settings.retention[res], `${res}: the bucket expires at its end plus retention`);
      out[res] = pb;
    }
    return out;
  };
  const before = await expiries();

  // the same buckets again: a repeated customer and a new one (3 customers: still exact)
  const second = await applyTenantRecords(redis, tenant, at, '2', impressions(2, ['a', 'c'], t), settings);
  assert.equal(second.applied, true);
  assert.deepEqual(await expiries(), before, 'a later call keeps every expiry');
  assert.deepEqual(await redis.hgetall(hourOfMinutes), { [m]: '4', [`${m}|a`]: '', [`${m}|b`]: '', [`${m}|c`]: '' }, 'the count and the customers');
  const hourKey = bucket('h', Math.floor(t / HOUR));
  assert.deepEqual(await redis.hgetall(hourKey), { '': '4', a: '', b: '', c: '' }, 'the count and the customers');

  // a fourth customer outgrows exactMax (3): the customers go, and a later call does not bring them back
  await applyTenantRecords(redis, tenant, at, '4', impressions(4, ['d'], t), settings);
  assert.deepEqual(await redis.hgetall(hourOfMinutes), { [m]: '5', [`${m}|`]: '' }, 'the outgrown customers are dropped, the count stays');
  assert.deepEqual(await redis.hgetall(hourKey), { '': '5' }, 'the outgrown customers are dropped, the count stays');
  const u = insightsKeys.distinct(tenant, 'impressions', 'm', m, 'camp');
  assert.equal(await redis.pfcount(u), 4, 'its HyperLogLog has every customer, those held exactly before too');
  assert.equal(await redis.pexpiretime(u), (m + 1) * 60_000 + settings.retention.m, 'and expires with the minute');
  await applyTenantRecords(redis, tenant, at, '5', impressions(5, ['a', 'e'], t), settings);
  assert.deepEqual(await redis.hgetall(hourOfMinutes), { [m]: '7', [`${m}|`]: '' }, 'and stay dropped');
  assert.deepEqual(await redis.hgetall(hourKey), { '': '7' }, 'and stay dropped');
  assert.equal(await redis.pfcount(u), 5);
  assert.equal(await redis.pexpiretime(u), (m + 1) * 60_000 + settings.retention.m, 'a later call keeps its expiry');
  assert.equal(await redis.pexpiretime(hourOfMinutes), before['m']);
  assert.equal(await redis.pexpiretime(hourKey), before['h']);
  const [minute] = await readFigures(redis, tenant, 'camp', 'impressions', [[{ res: 'm', n: Math.floor(t / 60_000) }]]);
  assert.deepEqual(minute, { value: 5, events: 7, estimate: true });
});
