import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTopic, deps, kafkaClient, produce, randomName, redisClient, waitFor } from '../support/helpers.ts';

test('a message produced to the real broker is consumed back, keyed and with its headers', async () => {
  const topic = randomName('smoke');
  await createTopic(topic, 2);
  await produce(topic, [
    { key: 'acc-1', value: 'hello', headers: { ce_type: 'demo' } },
    { key: 'acc-2', value: 'world' },
  ]);
  const consumer = kafkaClient().consumer({ groupId: randomName('g') });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen: { key: string; value: string; type?: string }[] = [];
  await consumer.run({
    eachMessage: async ({ message }) => {
      seen.push({ key: message.key!.toString(), value: message.value!.toString(), type: message.headers?.['ce_type']?.toString() });
    },
  });
  await waitFor(() => seen.length === 2, { message: 'both messages' });
  await consumer.disconnect();
  assert.deepEqual(seen.sort((a, b) => a.key.localeCompare(b.key)), [
    { key: 'acc-1', value: 'hello', type: 'demo' },
    { key: 'acc-2', value: 'world', type: undefined },
  ]);
});

test('entries appended to a real Redis Stream are read back in order after a cursor', async () => {
  const redis = redisClient(deps().redisUrl);
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
