/**
 * The progress line: drawn only on a terminal (or when forced), at most once per interval, never tearing the log
 * lines that share the stream; and the lines `seed` and `run` draw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ERASE_LINE, formatDuration, parseProgressMode, startTerminalProgress, type ProgressStream } from '../src/terminal-progress.ts';
import { runProgressLine, seedProgressLine } from '../src/progress-lines.ts';
import { ConsumerError } from '../src/errors.ts';
import type { SeedProgress } from '../src/seed.ts';
import type { ConsumerStats } from '../src/consumer.ts';
import { screen } from './terminal-screen.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function stream(isTTY: boolean, columns?: number): ProgressStream & { out: string } {
  const s = { out: '', isTTY, ...(columns ? { columns } : {}), write: (chunk: string) => void (s.out += chunk) };
  return s;
}

test('PIONEER_PROGRESS is auto, always or never; anything else names the variable', () => {
  assert.equal(parseProgressMode(undefined), 'auto');
  assert.equal(parseProgressMode(''), 'auto');
  assert.equal(parseProgressMode(' Always '), 'always');
  assert.equal(parseProgressMode('never'), 'never');
  assert.throws(() => parseProgressMode('yes'), (e: ConsumerError) => e.code === 'bad_config' && /^PIONEER_PROGRESS: must be auto, always or never, got "yes"$/.test(e.message));
});

test('auto draws nothing on a stream that is not a terminal, and log lines pass through untouched', async () => {
  for (const [mode, isTTY] of [['auto', false], ['never', true]] as const) {
    const s = stream(isTTY);
    const p = startTerminalProgress({ stream: s, mode, render: () => 'seed 1 / 2 events', intervalMs: 10 });
    p.log('{"msg":"a"}\n');
    await sleep(50);
    p.stop();
    assert.equal(p.enabled, false);
    assert.equal(s.out, '{"msg":"a"}\n', `${mode} on ${isTTY ? 'a terminal' : 'a pipe'}`);
  }
});

test('on a terminal the line is redrawn in place at most once per interval, and log lines come out whole above it', async () => {
  const s = stream(true);
  let n = 0;
  const p = startTerminalProgress({ stream: s, mode: 'auto', render: () => `seed ${++n} events`, intervalMs: 50 });
  const started = Date.now();
  await sleep(120);
  p.log('{"msg":"one"}\n');
  await sleep(140);
  p.stop();
  const elapsed = Date.now() - started;
  const draws = s.out.split(ERASE_LINE).length - 1 - 1; // less the one the log line caused
  assert.ok(draws >= 3 && draws <= elapsed / 50 + 2, `${draws} draws in ${elapsed} ms at most one per 50 ms`);
  const lines = screen(s.out);
  assert.deepEqual(lines.slice(0, -1).filter((l) => !l.startsWith('seed ')), ['{"msg":"one"}'], 'the log line whole, on its own line');
  assert.equal(lines.at(-1), '', 'stop() ended the last line');
  assert.equal(lines.at(-2), `seed ${n} events`, 'the final state stays');
  const count = s.out.length;
  p.log('{"msg":"after"}\n');
  assert.equal(s.out.slice(count), '{"msg":"after"}\n', 'after stop() nothing is drawn');
});

test('a line wider than the terminal is cut to fit, so that the carriage return redraws all of it', async () => {
  const s = stream(true, 20);
  const p = startTerminalProgress({ stream: s, mode: 'always', render: () => 'x'.repeat(50), intervalMs: 10 });
  await sleep(30);
  p.stop();
  assert.deepEqual(screen(s.out), ['x'.repeat(19), '']);
});

test('the seed line: phase, events read of the total, rate, cursor, what is left and about how long', () => {
  let t = 1_000_000;
  let p: SeedProgress | null = null;
  const line = seedProgressLine(() => p, () => t);
  assert.equal(line(), '');
  t += 1000;
  p = { phase: 'verifying', read: 50_000, total: 200_000, written: 0, skipped: 0, cursor: '1767225600123-4' };
  assert.equal(line(), 'seed verifying  50,000 / 200,000 events (25%)  50,000 ev/s  at 1767225600123-4  150,000 left, about 3.0 s');
  t += 2000;
  p = { phase: 'writing', read: 40_000, total: 200_000, written: 39_000, skipped: 1000, cursor: '1767225600200-0' };
  assert.equal(line(), 'seed writing    40,000 / 200,000 events (20%)  20,000 ev/s  at 1767225600200-0  160,000 left, about 8.0 s  1,000 already held');
});

test('the run line: rate and how far behind while events stream, then waiting once they stop', () => {
  const cursorAt = 1_767_225_600_000;
  let t = cursorAt + 60_000;
  let s: ConsumerStats = { cursor: null, lastEventTime: null, handled: 0, duplicatesDropped: 0, reconnects: 0, batches: 0 };
  const line = runProgressLine(() => s, { now: () => t, idleMs: 2000 });
  assert.equal(line(), 'run  waiting for events  0 events this run  at the start of the buffer');
  t += 500;
  s = { ...s, cursor: `${cursorAt}-7`, handled: 6000, batches: 12 };
  assert.equal(line(), `run  12,000 ev/s  6,000 events this run  at ${cursorAt}-7  1m 00s behind`);
  t += 3000;
  s = { ...s, reconnects: 1 };
  assert.equal(line(), `run  waiting for events  6,000 events this run  at ${cursorAt}-7 (stored 1m 03s ago)  1 reconnect`);
});

test('durations read as people say them', () => {
  assert.deepEqual([850, 12_340, 192_000, 7_500_000].map(formatDuration), ['850 ms', '12.3 s', '3m 12s', '2h 05m']);
});
