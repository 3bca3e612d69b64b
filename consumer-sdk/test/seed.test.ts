/**
 * Seeding a consumer from an export: `pioneer-consumer seed` against a real export, then `run` continues live
 * with no gap and no duplicate; a replay's re-delivered events are not taken for duplicates; seeding refuses a
 * file that does not match its manifest and a checkpoint that is ahead, with a non-zero exit.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  api, cloudEvent, createTenant, createTopic, produce, randomName, routeEnv, sleep, startPlatform, structuredMessage,
  waitFor, type TestPlatform,
} from '../../test/support/helpers.ts';
import { startCli } from './cli-process.ts';
import { seedFromExport, type ExportManifest } from '../src/seed.ts';
import { ConsumerError } from '../src/errors.ts';
import { createCheckpointStore } from '../src/checkpoint.ts';

let p: TestPlatform;
const topic = randomName('sdk-seed');

before(async () => {
  await createTopic(topic, 3);
  p = await startPlatform(['subscriptions', 'route', 'gateway', 'export'], {
    ...routeEnv(topic),
    PIONEER_EXPORT_DIR: mkdtempSync(join(tmpdir(), 'pioneer-exports-')),
  });
});
after(async () => p?.stop());

function sinkLines(dir: string): { cursor: string; event: any }[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.ndjson'))
    .sort()
    .flatMap((n) => readFileSync(join(dir, n), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
}

async function stream(key: string, sub: string): Promise<{ cursor: string; event: any }[]> {
  const out: { cursor: string; event: any }[] = [];
  let after: string | undefined;
  for (;;) {
    const r = await api(p.url('gateway'), key, 'GET', `/v1/subscriptions/${sub}/events?limit=1000${after ? `&after=${after}` : ''}`);
    out.push(...r.body.data);
    if (!r.body.has_more) return out;
    after = r.body.next_cursor;
  }
}
const streamLength = async (key: string, sub: string) => (await stream(key, sub)).length;

const events = (t: string, from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => structuredMessage(cloudEvent(t, 'payment.sent', { n: from + i }, { partitionkey: `acct-${(from + i) % 5}` })));

test('seed from an export, then run continues live: every event once, in order; a later replay is delivered, not dropped', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const created = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] });
  const sub = created.body.id as string;
  await sleep(300);
  await produce(topic, events(t.id, 0, 300));
  await waitFor(async () => (await streamLength(t.key, sub)) === 300, { message: 'the first 300 events' });

  const exp = await api(p.url('export'), t.key, 'POST', '/v1/exports', { subscription_id: sub });
  assert.equal(exp.status, 202);
  const done = await waitFor(async () => {
    const r = await api(p.url('export'), t.key, 'GET', `/v1/exports/${exp.body.id}`);
    return r.body.status === 'completed' ? r.body : undefined;
  }, { message: 'the export' });
  const work = mkdtempSync(join(tmpdir(), 'pioneer-seed-'));
  const file = join(work, 'export.ndjson.gz');
  const res = await fetch(`${p.url('export')}/v1/exports/${exp.body.id}/file`, { headers: { authorization: `Bearer ${t.consumerKey}` } });
  writeFileSync(file, Buffer.from(await res.arrayBuffer()));
  const manifestPath = join(work, 'manifest.json');
  writeFileSync(manifestPath, JSON.stringify(done));

  // events after the export: the consumer must get them live, after the seeded ones
  const afterExport = new Date().toISOString();
  await produce(topic, events(t.id, 300, 500));
  await waitFor(async () => (await streamLength(t.key, sub)) === 500, { message: 'the next 200 events' });

  const dir = join(work, 'consumer');
  const seed = startCli(['seed', '--file', file, '--manifest', manifestPath], { PIONEER_DIR: dir, PIONEER_SUBSCRIPTION: sub });
  const seeded = await seed.exited;
  assert.equal(seeded.code, 0, seed.stderr());
  assert.deepEqual(JSON.parse(seed.stdout()), { subscription: sub, written: 300, skipped: 0, checkpoint: done.manifest.end_cursor });
  assert.equal(sinkLines(dir).length, 300);

  const run = startCli(['run'], {
    PIONEER_URL: p.url('gateway'), PIONEER_API_KEY: t.consumerKey, PIONEER_SUBSCRIPTION: sub, PIONEER_DIR: dir,
    PIONEER_HEARTBEAT_MS: '1000', PIONEER_MAX_BATCH_WAIT_MS: '20',
  });
  try {
    await waitFor(() => sinkLines(dir).length >= 500, { timeout: 30000, message: `500 events in the sink; stderr:\n${run.stderr().slice(-2000)}` });
    await sleep(300); // nothing more may come
    const lines = sinkLines(dir);
    assert.equal(lines.length, 500);
    // exactly the subscription's stream, in its order: the seeded 300, then the 200 live ones
    const expected = await stream(t.key, sub);
    assert.deepEqual(lines.map((l) => l.cursor), expected.map((e) => e.cursor), 'every event once, in stream order');
    assert.deepEqual(lines.map((l) => l.event), expected.map((e) => e.event));
    assert.deepEqual(lines.map((l) => l.event.data.n).sort((a, b) => a - b), [...Array(500).keys()]);
    assert.deepEqual(lines.slice(0, 300).map((l) => l.event.data.n).sort((a, b) => a - b), [...Array(300).keys()], 'the seeded ones first');
    assert.equal(lines[299]!.cursor, done.manifest.end_cursor);

    // a replay of the events after the export: re-delivered with the same ids, and handed over again
    const replay = await api(p.url('export'), t.key, 'POST', `/v1/subscriptions/${sub}/replay`, { since: afterExport });
    assert.equal(replay.status, 202, JSON.stringify(replay.body));
    await waitFor(() => sinkLines(dir).length >= 700, { timeout: 60000, message: `the replayed events in the sink; stderr:\n${run.stderr().slice(-2000)}` });
    const all = sinkLines(dir);
    assert.equal(all.length, 700);
    const replayed = all.slice(500);
    assert.ok(replayed.every((l) => l.event.pioneerreplay === replay.body.id));
    assert.deepEqual(replayed.map((l) => l.event.data.n).sort((a, b) => a - b), [...Array(200).keys()].map((i) => 300 + i));
    assert.deepEqual(new Set(replayed.map((l) => l.event.id)), new Set(all.slice(300, 500).map((l) => l.event.id)));
  } finally {
    run.child.kill('SIGTERM');
    assert.equal((await run.exited).code, 0, run.stderr());
  }

  // seeding again over this consumer, whose checkpoint is now ahead of the export: refused, nothing written
  const again = startCli(['seed', '--file', file, '--manifest', manifestPath], { PIONEER_DIR: dir });
  assert.equal((await again.exited).code, 6, again.stderr());
  const err = again.logs().at(-1)!;
  assert.equal(err['code'], 'seed_conflict');
  assert.match(String(err['msg']), /ahead of the export's end/);
  assert.equal(sinkLines(dir).length, 700);
});

/** A small export made by hand: lines, file, manifest. */
function fakeExport(dir: string, n: number): { file: string; manifest: ExportManifest } {
  const lines = Array.from({ length: n }, (_, i) => `{"cursor":"${1767225600000 + i}-0","event":{"specversion":"1.0","id":"e${i}","source":"/t","type":"x","data":{"n":${i}}}}\n`);
  const gz = gzipSync(lines.join(''));
  const file = join(dir, 'exp.ndjson.gz');
  writeFileSync(file, gz);
  const manifest: ExportManifest = {
    subscription_id: 'sub_x', count: n, bytes: gz.length, sha256: createHash('sha256').update(gz).digest('hex'), start_after: '0-0', end_cursor: `${1767225600000 + n - 1}-0`,
  };
  return { file, manifest };
}

test('seed refuses a file that does not match its manifest, and a checkpoint ahead of or behind the export, writing nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pioneer-seed-'));
  const { file, manifest } = fakeExport(dir, 5);
  const refused = async (m: Partial<ExportManifest>, code: string, re: RegExp, sinkDir = join(dir, 'c')) => {
    await assert.rejects(seedFromExport({ file, manifest: { ...manifest, ...m } as ExportManifest, dir: sinkDir }), (err: unknown) => {
      assert.ok(err instanceof ConsumerError);
      assert.equal(err.code, code);
      assert.match(err.message, re);
      return true;
    });
  };
  await refused({ sha256: 'a'.repeat(64) }, 'seed_invalid', /sha256 .* does not match/);
  await refused({ count: 6, bytes: undefined as unknown as number }, 'seed_invalid', /sha256|holds 5 events/);
  await refused({ bytes: 1 }, 'seed_invalid', /has \d+ bytes, the manifest says 1/);
  await refused({ subscription_id: 'sub_x', end_cursor: '1-0' }, 'seed_invalid', /ends at .*end_cursor is 1-0/);
  assert.equal(existsSync(join(dir, 'c')), false, 'nothing written');

  // a manifest next to the file, the default
  writeFileSync(join(dir, 'exp.manifest.json'), JSON.stringify(manifest));
  const ok = await seedFromExport({ file, dir: join(dir, 'ok') });
  assert.deepEqual(ok, { subscription: 'sub_x', written: 5, skipped: 0, endCursor: manifest.end_cursor });
  const cp = await createCheckpointStore(join(dir, 'ok', 'checkpoint.json')).load();
  assert.equal(cp?.cursor, manifest.end_cursor);
  assert.equal(cp?.recent.length, 5);
  // again: the checkpoint is at the end already, nothing new, nothing written twice
  assert.deepEqual(await seedFromExport({ file, dir: join(dir, 'ok') }), { subscription: 'sub_x', written: 0, skipped: 5, endCursor: manifest.end_cursor });
  assert.equal(sinkLines(join(dir, 'ok')).length, 5);

  // a checkpoint behind the export's start would leave a gap
  const store = createCheckpointStore(join(dir, 'gap', 'checkpoint.json'));
  await store.save({ subscription: 'sub_x', cursor: '5-0', updatedAt: new Date().toISOString(), lastEventTime: null, events: 1, recent: [] });
  await refused({ start_after: '1767225600003-0' }, 'seed_invalid', /is not after the one before it/, join(dir, 'gap'));
  const gapManifest = { ...manifest, start_after: '100-0' };
  await assert.rejects(seedFromExport({ file, manifest: gapManifest, dir: join(dir, 'gap') }), /leave a gap/);
  // another subscription's checkpoint
  await assert.rejects(seedFromExport({ file, manifest: { ...manifest, subscription_id: 'sub_y' }, dir: join(dir, 'ok') }), /belongs to subscription sub_x/);
});
