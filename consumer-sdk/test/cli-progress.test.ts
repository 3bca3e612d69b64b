/**
 * The progress line of `seed` and of `run` while it catches up: drawn on stderr when it is a terminal (or when
 * PIONEER_PROGRESS=always), never when stderr is a file or a pipe, and never tearing the JSON log lines.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  api, cloudEvent, createTenant, createTopic, produce, randomName, routeEnv, sleep, startPlatform, structuredMessage, waitFor,
  type TestPlatform,
} from '../../test/support/helpers.ts';
import { CLI, startCli, waitForLog, type CliProcess } from './cli-process.ts';
import { screen } from './terminal-screen.ts';

const ERASE = '\r\x1b[2K';
const EVENTS = 100_000;

/** An export of EVENTS events as the export function writes it, and its manifest beside it. */
function writeExport(): { file: string; endCursor: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pioneer-export-'));
  const start = Date.now() - 3_600_000;
  const lines: string[] = [];
  let cursor = '';
  for (let n = 0; n < EVENTS; n++) {
    cursor = `${start + Math.floor(n / 10)}-${n % 10}`;
    const event = { specversion: '1.0', id: `e${n}`, source: '/bank/ledger', type: 'payment.sent', tenantid: 'ten_1', data: { n, amount: n * 7 } };
    lines.push(JSON.stringify({ cursor, event }));
  }
  const gz = gzipSync(lines.join('\n') + '\n');
  const file = join(dir, 'export.ndjson.gz');
  writeFileSync(file, gz);
  const manifest = {
    subscription_id: 'sub_01kfwz3m0y8e4h7t2n5q9r6s1a', count: EVENTS, bytes: gz.length, sha256: createHash('sha256').update(gz).digest('hex'),
    start_after: '0-0', end_cursor: cursor,
  };
  writeFileSync(join(dir, 'export.manifest.json'), JSON.stringify(manifest));
  return { file, endCursor: cursor };
}

async function seed(file: string, env: Record<string, string>): Promise<CliProcess & { ms: number }> {
  const started = Date.now();
  const cli = startCli(['seed', '--file', file, '--dir', mkdtempSync(join(tmpdir(), 'pioneer-seed-'))], env);
  const { code } = await cli.exited;
  assert.equal(code, 0, cli.stderr());
  return { ...cli, ms: Date.now() - started };
}

/** Every JSON log line shows whole on a line of its own. */
function assertLogsWhole(lines: string[]) {
  const logs = lines.filter((l) => l.includes('{"time"'));
  assert.ok(logs.length > 0);
  for (const l of logs) assert.doesNotThrow(() => JSON.parse(l), `a log line torn by the progress line: ${JSON.stringify(l)}`);
}

let exp: { file: string; endCursor: string };
before(() => {
  exp = writeExport();
});

test('seed draws its progress in place when forced (PIONEER_PROGRESS=always): phase, events of the total, rate, cursor, what is left', async () => {
  const cli = await seed(exp.file, { PIONEER_PROGRESS: 'always' });
  const raw = cli.stderr();
  const draws = raw.split(ERASE).length - 1 - cli.logs().length;
  assert.ok(draws >= 2 && draws <= cli.ms / 250 + 3, `${draws} draws in ${cli.ms} ms: at most four a second`);
  assert.match(raw, /\r\x1b\[2Kseed verifying {2}[\d,]+ \/ 100,000 events \(\d+%\)  [\d,]+ ev\/s  at \d+-\d  [\d,]+ left/);
  const lines = screen(raw);
  assertLogsWhole(lines);
  const total = lines.filter((l) => l.startsWith('seed '));
  assert.match(total.at(-1)!, new RegExp(`^seed writing {4}100,000 / 100,000 events \\(100%\\)  [\\d,]+ ev/s  at ${exp.endCursor}  0 left$`), 'the final state stays');
  assert.equal(lines.at(-1), '', 'stderr ends with a whole line');
  assert.deepEqual(JSON.parse(cli.stdout()), { subscription: 'sub_01kfwz3m0y8e4h7t2n5q9r6s1a', written: EVENTS, skipped: 0, checkpoint: exp.endCursor });
});

test('seed draws nothing when stderr is not a terminal (auto): only JSON log lines', async () => {
  const cli = await seed(exp.file, {});
  const raw = cli.stderr();
  assert.ok(!raw.includes('\r') && !raw.includes('\x1b'), 'no carriage return, no escape sequence');
  for (const l of raw.split('\n').filter(Boolean)) assert.doesNotThrow(() => JSON.parse(l), l);
  assert.ok(!/ev\/s/.test(raw));
});

test('seed on a real terminal (auto) draws its progress', { skip: !existsSync('/usr/bin/script') && 'no script(1) for a pseudo-terminal' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pioneer-seed-'));
  const cmd = [process.execPath, '--import', 'tsx', CLI, 'seed', '--file', exp.file, '--dir', dir].map((a) => `'${a}'`).join(' ');
  // script(1) runs the command on a pseudo-terminal and copies what it shows to its own stdout
  const out = execFileSync('script', ['-qefc', cmd, '/dev/null'], { cwd: join(CLI, '../../..'), env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', TERM: 'xterm' }, encoding: 'utf8' });
  assert.match(out, /\r\x1b\[2Kseed (verifying|writing) +[\d,]+ \/ 100,000 events/);
  assert.ok(readFileSync(join(dir, 'checkpoint.json'), 'utf8').includes(exp.endCursor));
});

describe('run catching up on a backlog, against the platform', () => {
  let p: TestPlatform;
  const topic = randomName('sdk-progress');
  const BACKLOG = 6000;
  let tenant: Awaited<ReturnType<typeof createTenant>>;
  let sub: string;

  before(async () => {
    await createTopic(topic, 2);
    p = await startPlatform(['subscriptions', 'route', 'gateway'], routeEnv(topic));
    tenant = await createTenant(p.url('subscriptions'), p.adminKey);
    sub = (await api(p.url('subscriptions'), tenant.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] })).body.id as string;
    await sleep(300);
    await produce(topic, Array.from({ length: BACKLOG }, (_, n) => structuredMessage(cloudEvent(tenant.id, 'payment.sent', { n }, { partitionkey: `acct-${n % 7}` }))));
    await waitFor(async () => {
      const r = await api(p.url('gateway'), tenant.key, 'GET', '/v1/stats');
      return r.body.data?.[0]?.buffered === BACKLOG || undefined;
    }, { message: 'the backlog buffered', timeout: 60000 });
  });
  after(async () => p?.stop());

  async function catchUp(env: Record<string, string>) {
    const dir = mkdtempSync(join(tmpdir(), 'pioneer-cli-'));
    const cli = startCli(['run'], {
      PIONEER_URL: p.url('gateway'), PIONEER_API_KEY: tenant.consumerKey, PIONEER_SUBSCRIPTION: sub, PIONEER_DIR: dir,
      PIONEER_MAX_BATCH_EVENTS: '10', ...env,
    });
    await waitForLog(cli, 'connected');
    await waitFor(() => {
      try {
        return (JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8')) as { events: number }).events === BACKLOG || undefined;
      } catch {
        return undefined;
      }
    }, { message: 'the backlog in the files', timeout: 60000 });
    cli.child.kill('SIGTERM');
    const { code } = await cli.exited;
    assert.equal(code, 0, cli.stderr());
    return cli;
  }

  test('run draws how fast it catches up, where it is and how far behind, then its final state (PIONEER_PROGRESS=always)', async () => {
    const cli = await catchUp({ PIONEER_PROGRESS: 'always' });
    const raw = cli.stderr();
    assert.match(raw, /\r\x1b\[2Krun {2}[\d,]+ ev\/s {2}[\d,]+ events this run {2}at \d+-\d+ {2}(\d+ ms|[\d.]+ s|\d+m \d+s|\d+h \d+m) behind/);
    const lines = screen(raw);
    assertLogsWhole(lines);
    const last = lines.filter((l) => l.startsWith('run  ')).at(-1)!;
    assert.match(last, /^run {2}.*6,000 events this run {2}at \d+-\d+/, 'the final state stays');
    assert.match(lines.at(-2)!, /"msg":"stopped gracefully"/, 'the last log line comes after it, whole');
  });

  test('run draws nothing when stderr is not a terminal (auto)', async () => {
    const cli = await catchUp({});
    const raw = cli.stderr();
    assert.ok(!raw.includes('\r') && !raw.includes('\x1b'), 'no carriage return, no escape sequence');
    assert.ok(!/ev\/s/.test(raw));
    for (const l of raw.split('\n').filter(Boolean)) assert.doesNotThrow(() => JSON.parse(l), l);
  });
});
