import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_BACKOFF, parseRetryAfter, retryDelay } from '../src/backoff.ts';

const policy = { initialMs: 100, maxMs: 5000, factor: 2, jitter: 0.5 };

test('grows exponentially and stops at the maximum', () => {
  const top = (n: number) => retryDelay(n, { policy, random: () => 1 });
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map(top), [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  assert.equal(retryDelay(1000, { policy, random: () => 1 }), 5000);
});

test('jitter spreads the delay between half and all of it', () => {
  assert.equal(retryDelay(3, { policy, random: () => 0 }), 200);
  assert.equal(retryDelay(3, { policy, random: () => 0.5 }), 300);
  for (let i = 0; i < 1000; i++) {
    const d = retryDelay(4, { policy });
    assert.ok(d >= 400 && d <= 800, String(d));
  }
});

test('no jitter gives the exact schedule', () => {
  assert.equal(retryDelay(2, { policy: { ...policy, jitter: 0 }, random: () => 0.9 }), 200);
});

test('Retry-After is a floor, capped at ten times the maximum', () => {
  assert.equal(retryDelay(1, { policy, retryAfterMs: 3000, random: () => 0 }), 3000);
  assert.equal(retryDelay(7, { policy, retryAfterMs: 10, random: () => 1 }), 5000);
  assert.equal(retryDelay(1, { policy, retryAfterMs: 86_400_000 }), 50_000);
});

test('the default policy starts small and caps at 30 s', () => {
  assert.ok(retryDelay(1) <= DEFAULT_BACKOFF.initialMs);
  assert.ok(retryDelay(50) <= 30_000 && retryDelay(50) >= 15_000);
});

test('parses Retry-After as seconds or an HTTP date', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('3', now), 3000);
  assert.equal(parseRetryAfter(' 0 ', now), 0);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now), 5000);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
});
