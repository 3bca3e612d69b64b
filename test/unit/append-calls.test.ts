import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'ioredis';
import { appendEventsArgs, appendEventsCalls, type StreamBatch, type StreamEvent } from '../../platform/redis/client.ts';
import { encodeCommand } from '../../platform/redis/encoded-command.ts';

const event = (i: number): StreamEvent => ({ offset: String(i), dedupId: '', type: 'demo', json: `{"n":${i}}` });
const batch = (id: string, n: number, events = Array.from({ length: n }, (_, i) => event(i))): StreamBatch => ({
  keys: [`${id}:sub`, `${id}:stream`, `${id}:pos`, `${id}:pos`, `${id}:seen1`, `${id}:seen0`, `${id}:marks`, `${id}:dead`],
  spec: `${id}-spec`,
  replay: '',
  events,
});
const target = { field: 't/0', maxLen: 100, hotFromMs: 5, resumableFromMs: 2 };

test('append arguments: the keys, the shared values, each event once in the table, then each batch with its spec, replay and places', () => {
  const [e0, e1] = [event(0), event(1)];
  const setAside = { ...e1, json: '{"shaped":1}', setAside: 'transform failed' };
  const args = appendEventsArgs(target, [batch('a', 1, [e0]), batch('b', 2, [e0, e1]), batch('c', 1, [setAside])]);
  assert.equal(args[0], 24);
  assert.deepEqual(args.slice(1, 25), [...batch('a', 0).keys, ...batch('b', 0).keys, ...batch('c', 0).keys]);
  assert.deepEqual(args.slice(25, 29), ['t/0', '100', '5', '2']);
  assert.match(String(args[29]), /^\d{13}$/, 'now');
  assert.equal(args[30], '100000', 'the dead letters cap');
  // the table: e0 once although two subscriptions get it, then e1, then the set-aside event of its own
  assert.equal(args[31], '3');
  assert.deepEqual(args.slice(32, 44), ['0', '', 'demo', '{"n":0}', '1', '', 'demo', '{"n":1}', '1', '', 'demo', '{"shaped":1}']);
  assert.deepEqual(args.slice(44), ['1', 'a-spec', '', '1', '', '2', 'b-spec', '', '1', '', '2', '', '1', 'c-spec', '', '3', 'transform failed']);
});

test('append calls: a tenant with many subscriptions is split between subscriptions, never inside one, in order', () => {
  const batches = [batch('a', 3), batch('b', 3), batch('c', 10), batch('d', 1)];
  const calls = appendEventsCalls(target, batches, 36);
  // a+b fill 36 values (six an event at most); c alone exceeds the limit and still goes whole; d follows
  assert.deepEqual(calls.map((c) => c[0]), [16, 8, 8]);
  const subsOf = (c: (string | number | Buffer)[]) => (c.slice(1, 1 + Number(c[0])) as string[]).filter((k) => k.endsWith(':sub'));
  assert.deepEqual(calls.map(subsOf), [['a:sub', 'b:sub'], ['c:sub'], ['d:sub']]);
  assert.equal(calls[1]!.length, 1 + 8 + 7 + 40 + 3 + 20);
  assert.deepEqual(appendEventsCalls(target, []), []);
});

test('a command written into one buffer is RESP, as ioredis writes it, for strings and Buffers alike', () => {
  const strings = ['', 'k', 'é', '{"a":"ü€😀"}', 'x'.repeat(300), 'ascii '.repeat(30), '1234567890', 'y'.repeat(64), 'z'.repeat(65)];
  assert.deepEqual(encodeCommand('evalsha', strings), Buffer.from(new Command('evalsha', strings).toWritable({}) as string, 'utf8'));
  const mixed = [...strings, Buffer.from('{"bytes":"ü"}'), Buffer.alloc(0), Buffer.alloc(70_000, 0x61)];
  assert.deepEqual(encodeCommand('evalsha', mixed), expected(mixed));
});

/** RESP, written out by hand */
function expected(args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length + 1}\r\n$7\r\nevalsha\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a, 'utf8') : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}
