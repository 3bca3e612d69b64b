import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeKafkaRecord, headersToStrings } from '../../platform/events/kafka-binding.ts';
import type { SourceDecoding } from '../../platform/events/route-decoding.ts';
import { matchRecord, recordPrefilter, type RecordBytes } from '../../platform/routing/route-core.ts';
import { compileSubscription, matcherOf } from '../../platform/store/subscription-index.ts';

/**
 * recordPrefilter is a necessary condition of matchRecord: a record it rejects is one matchRecord never matches for
 * that tenant and those types, so the cold tier and snapshots, which skip what it rejects, derive what route() did.
 */

const decoding: SourceDecoding = { maxRecordBytes: 1 << 20, mappings: {} };
const TENANT = 'ten_a/1';

function matches(topic: string, r: RecordBytes & { key?: Buffer | null }, types: string[]): boolean {
  const sub = { id: 'sub_1', tenant_id: TENANT, created_at: '', updated_at: '', filters: [], ...(types.length ? { types } : {}) };
  const item = decodeKafkaRecord({ key: r.key ?? null, value: r.value, headers: headersToStrings(r.headers as never) }, { topic, partition: 0, offset: '0' });
  return matchRecord(item, { topic, decoding, matcher: matcherOf([compileSubscription(sub)]), tenantId: TENANT }) !== null;
}

const structured = (event: Record<string, unknown>, text?: string): RecordBytes => ({
  value: Buffer.from(text ?? JSON.stringify(event)),
  headers: { 'content-type': Buffer.from('application/cloudevents+json') },
});
const ce = (over: Record<string, unknown> = {}) => ({ specversion: '1.0', id: 'e1', source: '/s', type: 'payment.sent', tenantid: TENANT, data: { n: 1 }, ...over });

test('the prefilter passes every record the route matches, and rejects plainly other tenants\' and other types\' records unparsed', () => {
  const cases: { name: string; r: RecordBytes; types: string[]; rejected?: boolean }[] = [
    { name: 'structured, the tenant and type', r: structured(ce()), types: ['payment.sent'] },
    { name: 'structured, any type', r: structured(ce({ type: 'other' })), types: [] },
    { name: 'structured, another type', r: structured(ce({ type: 'balance.updated' })), types: ['payment.sent'], rejected: true },
    { name: 'structured, another tenant', r: structured(ce({ tenantid: 'ten_b' })), types: [], rejected: true },
    { name: 'structured, the tenant id escaped', r: structured(ce(), JSON.stringify(ce()).replace('ten_a/1', 'ten_a\\/1')), types: ['payment.sent'] },
    { name: 'structured, the type escaped', r: structured(ce(), JSON.stringify(ce()).replace('"payment.sent"', '"payment\\u002esent"')), types: ['payment.sent'] },
    { name: 'structured without a content-type', r: { value: Buffer.from(JSON.stringify(ce())), headers: {} }, types: ['payment.sent'] },
    {
      name: 'binary, the last of repeated headers is the tenant',
      r: { value: Buffer.from('{"n":1}'), headers: { ce_specversion: '1.0', ce_id: 'e1', ce_source: '/s', ce_type: 'payment.sent', ce_tenantid: [Buffer.from('ten_b'), Buffer.from(TENANT)], 'content-type': 'application/json' } },
      types: ['payment.sent'],
    },
    {
      name: 'binary, the first of repeated headers is the tenant (decoding takes the last)',
      r: { value: Buffer.from('{"n":1}'), headers: { ce_specversion: '1.0', ce_id: 'e1', ce_source: '/s', ce_type: 'payment.sent', ce_tenantid: [Buffer.from(TENANT), Buffer.from('ten_b')] } },
      types: [],
      rejected: true,
    },
    {
      name: 'binary, another type',
      r: { value: null, headers: { ce_specversion: '1.0', ce_id: 'e1', ce_source: '/s', ce_type: 'balance.updated', ce_tenantid: TENANT } },
      types: ['payment.sent'],
      rejected: true,
    },
    {
      name: 'binary with upper-case header names (decoding lower-cases them)',
      r: { value: Buffer.from('{"n":1}'), headers: { CE_SPECVERSION: '1.0', CE_ID: 'e1', CE_SOURCE: '/s', Ce_Type: 'payment.sent', CE_TENANTID: TENANT } },
      types: ['payment.sent'],
    },
    {
      name: 'binary without data',
      r: { value: null, headers: { ce_specversion: '1.0', ce_id: 'e1', ce_source: '/s', ce_type: 'payment.sent', ce_tenantid: Buffer.from(TENANT) } },
      types: ['payment.sent'],
    },
    { name: 'a tombstone', r: { value: null, headers: {} }, types: [], rejected: true },
  ];
  for (const { name, r, types, rejected } of cases) {
    const may = recordPrefilter(TENANT, types, decoding)('t', r);
    const matched = matches('t', r, types);
    if (matched) assert.ok(may, `${name}: the route matches it, the prefilter must pass it`);
    if (rejected !== undefined) assert.equal(may, !rejected, name);
    else assert.ok(matched, `${name}: the route matches it`);
  }
  // a topic with a mapping derives the tenant from the mapping: every record is decoded
  const mapped = recordPrefilter(TENANT, ['x'], { ...decoding, mappings: { m: {} as never } });
  assert.equal(mapped('m', { value: Buffer.from('{}'), headers: {} }), true);
});

test('the prefilter never rejects a record the route matches (generated records)', () => {
  const text = fc.string({ unit: fc.constantFrom('a', '/', '"', '\\', 'é', '.', '_', 't', 'e', 'n', '1'), maxLength: 8 });
  const tenant = fc.constantFrom(TENANT, 'ten_b', 'ten_a\\/1', 'ten_a\\u002f1');
  const type = fc.constantFrom('payment.sent', 'balance.updated', 'payment\\u002esent');
  // how the ce_tenantid header carries the value: as text, as bytes, once, or repeated with another tenant first or last
  const shape = fc.constantFrom<(v: string) => string | Buffer | (string | Buffer)[]>((v) => v, (v) => Buffer.from(v), (v) => [v], (v) => ['ten_b', Buffer.from(v)], (v) => [v, 'ten_b']);
  fc.assert(
    fc.property(fc.boolean(), tenant, type, text, fc.constantFrom<string[]>([], ['payment.sent'], ['payment.sent', 'x']), fc.boolean(), shape, (binary, t, ty, extra, types, upper, carry) => {
      let r: RecordBytes;
      if (binary) {
        const tenantValue = t.replace(/\\\//g, '/').replace(/\\u002f/g, '/');
        const typeValue = ty.replace(/\\u002e/g, '.');
        const name = (n: string) => (upper ? n.toUpperCase() : n);
        r = { value: Buffer.from(JSON.stringify({ extra })), headers: { [name('ce_specversion')]: '1.0', [name('ce_id')]: 'e', [name('ce_source')]: '/s', [name('ce_type')]: typeValue, 'content-type': 'application/json' } };
        r.headers![name('ce_tenantid')] = carry(tenantValue);
      } else {
        r = { value: Buffer.from(`{"specversion":"1.0","id":"e","source":"/s","type":"${ty}","tenantid":"${t}","data":${JSON.stringify(extra)}}`), headers: { 'content-type': 'application/cloudevents+json' } };
      }
      if (matches('t', r, types)) assert.ok(recordPrefilter(TENANT, types, decoding)('t', r));
    }),
    { numRuns: 3000, seed: 7 },
  );
});
