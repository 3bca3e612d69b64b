import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cover, seriesIntervals, UncoverableRange, WIDTH_MS } from '../../platform/insights/buckets.ts';
import { insightsEventOf, insightsKindOf } from '../../platform/insights/events.ts';
import { MalformedRecordError } from '../../platform/errors.ts';

const M = WIDTH_MS.m;
const H = WIDTH_MS.h;
const D = WIDTH_MS.d;
const retention = { m: 48 * H, h: 90 * D, d: 730 * D };
const day = Date.UTC(2026, 10, 30);

test('a range is covered by whole days, then hours, then minutes at its edges', () => {
  const b = cover(day - 90 * M, day + D + 2 * H + 3 * M, retention, day + D + 3 * H);
  assert.deepEqual(b.map((x) => x.res).join(''), 'mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmh' + 'd' + 'hh' + 'mmm');
  assert.equal(b.reduce((sum, x) => sum + WIDTH_MS[x.res], 0), D + 2 * H + 3 * M + 90 * M);
});

test('a range needing dropped buckets names the end to round', () => {
  const now = day + 10 * D;
  assert.throws(() => cover(day + 30 * M, day + D, retention, now), (e: unknown) => e instanceof UncoverableRange && e.end === 'from');
  assert.throws(() => cover(day, day + D + 30 * M, retention, now), (e: unknown) => e instanceof UncoverableRange && e.end === 'to');
  assert.equal(cover(day + H, day + 2 * D, retention, now).length, 23 + 1);
  assert.throws(() => cover(day - 800 * D, day - 799 * D, retention, now), UncoverableRange);
});

test('series intervals are cut to the range', () => {
  assert.deepEqual(seriesIntervals(day + 30 * M, day + 2 * H, 'h'), [[day + 30 * M, day + H], [day + H, day + 2 * H]]);
  assert.equal(seriesIntervals(day, day + 3 * D, 'd').length, 3);
});

test('insights types, with a prefix, and the fields each needs', () => {
  assert.equal(insightsKindOf('com.shop.ad.click'), 'ad.click');
  assert.equal(insightsKindOf('shopad.click'), null);
  const ce = (type: string, data: unknown, time: string | undefined = '2026-11-30T10:00:00Z') => ({ specversion: '1.0' as const, id: '1', source: '/s', type, ...(time ? { time } : {}), data });
  assert.equal(insightsEventOf(ce('payment.sent', {})), null);
  assert.deepEqual(insightsEventOf(ce('ad.click', { customerId: 'c', campaignId: 'k' })), { kind: 'ad.click', timeMs: Date.parse('2026-11-30T10:00:00Z'), customerId: 'c', campaignId: 'k' });
  assert.throws(() => insightsEventOf(ce('ad.click', { customerId: 'c' })), (e: unknown) => e instanceof MalformedRecordError && /data\.campaignId/.test(e.message));
  assert.throws(() => insightsEventOf(ce('cart.add', { customerId: 'c' })), /data\.productId/);
  assert.throws(() => insightsEventOf(ce('ad.impression', { customerId: 'c', campaignId: 'x'.repeat(129) })), /data\.campaignId/);
  assert.throws(() => insightsEventOf(ce('ad.impression', { customerId: 'c\n', campaignId: 'k' })), /data\.customerId/);
  assert.throws(() => insightsEventOf(ce('product.view', { customerId: 'c' }, '')), /time: is required/);
});
