import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSink } from '../src/file-sink.ts';
import type { Delivery } from '../src/handler.ts';

const dirOf = () => mkdtempSync(join(tmpdir(), 'pioneer-sink-'));
const delivery = (n: number, source = '/bank'): Delivery => ({
  cursor: `${1000 + n}-0`,
  event: { specversion: '1.0', id: `e${n}`, source, type: 'payment.sent', time: '2026-01-31T12:00:00Z', data: { n } },
});
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => delivery(from + i));
const lines = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.ndjson'))
    .sort()
    .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));

test('writes one line per event with its cursor, appending to the same file', async () => {
  const dir = dirOf();
  const sink = new FileSink({ dir, clock: () => new Date('2026-01-31T10:00:00Z') });
  await sink.handle(range(0, 3));
  await sink.handle(range(3, 5));
  await sink.close();
  assert.deepEqual(readdirSync(dir), ['events-2026-01-31.000001.ndjson']);
  const got = lines(dir);
  assert.deepEqual(got.map((l) => l.cursor), ['1000-0', '1001-0', '1002-0', '1003-0', '1004-0']);
  assert.deepEqual(got[4].event, delivery(4).event);
});

test('writes the JSON as received when the delivery carries it', async () => {
  const dir = dirOf();
  const sink = new FileSink({ dir });
  await sink.handle([{ ...delivery(1), json: '{"specversion":"1.0","id":"e1","source":"/bank","type":"t","data":{"n":1.50}}' }]);
  await sink.close();
  const [file] = readdirSync(dir);
  assert.equal(readFileSync(join(dir, file!), 'utf8'), '{"cursor":"1001-0","event":{"specversion":"1.0","id":"e1","source":"/bank","type":"t","data":{"n":1.50}}}\n');
});

test('rotates by size without splitting a batch, and by day', async () => {
  const dir = dirOf();
  let now = new Date('2026-01-31T23:59:00Z');
  const sink = new FileSink({ dir, maxFileBytes: 1024, clock: () => now });
  await sink.handle(range(0, 10)); // > 1 KiB in one batch: stays whole, then the file is full
  await sink.handle(range(10, 11));
  now = new Date('2026-02-01T00:00:01Z');
  await sink.handle(range(11, 12));
  await sink.close();
  assert.deepEqual(readdirSync(dir).sort(), ['events-2026-01-31.000001.ndjson', 'events-2026-01-31.000002.ndjson', 'events-2026-02-01.000001.ndjson']);
  assert.equal(readFileSync(join(dir, 'events-2026-01-31.000001.ndjson'), 'utf8').split('\n').filter(Boolean).length, 10);
  assert.deepEqual(lines(dir).map((l) => l.event.id), range(0, 12).map((d) => d.event.id));
  // a restarted sink continues after the newest file, never before it, even if the clock went back
  now = new Date('2026-01-30T00:00:00Z');
  const again = new FileSink({ dir, maxFileBytes: 1024, clock: () => now });
  await again.handle(range(12, 13));
  await again.close();
  assert.deepEqual(lines(dir).map((l) => l.event.id), range(0, 13).map((d) => d.event.id));
});

test('recover reports the events written after the checkpoint, newest last', async () => {
  const dir = dirOf();
  const sink = new FileSink({ dir });
  await sink.handle(range(0, 5));
  await sink.close();
  const held = await new FileSink({ dir }).recover('1002-0', 100);
  assert.deepEqual(held.map((h) => h.cursor), ['1003-0', '1004-0']);
  assert.deepEqual(held[0], { cursor: '1003-0', source: '/bank', id: 'e3', time: '2026-01-31T12:00:00Z' });
  assert.deepEqual(await new FileSink({ dir }).recover('1004-0', 100), []);
  assert.deepEqual((await new FileSink({ dir }).recover(null, 2)).map((h) => h.cursor), ['1003-0', '1004-0'], 'at most limit, the newest');
  assert.equal((await new FileSink({ dir }).recover(null, 100)).length, 5);
});

test('recover cuts a torn last line and keeps the complete ones', async () => {
  const dir = dirOf();
  const sink = new FileSink({ dir });
  await sink.handle(range(0, 4));
  await sink.close();
  const [file] = readdirSync(dir);
  const path = join(dir, file!);
  const whole = statSync(path).size;
  appendFileSync(path, '{"cursor":"1004-0","event":{"specversion":"1.0","id":"e4","sou');
  const held = await new FileSink({ dir }).recover('1001-0', 100);
  assert.deepEqual(held.map((h) => h.cursor), ['1002-0', '1003-0']);
  assert.equal(statSync(path).size, whole, 'the torn line is cut off');
  // the sink then writes the event again on a line of its own
  const again = new FileSink({ dir });
  await again.handle(range(4, 5));
  await again.close();
  assert.deepEqual(lines(dir).map((l) => l.cursor), ['1000-0', '1001-0', '1002-0', '1003-0', '1004-0']);
});

test('recover cuts a torn line at any byte of the last batch', async () => {
  const dir = dirOf();
  const sink = new FileSink({ dir });
  await sink.handle(range(0, 2));
  await sink.close();
  const [file] = readdirSync(dir);
  const path = join(dir, file!);
  const base = readFileSync(path);
  const batch = range(2, 5).map((d) => JSON.stringify({ cursor: d.cursor, event: d.event }) + '\n').join('');
  for (let cut = 0; cut <= batch.length; cut += 7) {
    writeFileSync(path, Buffer.concat([base, Buffer.from(batch.slice(0, cut))]));
    const complete = batch.slice(0, cut).split('\n').length - 1;
    const held = await new FileSink({ dir }).recover('1001-0', 100);
    assert.equal(held.length, complete, `cut at ${cut}`);
    assert.equal(lines(dir).length, 2 + complete);
  }
});

test('recover cuts garbage after the last good line (a crash of the machine), and removes an empty newest file', async () => {
  const dir = dirOf();
  const sink = new FileSink({ dir, maxFileBytes: 1024 });
  await sink.handle(range(0, 10));
  await sink.close();
  const [file] = readdirSync(dir);
  appendFileSync(join(dir, file!), '\0\0\0\0\n\0\0');
  writeFileSync(join(dir, 'events-2026-12-31.000009.ndjson'), '');
  const held = await new FileSink({ dir }).recover('1008-0', 100);
  assert.deepEqual(held.map((h) => h.cursor), ['1009-0']);
  assert.deepEqual(readdirSync(dir), [file]);
  assert.equal(lines(dir).length, 10);
});

test('recover looks past the newest file when the events after the checkpoint span two files', async () => {
  const dir = dirOf();
  const sink = new FileSink({ dir, maxFileBytes: 1024 });
  await sink.handle(range(0, 10));
  await sink.handle(range(10, 12));
  await sink.close();
  assert.equal(readdirSync(dir).length, 2);
  const held = await new FileSink({ dir }).recover('1007-0', 100);
  assert.deepEqual(held.map((h) => h.cursor), ['1008-0', '1009-0', '1010-0', '1011-0']);
});

test('a failed write leaves no partial batch behind', async () => {
  const dir = dirOf();
  const sink = new FileSink({ dir });
  await sink.handle(range(0, 2));
  const bad = { ...delivery(2), json: undefined, event: { ...delivery(2).event, data: { toJSON() { throw new Error('cannot encode'); } } } };
  await assert.rejects(sink.handle([delivery(3), bad as Delivery]));
  await sink.handle(range(2, 4));
  await sink.close();
  assert.deepEqual(lines(dir).map((l) => l.cursor), ['1000-0', '1001-0', '1002-0', '1003-0']);
});
