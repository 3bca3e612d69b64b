import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRedis, appendEventsArgs, appendKeys } from '../../platform/redis/client.ts';
import { keys } from '../../platform/redis/keys.ts';
import { createTopic, deps, kafkaClient, produce, randomName, redisClient, waitFor, subscribeFromStart } from '../support/helpers.ts';

test('a message produced to the real broker is consumed back, keyed and with its headers', async () => {
  const topic = randomName('smoke');
  await createTopic(topic, 2);
  await produce(topic, [
    { key: 'acc-1', value: 'hello', headers: { ce_type: 'demo' } },
    { key: 'acc-2', value: 'world' },
  ]);
  const consumer = kafkaClient().consumer({ groupId: randomName('g') });
  await consumer.connect();
  await subscribeFromStart(consumer, topic);
  const seen: { key: string; value: string; type?: string }[] = [];
  await consumer.run({
    eachMessage: async ({ message }) => {
      seen.push({ key: message.key!.toString(), value: message.value!.toString(), type: message.headers?.['ce_type']?.toString() });
    },
  });
  await waitFor(() => seen.length === 2, { timeout: 60_000, message: 'both messages' });
  await consumer.disconnect();
  assert.deepEqual(seen.sort((a, b) => a.key.localeCompare(b.key)), [
    { key: 'acc-1', value: 'hello', type: 'demo' },
    { key: 'acc-2', value: 'world', type: undefined },
  ]);
});

test('entries appended to a real Redis Stream are read back in order after a cursor', async () => {
  const redis = redisClient();
  const key = randomName('{t:test}:stream');
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await redis.xadd(key, '*', 'type', 'demo', 'event', JSON.stringify({ n: i })))!);
  const res = (await redis.xread('COUNT', 10, 'STREAMS', key, ids[1]!)) as [string, [string, string[]][]][];
  assert.deepEqual(
    res[0]![1].map(([id, fields]) => [id, JSON.parse(fields[3]!).n]),
    [[ids[2], 2], [ids[3], 3], [ids[4], 4]],
  );
  await redis.del(key);
  redis.disconnect();
});

test('one append call carries several subscriptions of a tenant: each appends once, a deleted one is reported and left alone', async () => {
  const redis = createRedis(deps().redis, { name: 'test-append' });
  const t = randomName('ten');
  const [live, gone] = ['sub_live', 'sub_gone'];
  const keysOf = (id: string) => appendKeys(t, id, 1);
  await redis.set(keys.subscription(t, live), '{}'); // sub_gone has no record: deleted
  const events = (offsets: number[]) => offsets.map((o) => ({ offset: String(o), dedupId: `/src e${o}`, type: 'demo', json: JSON.stringify({ id: `e${o}` }) }));
  const call = (offsets: number[]) =>
    redis.appendEvents(...appendEventsArgs({ field: 'src/0', maxLen: 1000, hotFromMs: 0, resumableFromMs: 0 }, [
      { keys: keysOf(gone), spec: 'v1', replay: '', events: events(offsets) }, { keys: keysOf(live), spec: 'v1', replay: '', events: events(offsets) },
    ]));
  try {
    assert.deepEqual(await call([10, 11, 12]), [-1, 0, 3, 0]);
    // the batch again (a re-delivery) with one more record: only the new one is appended
    assert.deepEqual(await call([10, 11, 12, 13]), [-1, 0, 1, 3]);
    const raw = await redis.xrange(keys.stream(t, live), '-', '+');
    assert.deepEqual(raw.map(([, f]) => JSON.parse(f[3]!).id), ['e10', 'e11', 'e12', 'e13']);
    // each call's run has consecutive ids, and its mark says where the run came from and how it was matched
    const [ms, seq] = raw[0]![0].split('-').map(Number) as [number, number];
    assert.deepEqual(raw.slice(0, 3).map(([id]) => id), [`${ms}-${seq}`, `${ms}-${seq + 1}`, `${ms}-${seq + 2}`]);
    const marks = await redis.xrange(keys.marks(t, live), '-', '+');
    assert.deepEqual(marks, [
      [raw[0]![0], ['n', '3', 'p', 'src/0', 'f', '10', 't', '12', 'v', 'v1', 'r', '']],
      [raw[3]![0], ['n', '1', 'p', 'src/0', 'f', '13', 't', '13', 'v', 'v1', 'r', '']],
    ]);
    assert.equal(await redis.hget(keys.positions(t, live), '~cold'), '0-0', 'every entry of the stream is marked');
    assert.equal(await redis.exists(keys.stream(t, gone)), 0, 'nothing appended for the deleted subscription');
  } finally {
    await redis.del(...keysOf(live), ...keysOf(gone));
    redis.disconnect();
  }
});
