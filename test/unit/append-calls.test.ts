import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendEventsArgs, appendEventsCalls, type StreamBatch } from '../../platform/redis/client.ts';

const batch = (id: string, n: number): StreamBatch => ({
  keys: [`${id}:sub`, `${id}:stream`, `${id}:pos`, `${id}:pos`, `${id}:seen1`, `${id}:seen0`, `${id}:marks`, `${id}:dead`],
  spec: `${id}-spec`,
  replay: '',
  events: Array.from({ length: n }, (_, i) => [String(i), `/s e${i}`, 'demo', `{"n":${i}}`, '']).flat(),
});
const target = { field: 't/0', maxLen: 100, hotFromMs: 5, resumableFromMs: 2 };

test('append arguments: the number of keys, eight keys per subscription, then the shared values and each batch counted, with its spec and replay', () => {
  const args = appendEventsArgs(target, [batch('a', 1), batch('b', 2)]);
  assert.equal(args[0], 16);
  assert.deepEqual(args.slice(1, 17), [...batch('a', 1).keys, ...batch('b', 2).keys]);
  assert.deepEqual(args.slice(17, 21), ['t/0', '100', '5', '2']);
  assert.match(String(args[21]), /^\d{13}$/, 'now');
  assert.equal(args[22], '100000', 'the dead letters cap');
  assert.deepEqual(args.slice(23, 26), ['1', 'a-spec', '']);
  assert.deepEqual(args.slice(31, 34), ['2', 'b-spec', '']);
  assert.equal(args.length, 1 + 16 + 6 + 3 + 5 + 3 + 10);
});

test('append calls: a tenant with many subscriptions is split between subscriptions, never inside one, in order', () => {
  const batches = [batch('a', 3), batch('b', 3), batch('c', 10), batch('d', 1)];
  const calls = appendEventsCalls(target, batches, 30);
  // a+b fill 30 values; c alone exceeds the limit and still goes whole; d follows
  assert.deepEqual(calls.map((c) => c[0]), [16, 8, 8]);
  const subsOf = (c: (string | number)[]) => (c.slice(1, 1 + Number(c[0])) as string[]).filter((k) => k.endsWith(':sub'));
  assert.deepEqual(calls.map(subsOf), [['a:sub', 'b:sub'], ['c:sub'], ['d:sub']]);
  assert.equal(calls[1]!.length, 1 + 8 + 6 + 3 + 50);
  assert.deepEqual(appendEventsCalls(target, []), []);
});
