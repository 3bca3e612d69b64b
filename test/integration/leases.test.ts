/**
 * Leases (platform/redis/leases.ts) against the run's Redis: a single-holder lease has exactly one holder however
 * many owners race for it, only its holder renews or releases it, and it passes to another owner once it expired;
 * a counted lease set never holds more than its limit however many takers race, and a released or expired lease
 * frees its place.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRedis } from '../../platform/redis/client.ts';
import { holder, release, releaseCounted, renew, renewCounted, takeCounted, tryTake } from '../../platform/redis/leases.ts';
import { deps, randomName, sleep } from '../support/helpers.ts';

// the run's Redis: one server, or a Redis Cluster in the cluster pass (each call touches one key's slot)
const redis = createRedis(deps().redis, { name: 'leases-test' });
after(() => redis.disconnect());

const leaseKey = () => `{t:${randomName('ten')}}:lease`;

test('owners racing for one lease: exactly one takes it, the others are told who holds it', async () => {
  const key = leaseKey();
  const owners = Array.from({ length: 50 }, (_, i) => `owner-${i}`);
  const takes = await Promise.all(owners.map((owner) => tryTake(redis, { key, owner, ttlMs: 10_000 })));
  const winners = owners.filter((_, i) => takes[i]!.taken);
  assert.equal(winners.length, 1);
  assert.equal(await holder(redis, { key }), winners[0]);
  for (const t of takes) if (!t.taken) assert.equal(t.holder, winners[0]);
  // taking it again, even by its holder, changes nothing
  assert.deepEqual(await tryTake(redis, { key, owner: winners[0]!, ttlMs: 10_000 }), { taken: false, holder: winners[0] });
  const ttl = await redis.pttl(key);
  assert.ok(ttl > 0 && ttl <= 10_000, `expires (pttl ${ttl})`);
});

test('only the holder renews or releases a lease; released, it is free at once', async () => {
  const key = leaseKey();
  assert.deepEqual(await tryTake(redis, { key, owner: 'a', ttlMs: 1000 }), { taken: true });
  assert.equal(await renew(redis, { key, owner: 'b', ttlMs: 60_000 }), false);
  assert.ok((await redis.pttl(key)) <= 1000, 'a non-holder does not extend it');
  assert.equal(await release(redis, { key, owner: 'b' }), false);
  assert.equal(await holder(redis, { key }), 'a');

  assert.equal(await renew(redis, { key, owner: 'a', ttlMs: 60_000 }), true);
  assert.ok((await redis.pttl(key)) > 1000, 'the holder extends it');
  assert.equal(await release(redis, { key, owner: 'a' }), true);
  assert.equal(await holder(redis, { key }), null);
  assert.equal(await release(redis, { key, owner: 'a' }), false);
  assert.deepEqual(await tryTake(redis, { key, owner: 'b', ttlMs: 1000 }), { taken: true });
});

test('an expired lease passes to another owner; the old holder can neither renew nor release it', async () => {
  const key = leaseKey();
  assert.deepEqual(await tryTake(redis, { key, owner: 'a', ttlMs: 100 }), { taken: true });
  assert.deepEqual(await tryTake(redis, { key, owner: 'b', ttlMs: 10_000 }), { taken: false, holder: 'a' });
  await sleep(200);
  assert.equal(await holder(redis, { key }), null);
  assert.equal(await renew(redis, { key, owner: 'a', ttlMs: 10_000 }), false, 'an expired lease is not renewed');
  assert.deepEqual(await tryTake(redis, { key, owner: 'b', ttlMs: 10_000 }), { taken: true });
  assert.equal(await renew(redis, { key, owner: 'a', ttlMs: 10_000 }), false);
  assert.equal(await release(redis, { key, owner: 'a' }), false);
  assert.equal(await holder(redis, { key }), 'b');
});

test('a counted lease set never holds more than its limit under 200 concurrent takes; a release frees a place', async () => {
  const set = `{t:${randomName('ten')}}:sse`;
  const max = 17;
  const takes = await Promise.all(Array.from({ length: 200 }, () => takeCounted(redis, { set, max, ttlMs: 10_000 })));
  const taken = takes.filter((t) => t.taken);
  assert.equal(taken.length, max);
  assert.equal(await redis.zcard(set), max);
  assert.equal(new Set(taken.map((t) => t.lease.id)).size, max, 'every lease has its own id');
  assert.deepEqual([...new Set(taken.map((t) => t.held))].sort((a, b) => a - b), Array.from({ length: max }, (_, i) => i + 1));
  for (const t of takes) if (!t.taken) assert.equal(t.held, max);

  const [first, second] = taken;
  assert.equal(await releaseCounted(redis, { lease: first!.lease }), true);
  assert.equal(await releaseCounted(redis, { lease: first!.lease }), false, 'released once');
  assert.equal(await renewCounted(redis, { lease: first!.lease, ttlMs: 10_000 }), false, 'a released lease is not renewed');
  const again = await Promise.all(Array.from({ length: 20 }, () => takeCounted(redis, { set, max, ttlMs: 10_000 })));
  assert.equal(again.filter((t) => t.taken).length, 1, 'exactly the freed place is taken');
  assert.equal(await renewCounted(redis, { lease: second!.lease, ttlMs: 10_000 }), true);
  assert.equal(await redis.zcard(set), max);
});

test('counted leases expire on their own, the renewed one stays held, and the set goes with its last lease', async () => {
  const set = `{t:${randomName('ten')}}:sse`;
  const a = await takeCounted(redis, { set, max: 2, ttlMs: 300 });
  const b = await takeCounted(redis, { set, max: 2, ttlMs: 300 });
  assert.ok(a.taken && b.taken);
  assert.equal((await takeCounted(redis, { set, max: 2, ttlMs: 300 })).taken, false);
  await sleep(150);
  assert.equal(await renewCounted(redis, { lease: a.lease, ttlMs: 1000 }), true);
  await sleep(250);
  // b expired: its place is free, a is still held
  assert.equal(await renewCounted(redis, { lease: b.lease, ttlMs: 1000 }), false);
  const c = await takeCounted(redis, { set, max: 2, ttlMs: 300 });
  assert.ok(c.taken && c.held === 2, 'the expired place is taken again');
  assert.equal((await takeCounted(redis, { set, max: 2, ttlMs: 300 })).taken, false);
  const ttl = await redis.pttl(set);
  assert.ok(ttl > 500 && ttl <= 1000, `the set expires with its last lease, a (pttl ${ttl})`);
  await sleep(ttl + 100);
  assert.equal(await redis.exists(set), 0, 'nothing is left behind');
  assert.equal(await renewCounted(redis, { lease: a.lease, ttlMs: 1000 }), false);
});
