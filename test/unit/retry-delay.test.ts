import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_RETRY_SCHEDULE, parseDurations, parseRetryAfter, retryDelay } from '../../platform/webhooks/retry-delay.ts';

const schedule = parseDurations('0,5s,5m,30m,2h');
const base = { schedule, jitter: 0, random: 0.5, maxRetryAfterMs: 86_400_000, retryAfterMs: null };

test('durations parse with units, a bare number is milliseconds, garbage names the item', () => {
  assert.deepEqual(parseDurations('0, 250ms,5s,5m,2h,1d,1.5s,40'), [0, 250, 5000, 300_000, 7_200_000, 86_400_000, 1500, 40]);
  assert.throws(() => parseDurations('5s,soon'), /'soon' is not a duration/);
});

test('the default schedule has 10 attempts and spans more than 72 hours', () => {
  const s = parseDurations(DEFAULT_RETRY_SCHEDULE);
  assert.equal(s.length, 10);
  assert.equal(s[0], 0);
  const total = s.reduce((a, b) => a + b, 0);
  assert.ok(total > 72 * 3_600_000, `spans ${total / 3_600_000} h`);
});

test('without jitter the delay after attempt n is the schedule entry n; past the end there is none', () => {
  assert.equal(retryDelay({ ...base, attempts: 1 }), 5000);
  assert.equal(retryDelay({ ...base, attempts: 2 }), 300_000);
  assert.equal(retryDelay({ ...base, attempts: 4 }), 7_200_000);
  assert.equal(retryDelay({ ...base, attempts: 5 }), null);
  assert.equal(retryDelay({ ...base, attempts: 50 }), null);
});

test('jitter spreads the delay within ±jitter and never below zero', () => {
  assert.equal(retryDelay({ ...base, attempts: 1, jitter: 0.2, random: 0 }), 4000);
  assert.equal(retryDelay({ ...base, attempts: 1, jitter: 0.2, random: 0.5 }), 5000);
  assert.equal(retryDelay({ ...base, attempts: 1, jitter: 0.2, random: 0.999999 }), 6000);
  assert.equal(retryDelay({ ...base, attempts: 1, jitter: 5, random: 0 }), 0); // jitter capped at 100 %
  for (let i = 0; i < 200; i++) {
    const d = retryDelay({ ...base, attempts: 2, jitter: 0.2, random: Math.random() })!;
    assert.ok(d >= 240_000 && d <= 360_000, String(d));
  }
});

test('Retry-After is a floor, capped at the longest honoured; a shorter one does not hurry the schedule', () => {
  assert.equal(retryDelay({ ...base, attempts: 1, retryAfterMs: 60_000 }), 60_000);
  assert.equal(retryDelay({ ...base, attempts: 1, retryAfterMs: 1000 }), 5000);
  assert.equal(retryDelay({ ...base, attempts: 1, retryAfterMs: 10 * 86_400_000, maxRetryAfterMs: 3_600_000 }), 3_600_000);
  // an exhausted schedule stays exhausted whatever the endpoint asks
  assert.equal(retryDelay({ ...base, attempts: 5, retryAfterMs: 1000 }), null);
});

test('Retry-After parses delay-seconds and HTTP dates; anything else is ignored', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('120', now), 120_000);
  assert.equal(parseRetryAfter(' 0 ', now), 0);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('-5', now), null);
  assert.equal(parseRetryAfter('soon', now), null);
  assert.equal(parseRetryAfter(null, now), null);
  assert.equal(parseRetryAfter(undefined, now), null);
});
