import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendEventsArgs, appendEventsCalls, type StreamBatch } from '../../platform/redis/client.ts';

const batch = (id: string, n: number): StreamBatch => ({
  keys: [`${id}:sub`, `${id}:stream`, `${id}:pos`, `${id}:pos`, `${id}:seen1`, `${id}:seen0`],
  events: Array.from({ length: n }, (_, i) => [String(i), `/s e${i}`, 'demo', `{"n":${i}}`]).flat(),
});

test('append arguments: the number of keys, six keys per subscription, then the shared values and each batch counted', () => {
  const args = appendEventsArgs('t/0', '100', '5', [batch('a', 1), batch('b', 2)]);
  assert.equal(args[0], 12);
  assert.deepEqual(args.slice(1, 13), [...batch('a', 1).keys, ...batch('b', 2).keys]);
  assert.deepEqual(args.slice(13, 16), ['t/0', '100', '5']);
  assert.equal(args[16], '1');
  assert.equal(args[21], '2');
  assert.equal(args.length, 1 + 12 + 3 + 1 + 4 + 1 + 8);
});

test('append calls: a tenant with many subscriptions is split between subscriptions, never inside one, in order', () => {
  const batches = [batch('a', 3), batch('b', 3), batch('c', 10), batch('d', 1)];
  const calls = appendEventsCalls('t/0', '100', '5', batches, 24);
  // a+b fill 24 values; c alone exceeds the limit and still goes whole; d follows
  assert.deepEqual(calls.map((c) => c[0]), [12, 6, 6]);
  const subsOf = (c: (string | number)[]) => (c.slice(1, 1 + Number(c[0])) as string[]).filter((k) => k.endsWith(':sub'));
  assert.deepEqual(calls.map(subsOf), [['a:sub', 'b:sub'], ['c:sub'], ['d:sub']]);
  assert.equal(calls[1]!.length, 1 + 6 + 3 + 1 + 40);
  assert.deepEqual(appendEventsCalls('t/0', '100', '5', []), []);
});
