/**
 * End to end against the real platform: 100,000 events (8 partition keys, per-key sequence numbers) produced
 * to a source topic, routed, and streamed by the pioneer-consumer CLI into FileSink files, while the CLI is
 * killed with SIGKILL at random moments and restarted, and the gateway (a child process of its own) is killed
 * and restarted once. The files must then hold every event exactly once, in stream order.
 *
 * Then a second subscription with the same 100,000 events already buffered is drained by one undisturbed
 * CLI to measure events/s into FileSink and the CLI's peak RSS.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import {
  api, cloudEvent, createTenant, createTopic, killProcess, produce, randomName, redisClient, routeEnv, sleep,
  spawnFunctions, startPlatform, structuredMessage, waitFor, type TestPlatform,
} from '../../test/support/helpers.ts';
import { keys } from '../../platform/redis/keys.ts';
import { compareCursors } from '../src/cursor.ts';
import { buildPackage, startCli, waitForLog, type CliProcess } from './cli-process.ts';

const TOTAL = Number(process.env['SDK_E2E_EVENTS'] ?? 100_000);
const KEYS = 8;
const KILLS = 5;

let p: TestPlatform;
let gateway: { child: ChildProcess; urls: Record<string, string> };
let gatewayEnv: Record<string, string>;
const topic = randomName('sdk-e2e');

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

before(async () => {
  await createTopic(topic, 4);
  p = await startPlatform(['subscriptions', 'route'], routeEnv(topic));
  gatewayEnv = { ...p.env, PIONEER_GATEWAY_PORT: String(await freePort()) };
  gateway = await spawnFunctions(['gateway'], gatewayEnv);
});
after(async () => {
  if (gateway) await killProcess(gateway.child, 'SIGTERM');
  await p?.stop();
});

function cliEnv(apiKey: string, subscription: string, dir: string): Record<string, string> {
  return {
    PIONEER_URL: gateway.urls['gateway']!,
    PIONEER_API_KEY: apiKey,
    PIONEER_SUBSCRIPTION: subscription,
    PIONEER_DIR: dir,
    PIONEER_HEARTBEAT_MS: '1000',
    PIONEER_RETRY_INITIAL_MS: '100',
    PIONEER_RETRY_MAX_MS: '2000',
    PIONEER_PROGRESS_INTERVAL_MS: '2000',
    PIONEER_MAX_FILE_BYTES: String(8 * 1024 * 1024), // several files, so order across rotation is checked too
  };
}

function checkpointEvents(dir: string): number {
  try {
    return (JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8')) as { events: number }).events;
  } catch {
    return 0;
  }
}

function readFiles(dir: string) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.ndjson')).sort();
  const entries: { cursor: string; event: { id: string; partitionkey: string; data: { key: string; seq: number } } }[] = [];
  for (const f of files) for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) if (line) entries.push(JSON.parse(line));
  return { files, entries };
}

test(`${TOTAL} events reach the files exactly once and in order through kill -9 of the consumer and a gateway restart`, async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const subA = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] });
  const subB = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] });
  assert.equal(subA.status, 201);
  assert.equal(subB.status, 201);
  await sleep(300); // the route's subscription index follows within its poll period

  const seq = new Array<number>(KEYS).fill(0);
  const events = Array.from({ length: TOTAL }, (_, i) => {
    const k = i % 7 === 0 ? 0 : i % KEYS; // uneven keys
    const key = `acct-${k}`;
    return cloudEvent(t.id, 'payment.sent', { key, seq: seq[k]!++ }, { id: `ev-${i}`, partitionkey: key });
  });
  const producedAt = Date.now();
  // paced over ~20 s so the kills below land while events stream
  const producing = (async () => {
    const chunk = Math.ceil(TOTAL / 10);
    for (let i = 0; i < TOTAL; i += chunk) {
      await produce(topic, events.slice(i, i + chunk).map(structuredMessage));
      await sleep(1000);
    }
    console.log(`produced ${TOTAL} events in ${Date.now() - producedAt} ms`);
  })();

  // --- chaos: the CLI on subscription A, killed at random moments; the gateway killed and restarted once
  const dirA = mkdtempSync(join(tmpdir(), 'pioneer-e2e-a-'));
  const envA = cliEnv(t.consumerKey, subA.body.id, dirA);
  const kills: string[] = [];
  const runs: CliProcess[] = [];
  let cli: CliProcess = startCli(['run'], envA);
  runs.push(cli);
  for (let k = 0; k < KILLS; k++) {
    await waitForLog(cli, 'connected', 60000);
    const wait = 500 + Math.floor(Math.random() * 2500);
    await sleep(wait);
    if (k === 2) {
      const at = checkpointEvents(dirA);
      await killProcess(gateway.child, 'SIGKILL');
      kills.push(`gateway kill -9 at ${at} events`);
      gateway = await spawnFunctions(['gateway'], gatewayEnv);
      await sleep(500);
    }
    const before = checkpointEvents(dirA);
    await killProcess(cli.child, 'SIGKILL');
    kills.push(`consumer kill -9 after ${wait} ms at ${before} events`);
    cli = startCli(['run'], envA);
    runs.push(cli);
  }
  await producing;
  await waitFor(() => checkpointEvents(dirA) >= TOTAL, { timeout: 240000, interval: 200, message: `all ${TOTAL} events in the files of A` });
  await waitForLog(cli, 'connected'); // its signal handlers are in place
  cli.child.kill('SIGTERM');
  const exit = await cli.exited;
  const reconciled = runs.filter((r) => r.logs().some((l) => /already holds events after the checkpoint/.test(String(l['msg'])))).length;
  const cut = runs.filter((r) => r.logs().some((l) => /torn last line/.test(String(l['msg'])))).length;
  console.log(`kills: ${kills.join('; ')}; restarts that found events in the files beyond the checkpoint: ${reconciled}, that cut a torn line: ${cut}`);
  assert.equal(exit.code, 0, cli.stderr().slice(-2000));
  assert.ok(cli.logs().some((l) => l['msg'] === 'stopped gracefully'));
  assert.ok(kills.filter((k) => k.startsWith('consumer')).length === KILLS);

  const { files, entries } = readFiles(dirA);
  assert.ok(files.length >= 2, `rotated by size: ${files.join(', ')}`);
  assert.equal(entries.length, TOTAL, 'every event exactly once');
  assert.equal(new Set(entries.map((e) => e.event.id)).size, TOTAL, 'no event twice');
  for (let i = 1; i < entries.length; i++) {
    if (compareCursors(entries[i - 1]!.cursor, entries[i]!.cursor) >= 0) assert.fail(`cursor ${entries[i]!.cursor} at line ${i} does not follow ${entries[i - 1]!.cursor}`);
  }
  const byKey = new Map<string, number[]>();
  for (const e of entries) byKey.set(e.event.data.key, [...(byKey.get(e.event.data.key) ?? []), e.event.data.seq]);
  for (let k = 0; k < KEYS; k++) {
    const got = byKey.get(`acct-${k}`) ?? [];
    assert.deepEqual(got, Array.from({ length: seq[k]! }, (_, i) => i), `acct-${k} in source order`);
  }

  // `status` reports where the directory stands
  const status = startCli(['status', '--json'], { PIONEER_DIR: dirA });
  assert.equal((await status.exited).code, 0, status.stderr());
  const st = JSON.parse(status.stdout());
  assert.equal(st.subscription, subA.body.id);
  assert.equal(st.cursor, entries[entries.length - 1]!.cursor);
  assert.equal(st.events, TOTAL);
  assert.deepEqual(st.files.map((f: { name: string }) => f.name), files);
  assert.equal(st.lag, null, 'no server configured: no lag');
  // with the server's URL and key, status asks the server for the lag: caught up, 0 s behind
  const withServer = startCli(['status', '--json'], { PIONEER_DIR: dirA, PIONEER_URL: envA['PIONEER_URL']!, PIONEER_API_KEY: envA['PIONEER_API_KEY']! });
  assert.equal((await withServer.exited).code, 0, withServer.stderr());
  const lag = JSON.parse(withServer.stdout()).lag;
  assert.equal(lag.newestCursor, entries[entries.length - 1]!.cursor, JSON.stringify(lag));
  assert.equal(lag.seconds, 0);
  assert.equal(lag.buffered, TOTAL);

  // --- measurement: subscription B, its 100,000 events already buffered, drained by one CLI
  const redis = redisClient();
  try {
    await waitFor(async () => (await redis.xlen(keys.stream(t.id, subB.body.id))) >= TOTAL, { timeout: 60000, message: 'B buffered' });
  } finally {
    redis.disconnect();
  }
  const dirB = mkdtempSync(join(tmpdir(), 'pioneer-e2e-b-'));
  // measured as published: the compiled package on plain node (no TypeScript loader in the process)
  const compiled = buildPackage(mkdtempSync(join(tmpdir(), 'pioneer-sdk-dist-')));
  const measured = startCli(['run'], { ...cliEnv(t.consumerKey, subB.body.id, dirB), PIONEER_PROGRESS_INTERVAL_MS: '1000' }, { compiled });
  await waitForLog(measured, 'starting', 60000);
  const start = Date.now();
  await waitFor(() => checkpointEvents(dirB) >= TOTAL, { timeout: 240000, interval: 20, message: `all ${TOTAL} events in the files of B` });
  const ms = Date.now() - start;
  const peakKiB = measured.peakRssKiB();
  measured.child.kill('SIGTERM');
  assert.equal((await measured.exited).code, 0);
  assert.equal(readFiles(dirB).entries.length, TOTAL);
  const rates = measured.logs().filter((l) => l['msg'] === 'progress').map((l) => l['events_per_s']);
  console.log(`FileSink: ${TOTAL} events in ${ms} ms = ${Math.round((TOTAL * 1000) / ms)} events/s; peak RSS (VmHWM) of the CLI ${(peakKiB / 1024).toFixed(1)} MiB; progress lines: ${rates.join(', ')} events/s`);
});
