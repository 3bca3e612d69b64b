/**
 * pioneer-consumer as a single executable (consumer-sdk/scripts/build-binary.sh, `make consumer-binary`), run
 * with no Node.js to find: PATH is an empty directory and the executable is started by its absolute path.
 * It answers --help, bad flags and `status` exactly as the CLI run from its sources does, prints no warning of
 * Node's (experimental SEA, rejected code cache) even with the heap flags the README suggests in NODE_OPTIONS,
 * and against the real platform it seeds from a downloaded export, runs, is killed with SIGKILL mid-stream,
 * runs again (with the heap caps the image sets): the files then hold every event of the subscription once, in
 * stream order.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  api, cloudEvent, createTenant, createTopic, killProcess, produce, randomName, ROOT, routeEnv, sleep, startPlatform,
  structuredMessage, waitFor, type TestPlatform,
} from '../../test/support/helpers.ts';
import { compareCursors } from '../src/cursor.ts';
import { startCli, waitForLog, type CliProcess } from './cli-process.ts';

const SEEDED = 300;
const LIVE = 6000;
/** the heap caps of the README's *Memory*, which the image (consumer-sdk/Dockerfile) sets too */
const HEAP_CAPS = '--max-old-space-size=64 --max-semi-space-size=4';

let p: TestPlatform;
let executable: string;
/** where the executable is built: 95 MiB, removed after the tests */
const out = mkdtempSync(join(tmpdir(), 'pioneer-sea-'));
/** a PATH with nothing on it: no node, no shell, no tool */
const emptyPath = mkdtempSync(join(tmpdir(), 'pioneer-empty-path-'));
const topic = randomName('sdk-sea');

before(async () => {
  const started = Date.now();
  execFileSync('bash', [join(ROOT, 'consumer-sdk/scripts/build-binary.sh'), out], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  executable = join(out, 'pioneer-consumer');
  console.log(`built ${executable}: ${(statSync(executable).size / 1048576).toFixed(1)} MiB in ${Date.now() - started} ms`);
  await createTopic(topic, 3);
  p = await startPlatform(['subscriptions', 'route', 'gateway', 'export'], {
    ...routeEnv(topic),
    PIONEER_EXPORT_DIR: mkdtempSync(join(tmpdir(), 'pioneer-exports-')),
  });
});
after(async () => {
  await p?.stop();
  rmSync(out, { recursive: true, force: true });
});

/** The executable, alone: PATH holds nothing, HOME is a fresh directory. */
function startBinary(args: string[], env: Record<string, string> = {}): CliProcess {
  return startCli(args, { PATH: emptyPath, HOME: mkdtempSync(join(tmpdir(), 'pioneer-home-')), ...env }, { executable });
}

/** What a user sees of a finished command: status, stdout, stderr with the log lines' times taken out. */
async function seen(c: CliProcess) {
  const { code } = await c.exited;
  return { code, stdout: c.stdout(), stderr: c.stderr().replace(/"time":"[^"]*"/g, '"time":…') };
}

function sinkLines(dir: string): { cursor: string; event: any }[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.ndjson'))
    .sort()
    .flatMap((n) => readFileSync(join(dir, n), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
}

function checkpointEvents(dir: string): number {
  try {
    return (JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8')) as { events: number }).events;
  } catch {
    return 0;
  }
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

const events = (t: string, from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => structuredMessage(cloudEvent(t, 'payment.sent', { n: from + i }, { id: `ev-${from + i}`, partitionkey: `acct-${(from + i) % 5}` })));

test('the executable runs with no node on PATH and says what the CLI says, without warnings of its own', async () => {
  assert.throws(() => execFileSync('node', ['--version'], { env: { PATH: emptyPath } }), /ENOENT/, 'no node to be found on that PATH');
  const status = mkdtempSync(join(tmpdir(), 'pioneer-sea-status-'));
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const cases: [string, string[], Record<string, string>][] = [
    ['--help', ['--help'], {}],
    ['no command', [], {}],
    ['an unknown command', ['rerun'], {}],
    ['a bad flag value', ['run', '--url', 'http://127.0.0.1:1', '--subscription', 'sub_x', '--dir', status, '--max-batch-events', 'many'], { PIONEER_API_KEY: 'pk_x' }],
    ['run without a URL', ['run', '--dir', status], {}],
    ['seed of a file that is not there', ['seed', '--file', join(status, 'nothing.ndjson.gz'), '--dir', status], {}],
    ['status of an empty directory', ['status', '--dir', status, '--json'], {}],
    // over the network: another function's URL is no gateway (2), a key the gateway refuses (3)
    ['run against the subscriptions function', ['run', '--dir', status], { PIONEER_URL: p.url('subscriptions'), PIONEER_API_KEY: t.key, PIONEER_SUBSCRIPTION: 'sub_x' }],
    ['run with a refused key', ['run', '--dir', status], { PIONEER_URL: p.url('gateway'), PIONEER_API_KEY: 'pk_nobody', PIONEER_SUBSCRIPTION: 'sub_x' }],
  ];
  const results: (number | null)[] = [];
  for (const [what, args, env] of cases) {
    const binary = await seen(startBinary(args, env));
    const sources = await seen(startCli(args, env));
    assert.deepEqual(binary, sources, `${what}: the executable and the CLI from its sources differ`);
    results.push(binary.code);
  }
  assert.deepEqual(results, [0, 2, 2, 2, 2, 6, 0, 2, 3]);
  const help = await seen(startBinary(['--help']));
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^pioneer-consumer — pull a Pioneer subscription into NDJSON files\n/);
  assert.equal(help.stderr, '');

  // the memory caps of the README's *Memory*, through NODE_OPTIONS as for node itself: honoured, and quiet
  const capped = startBinary(['status', '--dir', status], { NODE_OPTIONS: HEAP_CAPS });
  assert.deepEqual(await seen(capped), { code: 0, stdout: (await seen(startCli(['status', '--dir', status], {}))).stdout, stderr: '' });
  const refused = await seen(startBinary(['--help'], { NODE_OPTIONS: '--no-such-flag' }));
  assert.notEqual(refused.code, 0, 'NODE_OPTIONS reaches the executable');
});

test(`seed from a downloaded export, run, kill -9 mid-stream, run again: ${SEEDED + LIVE} events once and in order, all by the executable`, async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const created = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] });
  assert.equal(created.status, 201);
  const sub = created.body.id as string;
  await sleep(300); // the route's subscription index follows within its poll period
  await produce(topic, events(t.id, 0, SEEDED));
  await waitFor(async () => (await stream(t.key, sub)).length === SEEDED, { message: `the first ${SEEDED} events` });

  // the export, as a user gets it: POST /v1/exports, the manifest once completed, the file
  const exp = await api(p.url('export'), t.key, 'POST', '/v1/exports', { subscription_id: sub });
  assert.equal(exp.status, 202, JSON.stringify(exp.body));
  const done = await waitFor(async () => {
    const r = await api(p.url('export'), t.key, 'GET', `/v1/exports/${exp.body.id}`);
    return r.body.status === 'completed' ? r.body : undefined;
  }, { message: 'the export' });
  const work = mkdtempSync(join(tmpdir(), 'pioneer-sea-seed-'));
  const file = join(work, 'export.ndjson.gz');
  const res = await fetch(`${p.url('export')}/v1/exports/${exp.body.id}/file`, { headers: { authorization: `Bearer ${t.consumerKey}` } });
  assert.equal(res.status, 200);
  writeFileSync(file, Buffer.from(await res.arrayBuffer()));
  writeFileSync(join(work, 'manifest.json'), JSON.stringify(done));

  const dir = join(work, 'consumer');
  const seed = startBinary(['seed', '--file', file, '--manifest', join(work, 'manifest.json')], { PIONEER_DIR: dir, PIONEER_SUBSCRIPTION: sub, NODE_OPTIONS: HEAP_CAPS });
  const seeded = await seen(seed);
  assert.equal(seeded.code, 0, seeded.stderr);
  assert.deepEqual(JSON.parse(seeded.stdout), { subscription: sub, written: SEEDED, skipped: 0, checkpoint: done.manifest.end_cursor });
  assert.equal(sinkLines(dir).length, SEEDED);

  // live events arrive while the executable runs: paced so that the kill lands mid-stream
  const producing = (async () => {
    const chunk = LIVE / 6;
    for (let i = SEEDED; i < SEEDED + LIVE; i += chunk) {
      await produce(topic, events(t.id, i, i + chunk));
      await sleep(700);
    }
  })();
  const env = {
    PIONEER_URL: p.url('gateway'), PIONEER_API_KEY: t.consumerKey, PIONEER_SUBSCRIPTION: sub, PIONEER_DIR: dir,
    PIONEER_HEARTBEAT_MS: '1000', PIONEER_RETRY_INITIAL_MS: '100', PIONEER_RETRY_MAX_MS: '1000', PIONEER_MAX_BATCH_WAIT_MS: '20',
    PIONEER_MAX_BATCH_EVENTS: '100', PIONEER_PROGRESS_INTERVAL_MS: '1000', NODE_OPTIONS: HEAP_CAPS,
  };
  const first = startBinary(['run'], env);
  await waitForLog(first, 'connected');
  assert.equal(readlinkSync(`/proc/${first.child.pid}/exe`), executable, 'the process is the executable itself, not a node');
  await waitFor(() => checkpointEvents(dir) >= SEEDED + 1000, { timeout: 30000, interval: 20, message: `1000 live events; stderr:\n${first.stderr().slice(-2000)}` });
  const killedAt = checkpointEvents(dir);
  await killProcess(first.child, 'SIGKILL');
  assert.ok(killedAt < SEEDED + LIVE, `killed mid-stream (at ${killedAt} of ${SEEDED + LIVE} events)`);

  const second = startBinary(['run'], env);
  try {
    await producing;
    await waitFor(() => checkpointEvents(dir) >= SEEDED + LIVE, { timeout: 60000, interval: 50, message: `all events in the files; stderr:\n${second.stderr().slice(-2000)}` });
    await waitForLog(second, 'connected');
    await sleep(300); // nothing more may come
  } finally {
    second.child.kill('SIGTERM');
  }
  const stopped = await second.exited;
  assert.equal(stopped.code, 0, second.stderr().slice(-2000));
  assert.ok(second.logs().some((l) => l['msg'] === 'stopped gracefully'));
  for (const run of [seed, first, second]) assert.doesNotMatch(run.stderr(), /Warning|experimental/i, 'no warning of Node\'s in the logs');

  const lines = sinkLines(dir);
  const expected = await stream(t.key, sub);
  assert.equal(expected.length, SEEDED + LIVE);
  assert.equal(lines.length, SEEDED + LIVE, `every event once (killed at ${killedAt})`);
  assert.deepEqual(lines.map((l) => l.cursor), expected.map((e) => e.cursor), 'exactly the stream, in its order');
  assert.deepEqual(lines.map((l) => l.event), expected.map((e) => e.event));
  for (let i = 1; i < lines.length; i++) assert.ok(compareCursors(lines[i - 1]!.cursor, lines[i]!.cursor) < 0);
  assert.deepEqual(lines.map((l) => l.event.data.n).sort((a, b) => a - b), [...Array(SEEDED + LIVE).keys()]);
  assert.deepEqual(lines.slice(0, SEEDED).map((l) => l.event.data.n).sort((a, b) => a - b), [...Array(SEEDED).keys()], 'the seeded ones first');
  for (let k = 0; k < 5; k++) {
    const ns = lines.filter((l) => l.event.partitionkey === `acct-${k}`).map((l) => l.event.data.n);
    assert.deepEqual(ns, [...ns].sort((a, b) => a - b), `acct-${k} in source order`);
  }

  // status, by the executable, with the server's lag
  const status = await seen(startBinary(['status', '--json'], { PIONEER_DIR: dir, PIONEER_URL: p.url('gateway'), PIONEER_API_KEY: t.consumerKey }));
  assert.equal(status.code, 0, status.stderr);
  const st = JSON.parse(status.stdout);
  assert.equal(st.subscription, sub);
  assert.equal(st.cursor, expected.at(-1)!.cursor);
  assert.equal(st.events, SEEDED + LIVE);
  assert.equal(st.lag.seconds, 0);
  console.log(`seeded ${SEEDED}, killed -9 at ${killedAt}, resumed to ${SEEDED + LIVE}; peak RSS of the executable ${(second.peakRssKiB() / 1024).toFixed(1)} MiB`);
});
