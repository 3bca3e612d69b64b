/**
 * `$lookup` in a transform, against reference readers of the test's own (the reference function and Redis are
 * test/integration/transform-lookups.test.ts's): reference lookups and JSONata's own field lookup side by side,
 * table names checked at compile time, lookups bounded per evaluation, time spent waiting for a lookup not counted
 * against the CPU-time backstop, and a reader that fails making a retriable error, never a dead letter. Also
 * the reference records' keys and their decoding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileTransform, MAX_TRANSFORM_LOOKUPS, MAX_TRANSFORM_MS, TransformError, transformSchema } from '../../platform/transforms/transform.ts';
import { ReferenceUnavailableError, type ReferenceReader } from '../../platform/reference/lookups.ts';
import { parseReferenceKey } from '../../platform/reference/names.ts';
import { referenceRecordOf, RefusedRecordError } from '../../platform/reference/records.ts';
import { decodeKafkaRecord } from '../../platform/events/kafka-binding.ts';

/** A reader over fixed records of one tenant, counting its calls. */
function readerOf(records: Record<string, Record<string, unknown>>): ReferenceReader & { calls: string[] } {
  const calls: string[] = [];
  const reader = async (table: string, key: string) => {
    calls.push(`${table}/${key}`);
    const r = records[`${table}/${key}`];
    return r === undefined ? null : JSON.stringify(r);
  };
  return Object.assign(reader, { calls });
}

const ACCOUNTS = { 'accounts/A1': { holder: 'Ann', segment: 'retail' }, 'accounts/42': { holder: 'Num' } };
const applyTo = async (source: string, data: unknown, reader: ReferenceReader = readerOf(ACCOUNTS)) => JSON.parse(await compileTransform(source).apply({ id: 'e1', data }, reader));

test('$lookup(table, key) yields the record; a missing record or key yields nothing; a number key is its text', async () => {
  assert.deepEqual((await applyTo('{ "a": amount, "who": $lookup("accounts", accountId).holder }', { amount: 5, accountId: 'A1' })).data, { a: 5, who: 'Ann' });
  assert.deepEqual((await applyTo('{ "a": amount, "who": $lookup("accounts", accountId).holder }', { amount: 5, accountId: 'A2' })).data, { a: 5 });
  assert.deepEqual((await applyTo('{ "a": amount, "who": $lookup("accounts", accountId).holder }', { amount: 5 })).data, { a: 5 });
  assert.deepEqual((await applyTo('$lookup("accounts", n)', { n: 42 })).data, { holder: 'Num' });
  assert.deepEqual((await applyTo('$lookup("accounts", $event.subject)', {}, readerOf(ACCOUNTS))).data, undefined);
  // a key longer than any key can be is never looked up
  const reader = readerOf(ACCOUNTS);
  assert.equal((await applyTo('$lookup("accounts", k)', { k: 'x'.repeat(257) }, reader)).data, undefined);
  assert.deepEqual(reader.calls, []);
});

test("JSONata's own $lookup(object, key) keeps its meaning beside reference lookups", async () => {
  const out = await applyTo('{ "x": $lookup($, "x"), "vs": $lookup(items, "v"), "who": $lookup("accounts", "A1").segment }', { x: 7, items: [{ v: 1 }, { v: 2 }, { w: 3 }] });
  assert.deepEqual(out.data, { x: 7, vs: [1, 2], who: 'retail' });
});

test('a table name that cannot be one is refused at compile time (the API answers 400), a computed one when called', async () => {
  for (const source of ['$lookup("Accounts", k)', '$lookup("", k)', `$lookup("${'a'.repeat(65)}", k)`, '$lookup("a b", k)', '$map(ks, $lookup("no way", ?))']) {
    assert.throws(() => compileTransform(source), (err: Error) => err instanceof TransformError && /is not a table's name/.test(err.message), source);
    assert.equal(transformSchema.safeParse(source).success, false, source);
  }
  assert.equal(transformSchema.safeParse('$lookup("accounts", accountId).holder').success, true);
  await assert.rejects(compileTransform('($t := "Bad!"; $lookup($t, k))').apply({ data: { k: 'A1' } }, readerOf(ACCOUNTS)), (err: Error) => err instanceof TransformError && /'Bad!' is not a table's name/.test(err.message));
});

test('lookups are bounded per evaluation; repeated keys count too, each evaluation counts apart', async () => {
  const t = compileTransform('$map(ids, function($i){ $lookup("accounts", $i).holder })');
  const ids = (n: number) => ({ data: { ids: Array.from({ length: n }, () => 'A1') } });
  assert.equal(JSON.parse(await t.apply(ids(MAX_TRANSFORM_LOOKUPS), readerOf(ACCOUNTS))).data.length, MAX_TRANSFORM_LOOKUPS);
  await assert.rejects(t.apply(ids(MAX_TRANSFORM_LOOKUPS + 1), readerOf(ACCOUNTS)), (err: Error) => err instanceof TransformError && err.message === `made more than ${MAX_TRANSFORM_LOOKUPS} reference lookups`);
  const both = await Promise.all([t.apply(ids(60), readerOf(ACCOUNTS)), t.apply(ids(60), readerOf(ACCOUNTS))]);
  assert.deepEqual(both.map((j) => JSON.parse(j).data.length), [60, 60]);
});

test('a slow lookup does not count against the CPU-time backstop; a failing reader is retriable, not a dead letter', async () => {
  // a lookup that takes more than half the backstop, waiting and with the process busy meanwhile (other work)
  const slow: ReferenceReader = async (table, key) => {
    await new Promise((r) => setTimeout(r, 100));
    const from = process.cpuUsage();
    for (let used = 0; used < (MAX_TRANSFORM_MS / 2 + 100) * 1000; ) {
      const { user, system } = process.cpuUsage(from);
      used = user + system;
    }
    return readerOf(ACCOUNTS)(table, key);
  };
  // steps after the lookups, for the backstop to be checked after them
  const source = '($h := [$lookup("accounts", "A1").holder, $lookup("accounts", "42").holder]; $count([1..200].($ * 2)) = 200 ? $h : null)';
  const out = JSON.parse(await compileTransform(source).apply({ data: {} }, slow));
  assert.deepEqual(out.data, ['Ann', 'Num'], 'two lookups of more than half the backstop each: the transform still succeeds');
  const down: ReferenceReader = async () => {
    throw new Error('Command timed out');
  };
  await assert.rejects(compileTransform('$lookup("accounts", k)').apply({ data: { k: 'A1' } }, down), (err: Error) => err instanceof ReferenceUnavailableError && err.retriable && !(err instanceof TransformError));
  // without a reader (a caller that has no reference data), a reference lookup fails the evaluation
  await assert.rejects(compileTransform('$lookup("accounts", k)').apply({ data: { k: 'A1' } }), /reference data is not available/);
  assert.equal(compileTransform('{ "a": a }').looksUp, false);
  assert.equal(compileTransform('$lookup("accounts", a)').looksUp, true);
});

test('a reference record: key "<tenantid>/<lookup key>", tenantid the key\'s, JSON data within its bound, tombstones and null data delete', () => {
  assert.deepEqual(parseReferenceKey('ten_a/acc-1'), { tenantId: 'ten_a', key: 'acc-1' });
  assert.deepEqual(parseReferenceKey('ten_a/x/y'), { tenantId: 'ten_a', key: 'x/y' });
  for (const bad of ['acc-1', '/acc-1', 'ten_a/', `ten_a/${'k'.repeat(257)}`]) assert.equal(parseReferenceKey(bad), undefined, bad);

  const opts = { maxRecordBytes: 1024 * 1024, mappings: {}, maxDataBytes: 64 };
  const record = (key: string | null, value: unknown) => decodeKafkaRecord({
    key: key === null ? null : Buffer.from(key), value: value === null ? null : Buffer.from(JSON.stringify(value)), headers: value === null ? {} : { 'content-type': 'application/cloudevents+json' },
  });
  const ce = (tenantid: string, data: unknown) => ({ specversion: '1.0', id: 'r1', source: '/accounts', type: 'account.updated', tenantid, ...(data === undefined ? {} : { data }) });
  assert.deepEqual(referenceRecordOf(record('ten_a/acc-1', ce('ten_a', { holder: 'Ann' })), 'accounts', opts), { tenantId: 'ten_a', key: 'acc-1', data: '{"holder":"Ann"}' });
  assert.deepEqual(referenceRecordOf(record('ten_a/acc-1', null), 'accounts', opts), { tenantId: 'ten_a', key: 'acc-1', data: null });
  assert.deepEqual(referenceRecordOf(record('ten_a/acc-1', ce('ten_a', null)), 'accounts', opts), { tenantId: 'ten_a', key: 'acc-1', data: null });
  const refused = (item: ReturnType<typeof record>, reason: string, message: RegExp) =>
    assert.throws(() => referenceRecordOf(item, 'accounts', opts), (err: Error) => err instanceof RefusedRecordError && err.reason === reason && message.test(err.message));
  refused(record('ten_b/acc-1', ce('ten_a', { holder: 'Ann' })), 'malformed', /not the tenant the key names/);
  refused(record(null, ce('ten_a', { holder: 'Ann' })), 'malformed', /needs a Kafka key/);
  refused(record('acc-1', ce('ten_a', { holder: 'Ann' })), 'malformed', /not "<tenantid>\/<lookup key>"/);
  refused(record('ten_a/acc-1', ce('ten_a', { holder: 'x'.repeat(100) })), 'tooLarge', /more than 64/);
  refused(record('ten_a/acc-1', { not: 'a CloudEvent' }), 'malformed', /.+/);
});
