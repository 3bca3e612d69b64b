/**
 * Distinct customers over covers that mix exact sets and HyperLogLogs. A bucket keeps its exact set while it is
 * small and gets a HyperLogLog only once it outgrows it, so a figure over several buckets may find both: it is then
 * the estimate of one HyperLogLog of all their customers (equal to what Redis estimates for exactly those
 * customers, within the stated 2 %), exact when every bucket still has its set. Against the real Redis (a Cluster
 * in the cluster pass), through the store's apply and read; a bucket written before the HyperLogLog was built
 * lazily (both a set and a HyperLogLog) is counted by its set, and its HyperLogLog takes every member when it goes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRedis, type PioneerRedis } from '../../platform/redis/client.ts';
import { insightsKeys } from '../../platform/redis/keys.ts';
import { applyTenantRecords, readFigures, type ApplySettings, type TenantRecord } from '../../platform/insights/store.ts';
import type { Bucket } from '../../platform/insights/buckets.ts';
import { deps, randomName } from '../support/helpers.ts';

let redis: PioneerRedis;
before(() => {
  redis = createRedis(deps().redis, { name: 'test-insights-estimates' });
});
after(() => redis?.disconnect());

const HOUR = 3_600_000;
const DAY = 86_400_000;
const EXACT_UP_TO = 200;
const settings: ApplySettings = {
  windowMs: DAY, retention: { m: 48 * HOUR, h: 90 * DAY, d: 730 * DAY }, customerKeepMs: 8 * DAY, maxPerCustomer: 1000, exactMax: EXACT_UP_TO,
};
const at = { topic: 'src', partition: 0 };
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `customer-${from + i}`);

/** What Redis' HyperLogLog estimates for exactly `customers` (added to a scratch key of its own). */
async function hllOf(customers: string[]): Promise<number> {
  const key = randomName('hll-reference');
  for (let i = 0; i < customers.length; i += 1000) await redis.pfadd(key, ...customers.slice(i, i + 1000));
  const n = await redis.pfcount(key);
  await redis.del(key);
  return n;
}

test('a cover mixing exact sets and HyperLogLogs is estimated over all its customers; sets alone are exact', async () => {
  const tenant = randomName('ten');
  const day = Math.floor(Date.now() / DAY) * DAY - DAY;
  const hours = [day + 2 * HOUR, day + 3 * HOUR, day + 4 * HOUR];
  // hour 2 and hour 4 stay under the bound (sets); hour 3 outgrows it; the day has them all (it outgrows it too)
  const customers = [range(0, 150), range(100, 1400), [...range(1340, 1500), ...range(0, 10)]];
  let offset = 0;
  for (const [i, list] of customers.entries()) {
    const records: TenantRecord[] = list.map((customerId, k) => ({
      offset: BigInt(offset + k), flowMinute: Math.floor(hours[i]! / 60_000), type: 'ad.impression', watermarkAfter: hours[i]! + k,
      event: { kind: 'i', timeMs: hours[i]! + k * 1000, customerId, campaignId: 'camp', ref: '' },
    }));
    // hour 3 in chunks of 1000: its bucket is past the bound in its first call; the others in chunks of 100, so
    // that the day's set fills, then outgrows in a later call
    const outcome = await applyTenantRecords(redis, tenant, at, offset === 0 ? null : String(offset), records, { ...settings, chunk: i === 1 ? 1000 : 100 });
    assert.equal(outcome.applied, true);
    offset += list.length;
  }
  const hour = (i: number): Bucket => ({ res: 'h', n: Math.floor(hours[i]! / HOUR) });
  const x = (b: Bucket) => `${insightsKeys.prefix(tenant)}x:impressions:${b.res}:${b.n}:camp`;
  const u = (b: Bucket) => insightsKeys.distinct(tenant, 'impressions', b.res, b.n, 'camp');
  const dayBucket: Bucket = { res: 'd', n: day / DAY };
  assert.deepEqual(await Promise.all([0, 1, 2].map((i) => redis.exists(x(hour(i)), u(hour(i))))), [1, 1, 1], 'each hour has a set or a HyperLogLog, not both');
  assert.deepEqual([await redis.exists(x(hour(0))), await redis.exists(x(hour(1))), await redis.exists(x(hour(2)))], [1, 0, 1]);
  assert.deepEqual([await redis.exists(x(dayBucket)), await redis.exists(u(dayBucket))], [0, 1], 'the day outgrew its set');

  const all = [...new Set(customers.flat())];
  const [sets, mixed, day0, middle] = await readFigures(redis, tenant, 'camp', 'impressions', [[hour(0), hour(2)], [hour(0), hour(1), hour(2)], [dayBucket], [hour(1)]]);
  assert.deepEqual(sets, { value: new Set([...customers[0]!, ...customers[2]!]).size, events: 150 + 170, estimate: false }, 'two sets: their exact union');
  assert.equal(mixed!.estimate, true);
  assert.equal(mixed!.events, 150 + 1300 + 170, 'events exactly, repeats included');
  assert.equal(mixed!.value, await hllOf(all), 'the mixed cover: what the HyperLogLog of all its customers says');
  assert.ok(Math.abs(mixed!.value - all.length) / all.length <= 0.02, `${mixed!.value} for ${all.length} customers: within 2 %`);
  assert.deepEqual(day0, { value: await hllOf(all), events: mixed!.events, estimate: true }, 'the day, built from its set and then added to, says the same');
  assert.deepEqual(middle, { value: await hllOf(customers[1]!), events: 1300, estimate: true });
  assert.equal(await redis.exists(`${insightsKeys.prefix(tenant)}tmp`), 0, 'the scratch HyperLogLog is gone');
});

test('a bucket written with both a set and a HyperLogLog is counted by its set, and its HyperLogLog takes every member when it goes', async () => {
  const tenant = randomName('ten');
  const t = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
  const b: Bucket = { res: 'h', n: t / HOUR };
  const suffix = `impressions:h:${b.n}:camp`;
  const prefix = insightsKeys.prefix(tenant);
  const expires = (b.n + 1) * HOUR + settings.retention.h;
  // as written before: the HyperLogLog, the set and the counter from the bucket's first event
  await redis.pfadd(`${prefix}u:${suffix}`, ...range(0, 120));
  await redis.sadd(`${prefix}x:${suffix}`, ...range(0, 120));
  await redis.set(`${prefix}n:${suffix}`, '120');
  for (const k of ['u', 'x', 'n']) await redis.pexpireat(`${prefix}${k}:${suffix}`, expires);
  const records = (from: number, list: string[]): TenantRecord[] =>
    list.map((customerId, k) => ({ offset: BigInt(from + k), flowMinute: 0, type: 'ad.impression', watermarkAfter: t, event: { kind: 'i', timeMs: t + k, customerId, campaignId: 'camp', ref: '' } }));

  // 50 more: the set counts them (the HyperLogLog is not written while the set lasts)
  assert.equal((await applyTenantRecords(redis, tenant, at, null, records(0, range(120, 170)), settings)).applied, true);
  assert.deepEqual((await readFigures(redis, tenant, 'camp', 'impressions', [[b]]))[0], { value: 170, events: 170, estimate: false });
  // 100 more outgrow the bound: the HyperLogLog has all 270, those added while the set lasted too
  assert.equal((await applyTenantRecords(redis, tenant, at, '50', records(50, range(170, 270)), settings)).applied, true);
  assert.equal(await redis.exists(`${prefix}x:${suffix}`), 0);
  assert.deepEqual((await readFigures(redis, tenant, 'camp', 'impressions', [[b]]))[0], { value: await hllOf(range(0, 270)), events: 270, estimate: true });
  assert.equal(await redis.pexpiretime(`${prefix}u:${suffix}`), expires);
});
