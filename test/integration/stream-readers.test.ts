/**
 * The shared blocking readers (platform/redis/stream-readers.ts) against the run's Redis: a waiter that arrives
 * while a long block is in flight is served at once, waiters of one key each get what follows their own cursor,
 * and timeouts and aborts leave the others waiting.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { deps, randomName, redisClient, sleep } from '../support/helpers.ts';
import { createRedis } from '../../platform/redis/client.ts';
import { createStreamReaders } from '../../platform/redis/stream-readers.ts';

const redis = createRedis(deps().redis, { name: randomName('readers-test') });
const writer = redisClient();
after(() => {
  redis.disconnect();
  writer.disconnect();
});

const streamKey = (tenant: string, n: number) => `{t:${tenant}}:stream:sub_${n}`;
const append = (key: string, i: number) => writer.xadd(key, '*', 'type', 'tick', 'event', JSON.stringify({ i }));

test('a waiter that arrives while a long block is in flight on its connection is served within milliseconds, not after the block', async () => {
  const readers = createStreamReaders({ redis, size: 1, blockMs: 20_000 });
  try {
    const [a, b] = [randomName('ten'), randomName('ten')];
    const first = readers.next({ key: streamKey(a, 1), cursor: '0-0', timeoutMs: 30_000 });
    await sleep(100); // the one connection is now blocked on tenant a's stream only
    const second = readers.next({ key: streamKey(b, 1), cursor: '0-0', timeoutMs: 30_000 });
    await sleep(20);
    const appended = Date.now();
    await append(streamKey(b, 1), 7);
    const got = await second;
    const took = Date.now() - appended;
    assert.equal(got?.length, 1);
    assert.equal(JSON.parse(got![0]![1][3]!).i, 7);
    assert.ok(took < 500, `served ${took} ms after the append (the block is 20 s)`);
    await append(streamKey(a, 1), 1);
    assert.equal((await first)?.length, 1);
  } finally {
    readers.close();
  }
});

test('waiters of one key each get the entries after their own cursor; timeouts and aborts resolve null and leave the rest waiting', async () => {
  const readers = createStreamReaders({ redis, size: 2, blockMs: 5_000, count: 3 });
  try {
    const key = streamKey(randomName('ten'), 1);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await append(key, i))!);
    // behind: the first three (count 3); ahead: the last one only; at the head: waits for the next append
    const behind = readers.next({ key, cursor: '0-0', timeoutMs: 5_000 });
    const ahead = readers.next({ key, cursor: ids[3]!, timeoutMs: 5_000 });
    const atHead = readers.next({ key, cursor: ids[4]!, timeoutMs: 5_000 });
    const ac = new AbortController();
    const aborted = readers.next({ key, cursor: ids[4]!, timeoutMs: 5_000, signal: ac.signal });
    const timedOut = readers.next({ key: streamKey(randomName('ten'), 2), cursor: '0-0', timeoutMs: 200 });
    assert.deepEqual((await behind)?.map((e) => e[0]), ids.slice(0, 3));
    assert.deepEqual((await ahead)?.map((e) => e[0]), [ids[4]]);
    ac.abort();
    assert.equal(await aborted, null);
    assert.equal(await timedOut, null);
    const next = await append(key, 5);
    assert.deepEqual((await atHead)?.map((e) => e[0]), [next]);
  } finally {
    readers.close();
  }
});

test('a waiter that arrives during a call, behind the cursor the call reads after, gets everything after its own cursor', async () => {
  const readers = createStreamReaders({ redis, size: 1, blockMs: 5_000 });
  try {
    const key = streamKey(randomName('ten'), 1);
    const first = (await append(key, 0))!;
    const atHead = readers.next({ key, cursor: first, timeoutMs: 5_000 });
    await sleep(50); // the call reads after `first`
    const fromStart = readers.next({ key, cursor: '0-0', timeoutMs: 5_000 });
    const second = (await append(key, 1))!;
    assert.deepEqual((await atHead)?.map((e) => e[0]), [second]);
    assert.deepEqual((await fromStart)?.map((e) => e[0]), [first, second]);
  } finally {
    readers.close();
  }
});

test('many waiters over many tenants, one connection: every append reaches its own waiter, in order', async () => {
  const readers = createStreamReaders({ redis, size: 1, blockMs: 5_000 });
  try {
    const keys = Array.from({ length: 50 }, (_, n) => streamKey(randomName('ten'), n));
    const seen = new Map<string, number[]>(keys.map((k) => [k, []]));
    const follow = async (key: string) => {
      let cursor = '0-0';
      while (seen.get(key)!.length < 20) {
        const got = await readers.next({ key, cursor, timeoutMs: 10_000 });
        assert.ok(got, `${key} timed out at ${seen.get(key)!.length}`);
        for (const [, fields] of got) seen.get(key)!.push(JSON.parse(fields[3]!).i);
        cursor = got[got.length - 1]![0];
      }
    };
    const following = keys.map(follow);
    for (let i = 0; i < 20; i++) {
      // concurrent single appends (a Cluster client pipelines them per node; one pipeline may not span slots)
      await Promise.all(keys.filter(() => Math.random() < 0.7 || i === 19).map((k) => writer.xadd(k, '*', 'type', 'tick', 'event', JSON.stringify({ i }))));
      await sleep(Math.random() * 10);
    }
    // the keys skipped some rounds: top them up to 20
    for (const k of keys) {
      const have = await writer.xlen(k);
      for (let j = have; j < 20; j++) await append(k, 100 + j);
    }
    await Promise.all(following);
    for (const [key, values] of seen) {
      const expected = ((await writer.xrange(key, '-', '+')) as [string, string[]][]).map(([, f]) => JSON.parse(f[3]!).i);
      assert.deepEqual(values, expected.slice(0, 20), key);
    }
  } finally {
    readers.close();
  }
});
