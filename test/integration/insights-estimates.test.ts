/**
 * Distinct customers over covers that mix buckets holding their customers exactly and buckets counting them by
 * HyperLogLog. A bucket holds its customers exactly while they are few and gets a HyperLogLog only once they
 * outgrow that, so a figure over several buckets may find both: it is then the estimate of one HyperLogLog of all
 * their customers (equal to what Redis estimates for exactly those customers, within the stated 2 %), exact when
 * every bucket holds its customers exactly. Buckets written before the hash layout (a counter, a set while small,
 * a HyperLogLog from the first event) are read beside the hash. Against the real Redis (a Cluster in the cluster
 * pass), through the store's apply and read.
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

/** Impressions of campaign "camp" by `list`'s customers at `timeMs`, from source offset `from` on. */
const impressions = (from: number, timeMs: number, list: string[]): TenantRecord[] =>
  list.map((customerId, k) => ({ offset: BigInt(from + k), flowMinute: 0, type: 'ad.impression', watermarkAfter: timeMs, event: { kind: 'i', timeMs, customerId, campaignId: 'camp', ref: '' } }));

/** What Redis' HyperLogLog estimates for exactly `customers` (added to a scratch key of its own). */
async function hllOf(customers: string[]): Promise<number> {
  const key = randomName('hll-reference');
  for (let i = 0; i < customers.length; i += 1000) await redis.pfadd(key, ...customers.slice(i, i + 1000));
  const n = await redis.pfcount(key);
  await redis.del(key);
  return n;
}

test('a cover mixing exact buckets and HyperLogLogs is estimated over all its customers; exact buckets alone are exact', async () => {
  const tenant = randomName('ten');
  const day = Math.floor(Date.now() / DAY) * DAY - DAY;
  const hours = [day + 2 * HOUR, day + 3 * HOUR, day + 4 * HOUR];
  // hour 2 and hour 4 stay under the bound (exact); hour 3 outgrows it; the day has them all (it outgrows it too)
  const customers = [range(0, 150), range(100, 1400), [...range(1340, 1500), ...range(0, 10)]];
  let offset = 0;
  for (const [i, list] of customers.entries()) {
    const records: TenantRecord[] = list.map((customerId, k) => ({
      offset: BigInt(offset + k), flowMinute: Math.floor(hours[i]! / 60_000), type: 'ad.impression', watermarkAfter: hours[i]! + k,
      event: { kind: 'i', timeMs: hours[i]! + k * 1000, customerId, campaignId: 'camp', ref: '' },
    }));
    // hour 3 in chunks of 1000: its bucket is past the bound in its first call; the others in chunks of 100, so
    // that the day's exact customers fill, then outgrow in a later call
    const outcome = await applyTenantRecords(redis, tenant, at, offset === 0 ? null : String(offset), records, { ...settings, chunk: i === 1 ? 1000 : 100 });
    assert.equal(outcome.applied, true);
    offset += list.length;
  }
  const hour = (i: number): Bucket => ({ res: 'h', n: Math.floor(hours[i]! / HOUR) });
  const held = async (b: Bucket) => (await redis.hlen(`${insightsKeys.prefix(tenant)}b:impressions:${b.res}:${b.n}:camp`)) - 1;
  const u = (b: Bucket) => redis.exists(insightsKeys.distinct(tenant, 'impressions', b.res, b.n, 'camp'));
  const dayBucket: Bucket = { res: 'd', n: day / DAY };
  assert.deepEqual(await Promise.all([hour(0), hour(1), hour(2), dayBucket].map(held)), [150, 0, 170, 0], 'customers held exactly');
  assert.deepEqual(await Promise.all([hour(0), hour(1), hour(2), dayBucket].map(u)), [0, 1, 0, 1], 'a HyperLogLog only where they were outgrown');

  const all = [...new Set(customers.flat())];
  const [sets, mixed, day0, middle] = await readFigures(redis, tenant, 'camp', 'impressions', [[hour(0), hour(2)], [hour(0), hour(1), hour(2)], [dayBucket], [hour(1)]]);
  assert.deepEqual(sets, { value: new Set([...customers[0]!, ...customers[2]!]).size, events: 150 + 170, estimate: false }, 'two exact buckets: their exact union');
  assert.equal(mixed!.estimate, true);
  assert.equal(mixed!.events, 150 + 1300 + 170, 'events exactly, repeats included');
  assert.equal(mixed!.value, await hllOf(all), 'the mixed cover: what the HyperLogLog of all its customers says');
  assert.ok(Math.abs(mixed!.value - all.length) / all.length <= 0.02, `${mixed!.value} for ${all.length} customers: within 2 %`);
  assert.deepEqual(day0, { value: await hllOf(all), events: mixed!.events, estimate: true }, 'the day, built from its exact customers and then added to, says the same');
  assert.deepEqual(middle, { value: await hllOf(customers[1]!), events: 1300, estimate: true });
  assert.equal(await redis.exists(`${insightsKeys.prefix(tenant)}tmp`), 0, 'the scratch HyperLogLog is gone');
});

test('buckets written before the hash layout are read beside it: their counter, their set or HyperLogLog', async () => {
  const tenant = randomName('ten');
  const t = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
  const prefix = insightsKeys.prefix(tenant);
  const b1: Bucket = { res: 'h', n: t / HOUR };
  const b2: Bucket = { res: 'h', n: t / HOUR + 1 };
  const old = async (b: Bucket, customers: string[], withSet: boolean) => {
    const suffix = `impressions:h:${b.n}:camp`;
    const expires = (b.n + 1) * HOUR + settings.retention.h;
    // as written before: a HyperLogLog and a counter from the first event, and a set while small
    await redis.pfadd(`${prefix}u:${suffix}`, ...customers);
    await redis.set(`${prefix}n:${suffix}`, String(customers.length), 'PXAT', expires);
    await redis.pexpireat(`${prefix}u:${suffix}`, expires);
    if (withSet) await redis.sadd(`${prefix}x:${suffix}`, ...customers), await redis.pexpireat(`${prefix}x:${suffix}`, expires);
  };
  await old(b1, range(0, 120), true);
  await old(b2, range(0, 300), false);

  assert.equal((await applyTenantRecords(redis, tenant, at, null, impressions(0, t, range(100, 170)), settings)).applied, true);
  assert.equal((await applyTenantRecords(redis, tenant, at, '70', impressions(70, t + HOUR, range(290, 310)), settings)).applied, true);
  const [first, second, both] = await readFigures(redis, tenant, 'camp', 'impressions', [[b1], [b2], [b1, b2]]);
  assert.deepEqual(first, { value: 170, events: 120 + 70, estimate: false }, 'the old set and the hash: their exact union');
  assert.deepEqual(second, { value: await hllOf(range(0, 310)), events: 300 + 20, estimate: true }, 'the old HyperLogLog and the hash: estimated together');
  assert.deepEqual(both, { value: await hllOf(range(0, 310)), events: 120 + 70 + 300 + 20, estimate: true });
  assert.equal(await redis.scard(`${prefix}x:impressions:h:${b1.n}:camp`), 120, 'the old keys are read, not written');
  assert.equal(await redis.exists(`${prefix}tmp`), 0, 'the scratch key is gone');
});

test("minute buckets written as a hash of their own are read beside the hour's minute hash", async () => {
  const tenant = randomName('ten');
  const t = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
  const prefix = insightsKeys.prefix(tenant);
  const m1: Bucket = { res: 'm', n: t / 60_000 };
  const m2: Bucket = { res: 'm', n: t / 60_000 + 1 };
  const minuteHash = async (b: Bucket, customers: string[], outgrown: boolean) => {
    const suffix = `impressions:m:${b.n}:camp`;
    const expires = (b.n + 1) * 60_000 + settings.retention.m;
    // as written before: one hash per minute bucket, its count in field "" and its customers while few, else its
    // HyperLogLog has them
    await redis.hset(`${prefix}b:${suffix}`, '', String(customers.length), ...(outgrown ? [] : customers.flatMap((c) => [c, ''])));
    await redis.pexpireat(`${prefix}b:${suffix}`, expires);
    if (outgrown) await redis.pfadd(`${prefix}u:${suffix}`, ...customers), await redis.pexpireat(`${prefix}u:${suffix}`, expires);
  };
  await minuteHash(m1, range(0, 50), false);
  await minuteHash(m2, range(0, 300), true);
  assert.equal((await applyTenantRecords(redis, tenant, at, null, impressions(0, t, range(40, 60)), settings)).applied, true);
  assert.equal((await applyTenantRecords(redis, tenant, at, '20', impressions(20, t + 60_000, range(290, 310)), settings)).applied, true);
  const [first, second, both] = await readFigures(redis, tenant, 'camp', 'impressions', [[m1], [m2], [m1, m2]]);
  assert.deepEqual(first, { value: 60, events: 50 + 20, estimate: false }, 'the old minute hash and the hour of minutes: their exact union');
  assert.deepEqual(second, { value: await hllOf(range(0, 310)), events: 300 + 20, estimate: true }, 'the old HyperLogLog and the hour of minutes: estimated together');
  assert.deepEqual(both, { value: await hllOf(range(0, 310)), events: 50 + 20 + 300 + 20, estimate: true });
  assert.equal(await redis.hlen(`${prefix}b:impressions:m:${m1.n}:camp`), 51, 'the old minute hash is read, not written');
  assert.equal(await redis.exists(`${prefix}tmp`), 0, 'the scratch key is gone');
});
