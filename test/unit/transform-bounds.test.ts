/**
 * A transform's bounds count work, not time: the same expression on the same event fails or succeeds the same way
 * on a quiet machine and a busy one, and evaluations running at once count their steps apart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileTransform, MAX_TRANSFORM_STEPS, TransformError } from '../../platform/transforms/transform.ts';

const items = Array.from({ length: 1000 }, (_, i) => ({ id: i, price: i }));

test('mapping an array of a thousand items fits the step budget', async () => {
  const out = JSON.parse(await compileTransform('items.{ "id": id, "p": price * 2 }').apply({ id: 'e1', data: { items } }));
  assert.equal(out.data.length, 1000);
  assert.deepEqual(out.data[999], { id: 999, p: 1998 });
  assert.equal(out.id, 'e1', 'the rest of the event kept');
});

test('an evaluation past the step budget fails naming it, every time, even while the event loop is held up', async () => {
  const t = compileTransform('$reduce([1..99999], function($a, $v){ $a + $v }, 0)');
  for (let i = 0; i < 3; i++) {
    await assert.rejects(t.apply({ data: {} }), (err: Error) => err instanceof TransformError && err.message === `took more than ${MAX_TRANSFORM_STEPS} evaluation steps`);
  }
  // a blocked thread between steps costs wall time, not steps: a fitting evaluation still succeeds
  const slowInput = { get n() { const until = Date.now() + 30; while (Date.now() < until); return 5; } };
  assert.deepEqual(JSON.parse(await compileTransform('{ "m": n * 2 }').apply({ data: slowInput })).data, { m: 10 });
});

test('evaluations of one expression at the same time count their steps apart', async () => {
  const t = compileTransform('$reduce([1..4000], function($a, $v){ $a + $v }, 0)'); // about 12,000 steps: one fits, two together would not
  const results = await Promise.all([1, 2, 3].map(() => t.apply({ data: {} })));
  for (const r of results) assert.equal(JSON.parse(r).data, 8_002_000);
});

test('depth, string length, $pad and regular expressions are bounded', async () => {
  await assert.rejects(compileTransform('($f := function($x){ $x > 0 ? $f($x - 1) + 1 : 0 }; $f(100000))').apply({ data: {} }), /Stack overflow/);
  await assert.rejects(compileTransform('$reduce([1..40], function($acc, $v){ $acc & $acc }, "x")').apply({ data: {} }), /built a string longer than 262144 characters/);
  await assert.rejects(compileTransform('$pad("x", 300000)').apply({ data: {} }), /\$pad to more than 262144 characters/);
  assert.throws(() => compileTransform('$match(name, /a+/)'), /regular expressions are not allowed/);
});
