import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCheckpointStore, parseCheckpoint } from '../src/checkpoint.ts';
import { ConsumerError } from '../src/errors.ts';
import { RecentIds } from '../src/recent-ids.ts';
import { compareCursors } from '../src/cursor.ts';

test('saves and loads a checkpoint, replacing the file whole and leaving no temp file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pioneer-cp-'));
  const store = createCheckpointStore(join(dir, 'sub', 'checkpoint.json'));
  assert.equal(await store.load(), null);
  const cp = { subscription: 'sub_1', cursor: '17-2', updatedAt: '2026-01-31T00:00:00.000Z', lastEventTime: '2026-01-30T23:59:59Z', events: 3, recent: ['/s a', '/s b'] };
  await store.save(cp);
  await store.save({ ...cp, cursor: '18-0', events: 4 });
  assert.deepEqual(await store.load(), { ...cp, cursor: '18-0', events: 4 });
  assert.deepEqual(readdirSync(join(dir, 'sub')), ['checkpoint.json']);
  assert.equal(JSON.parse(readFileSync(join(dir, 'sub', 'checkpoint.json'), 'utf8')).version, 1);
});

test('a corrupt checkpoint is a clear error, not a fresh start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pioneer-cp-'));
  writeFileSync(join(dir, 'checkpoint.json'), '{"version":1,"subscription":"sub_1","cursor":"nope"}');
  await assert.rejects(createCheckpointStore(join(dir, 'checkpoint.json')).load(), (e: ConsumerError) => e.code === 'checkpoint_corrupt' && /cursor/.test(e.message));
  assert.throws(() => parseCheckpoint('{'), (e: ConsumerError) => e.code === 'checkpoint_corrupt');
});

test('the recent-ids window keeps the newest ids up to its capacity', () => {
  const w = new RecentIds(3);
  for (const k of ['a', 'b', 'c', 'a', 'd']) w.add(k);
  assert.deepEqual(w.toArray(), ['b', 'c', 'd']);
  assert.equal(w.has('a'), false);
  assert.equal(w.has('d'), true);
  const big = new RecentIds(10_000);
  for (let i = 0; i < 50_000; i++) big.add(`k${i}`);
  assert.equal(big.size, 10_000);
  assert.equal(big.toArray()[0], 'k40000');
  assert.deepEqual(new RecentIds(2, ['x', 'y', 'z']).toArray(), ['y', 'z']);
});

test('cursors compare by time, then sequence, numerically', () => {
  assert.equal(compareCursors('9-0', '10-0'), -1);
  assert.equal(compareCursors('10-10', '10-9'), 1);
  assert.equal(compareCursors('10-9', '10-9'), 0);
  assert.equal(compareCursors(null, '0-0'), -1);
  assert.equal(compareCursors('18446744073709551615-0', '18446744073709551614-99'), 1);
});
