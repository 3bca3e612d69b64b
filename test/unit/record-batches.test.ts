import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createRecordsBatch, type CompressionAlgorithmValue } from '@platformatic/kafka';
import { offsetAfter, readBatches, CorruptBatchError, type BatchRecord } from '../../platform/kafka/record-batches.ts';

interface Rec {
  key: Buffer | null;
  value: Buffer;
  headers: [string, Buffer][];
  timestamp: number;
}

/** A batch as a producer writes it (by @platformatic/kafka's encoder), then given its base offset as the broker does. */
function batch(base: number, records: Rec[], compression: CompressionAlgorithmValue = 'none', attrs = 0, producerId = -1n): Buffer {
  const bytes = Buffer.from(
    createRecordsBatch(
      records.map((r) => ({
        ...(r.key ? { key: r.key } : {}),
        value: r.value,
        headers: new Map(r.headers.map(([k, v]) => [Buffer.from(k), v])),
        topic: 't',
        timestamp: BigInt(r.timestamp),
      })),
      { compression, producerId, producerEpoch: 0 } as never,
    ).buffer,
  );
  bytes.writeBigInt64BE(BigInt(base), 0);
  if (attrs) bytes.writeInt16BE(bytes.readInt16BE(21) | attrs, 21);
  return bytes;
}

/** What a reader keeps of a record (the handler's record is only valid during the call). */
function seen(r: BatchRecord, offset: number) {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k] = Array.isArray(v) ? v.map((b) => b.toString('hex')) : v.toString('hex');
  return { offset, key: r.key?.toString('hex') ?? null, value: r.value?.toString('hex') ?? null, headers, timestamp: r.timestamp };
}

function expected(r: Rec, offset: number) {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of r.headers) {
    const had = headers[k];
    headers[k] = had === undefined ? v.toString('hex') : Array.isArray(had) ? [...had, v.toString('hex')] : [had, v.toString('hex')];
  }
  return { offset, key: r.key?.toString('hex') ?? null, value: r.value.toString('hex'), headers, timestamp: String(r.timestamp) };
}

const rec = fc.record({
  key: fc.option(fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)), { nil: null }),
  value: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  // a name may repeat: its values come as a list, in order
  headers: fc.array(fc.tuple(fc.constantFrom('ce_type', 'ce_tenantid', 'x-é', 'content-type'), fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a))), { maxLength: 4 }),
  // within 2^31 ms of each other: the encoder writes the deltas as 32-bit varints
  timestamp: fc.integer({ min: 1_700_000_000_000, max: 1_700_000_000_000 + 2 ** 31 - 1 }),
});

test('every record of the batches in [from, to] is handed once, in order, as the producer wrote it, compressed or not', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.array(rec, { minLength: 1, maxLength: 8 }), fc.constantFrom<CompressionAlgorithmValue>('none', 'gzip', 'snappy', 'lz4'), fc.nat(3)), { minLength: 1, maxLength: 5 }),
      fc.integer({ min: 0, max: 2 ** 40 }),
      fc.nat(60),
      fc.nat(60),
      (batches, start, a, b) => {
        let base = start;
        const parts: Buffer[] = [];
        const all: { r: Rec; offset: number }[] = [];
        for (const [records, compression, gap] of batches) {
          parts.push(batch(base, records, compression));
          records.forEach((r, i) => all.push({ r, offset: base + i }));
          base += records.length + gap; // compaction leaves gaps between batches
        }
        const bytes = Buffer.concat(parts);
        const from = start + Math.min(a, b);
        const to = start + Math.max(a, b);
        const got: ReturnType<typeof seen>[] = [];
        const out = readBatches(bytes, from, to, null, (r, offset) => got.push(seen(r, offset)));
        assert.deepEqual(got, all.filter((x) => x.offset >= from && x.offset <= to).map((x) => expected(x.r, x.offset)));
        // it stops at the first batch holding a record past `to`, and says where it starts
        const firstPast = parts.findIndex((_, i) => all.some((x) => x.offset > to && batchOf(x.offset) === i));
        function batchOf(offset: number): number {
          let b0 = start;
          for (let i = 0; i < batches.length; i++) {
            if (offset < b0 + batches[i]![0].length) return i;
            b0 += batches[i]![0].length + batches[i]![2];
          }
          return -1;
        }
        assert.equal(out.past, firstPast < 0 ? -1 : parts.slice(0, firstPast).reduce((n, p) => n + p.length, 0));
        assert.equal(offsetAfter(bytes), start + batches.reduce((n, [r, , g], i) => n + r.length + (i < batches.length - 1 ? g : 0), 0));
      },
    ),
    { numRuns: 300 },
  );
});

test('a batch cut short by the fetch size is left for the next fetch: next is the offset after the last whole batch', () => {
  const r = (v: string): Rec => ({ key: null, value: Buffer.from(v), headers: [], timestamp: 1_700_000_000_000 });
  const first = batch(100, [r('a'), r('b')]);
  const second = batch(102, [r('c'), r('d')]);
  const cut = Buffer.concat([first, second.subarray(0, second.length - 3)]);
  const got: string[] = [];
  const out = readBatches(cut, 0, 1000, null, (x) => got.push(x.value!.toString()));
  assert.deepEqual(got, ['a', 'b']);
  assert.deepEqual(out, { next: 102, past: -1 });
  assert.equal(offsetAfter(cut), 102);
  assert.equal(offsetAfter(second.subarray(0, 40)), -1);
});

test("an aborted transaction's batches are passed over up to its end marker, control batches carry no record, the committed ones are read", () => {
  const r = (v: string): Rec => ({ key: null, value: Buffer.from(v), headers: [], timestamp: 1_700_000_000_000 });
  const TRANSACTIONAL = 0x10;
  const CONTROL = 0x20;
  const bytes = Buffer.concat([
    batch(0, [r('plain')]),
    batch(1, [r('aborted-1'), r('aborted-2')], 'none', TRANSACTIONAL, 7n),
    batch(3, [r('committed')], 'none', TRANSACTIONAL, 8n),
    batch(4, [r('marker')], 'none', TRANSACTIONAL | CONTROL, 7n), // producer 7's abort marker
    batch(5, [r('marker')], 'none', TRANSACTIONAL | CONTROL, 8n), // producer 8's commit marker
    batch(6, [r('later-7')], 'none', TRANSACTIONAL, 7n), // a new transaction of producer 7, not aborted
  ]);
  const got: string[] = [];
  const out = readBatches(bytes, 0, 100, [{ producerId: 7n, firstOffset: 1 }], (x, offset) => got.push(`${offset}:${x.value}`));
  assert.deepEqual(got, ['0:plain', '3:committed', '6:later-7']);
  assert.equal(out.next, 7);
});

test('a record running past its batch, or a message format other than 2, is refused with a clear error', () => {
  const r: Rec = { key: null, value: Buffer.from('hello'), headers: [], timestamp: 1_700_000_000_000 };
  const bad = batch(0, [r]);
  bad[61] = 0x7e; // the record's length: 63, past the batch's end
  assert.throws(() => readBatches(bad, 0, 10, null, () => {}), CorruptBatchError);
  const old = batch(0, [r]);
  old[16] = 1;
  assert.throws(() => readBatches(old, 0, 10, null, () => {}), /message format 1/);
});

test('a header name repeated 50,000 times comes as one list of its values, in order', () => {
  const values = Array.from({ length: 50_000 }, (_, i) => Buffer.from(String(i)));
  const bytes = batch(7, [{ key: null, value: Buffer.from('v'), headers: values.map((v) => ['x-many', v] as [string, Buffer]), timestamp: 1_700_000_000_000 }]);
  let got: Buffer | Buffer[] | undefined;
  readBatches(bytes, 0, 10, null, (r) => (got = r.headers?.['x-many']));
  assert.ok(Array.isArray(got));
  assert.deepEqual(got.map((b) => b.toString()), values.map((v) => v.toString()));
});
