import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkBackwardCompatible, type JsonSchema } from '../../platform/schemas/compat.ts';
import { compileSchema } from '../../platform/schemas/json-schema.ts';

const payment: JsonSchema = {
  type: 'object',
  required: ['amount', 'currency'],
  properties: {
    amount: { type: 'integer', minimum: 0 },
    currency: { type: 'string', enum: ['EUR', 'USD'] },
    note: { type: 'string', maxLength: 140 },
    tags: { type: 'array', items: { type: 'string' }, maxItems: 10 },
  },
};

const withChange = (change: (s: any) => void): JsonSchema => {
  const copy = structuredClone(payment) as any;
  change(copy);
  return copy;
};

/** The paths and reasons, for assertions that read like the answer a client gets. */
const check = (prev: JsonSchema, next: JsonSchema) => checkBackwardCompatible(prev, next);

test('the same schema, annotations and widening changes are compatible', () => {
  assert.deepEqual(check(payment, payment), []);
  const compatible: [string, JsonSchema][] = [
    ['title and description added', withChange((s) => { s.title = 'Payment'; s.properties.amount.description = 'in cents'; })],
    ['an optional property added', withChange((s) => { s.properties.reference = { type: 'string' }; })],
    ['an enum value added', withChange((s) => { s.properties.currency.enum.push('GBP'); })],
    ['integer widened to number', withChange((s) => { s.properties.amount.type = 'number'; })],
    ['a type added to the list', withChange((s) => { s.properties.note.type = ['string', 'null']; })],
    ['a bound loosened', withChange((s) => { s.properties.note.maxLength = 280; s.properties.amount.minimum = -100; })],
    ['a bound removed', withChange((s) => { delete s.properties.tags.maxItems; })],
    ['an optional property removed from an open object', withChange((s) => { delete s.properties.note; })],
    ['an item schema widened', withChange((s) => { s.properties.tags.items = { type: ['string', 'integer'] }; })],
    ['multipleOf relaxed to a divisor', { type: 'number', multipleOf: 1 }],
  ];
  for (const [what, next] of compatible) {
    const prev: JsonSchema = what.startsWith('multipleOf') ? { type: 'number', multipleOf: 5 } : payment;
    assert.deepEqual(check(prev, next), [], what);
  }
});

test('a new required property is refused, naming it', () => {
  const next = withChange((s) => { s.properties.reference = { type: 'string' }; s.required.push('reference'); });
  assert.deepEqual(check(payment, next), [{ path: 'properties.reference', reason: "property 'reference' is newly required" }]);
});

test('a changed or narrowed type is refused', () => {
  assert.deepEqual(check(payment, withChange((s) => { s.properties.amount.type = 'string'; })), [
    { path: 'properties.amount.type', reason: 'type narrowed from integer to string' },
  ]);
  const narrowed = check({ type: 'number' }, { type: 'integer' });
  assert.equal(narrowed.length, 1);
  assert.match(narrowed[0]!.reason, /number to integer/);
  assert.equal(check({}, { type: 'string' })[0]!.reason, 'type narrowed from any type to string');
});

test('a removed enum value is refused; const counts as a one-value enum', () => {
  assert.deepEqual(check(payment, withChange((s) => { s.properties.currency.enum = ['EUR']; })), [
    { path: 'properties.currency.enum', reason: 'value "USD" removed' },
  ]);
  assert.deepEqual(check({ enum: ['a', 'b'] }, { const: 'a' }), [{ path: 'const', reason: 'value "b" removed' }]);
  assert.deepEqual(check({ const: 'a' }, { enum: ['a', 'b'] }), []);
  assert.equal(check({ type: 'string' }, { type: 'string', enum: ['x'] })[0]!.path, 'enum');
});

test('a required property removed, or made optional, is refused', () => {
  const removed = withChange((s) => { delete s.properties.currency; s.required = ['amount']; });
  assert.deepEqual(check(payment, removed), [{ path: 'properties.currency', reason: "property 'currency' was required and no longer is" }]);
});

test('closing an object, or removing a property from a closed one, is refused', () => {
  const closed = withChange((s) => { s.additionalProperties = false; });
  assert.deepEqual(check(payment, closed), [{ path: 'additionalProperties', reason: 'additionalProperties closed (was open)' }]);
  const stillClosed = withChange((s) => { s.additionalProperties = false; delete s.properties.note; });
  assert.deepEqual(check(closed, stillClosed), [{ path: 'properties.note', reason: "property 'note' removed from a closed object (additionalProperties: false)" }]);
});

test('tightened bounds are refused with the bound named', () => {
  const cases: [JsonSchema, JsonSchema, string][] = [
    [{ type: 'integer', minimum: 0 }, { type: 'integer', minimum: 1 }, 'minimum'],
    [{ type: 'integer', maximum: 10 }, { type: 'integer', maximum: 10, exclusiveMaximum: 10 }, 'exclusiveMaximum'],
    [{ type: 'string' }, { type: 'string', maxLength: 10 }, 'maxLength'],
    [{ type: 'string', minLength: 1 }, { type: 'string', minLength: 2 }, 'minLength'],
    [{ type: 'string' }, { type: 'string', pattern: '^a' }, 'pattern'],
    [{ type: 'string', format: 'email' }, { type: 'string', format: 'uri' }, 'format'],
    [{ type: 'array' }, { type: 'array', minItems: 1 }, 'minItems'],
    [{ type: 'array' }, { type: 'array', uniqueItems: true }, 'uniqueItems'],
    [{ type: 'number', multipleOf: 2 }, { type: 'number', multipleOf: 3 }, 'multipleOf'],
    [{ type: 'object' }, { type: 'object', maxProperties: 3 }, 'maxProperties'],
  ];
  for (const [prev, next, keyword] of cases) {
    const problems = check(prev, next);
    assert.equal(problems.length, 1, `${keyword}: ${JSON.stringify(problems)}`);
    assert.equal(problems[0]!.path, keyword);
  }
});

test('changes deep inside items and nested objects are found with their path', () => {
  const prev: JsonSchema = { type: 'object', properties: { lines: { type: 'array', items: { type: 'object', properties: { sku: { type: 'string' } } } } } };
  const next: JsonSchema = { type: 'object', properties: { lines: { type: 'array', items: { type: 'object', required: ['sku'], properties: { sku: { type: 'integer' } } } } } };
  const byPath = (a: { path: string }, b: { path: string }) => a.path.localeCompare(b.path);
  assert.deepEqual(check(prev, next).sort(byPath), [
    { path: 'properties.lines.items.properties.sku', reason: "property 'sku' is newly required" },
    { path: 'properties.lines.items.properties.sku.type', reason: 'type narrowed from string to integer' },
  ]);
});

test('keywords the checker cannot reason about may stay but not change', () => {
  const prev: JsonSchema = { oneOf: [{ type: 'string' }, { type: 'integer' }] };
  assert.deepEqual(check(prev, structuredClone(prev)), []);
  const problems = check(prev, { oneOf: [{ type: 'string' }] });
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.path, 'oneOf');
  assert.match(problems[0]!.reason, /cannot be proven/);
});

test('boolean schemas: false admits nothing, true everything', () => {
  assert.deepEqual(check(false, { type: 'string' }), []);
  assert.deepEqual(check({ type: 'string' }, true), []);
  assert.equal(check(true, false)[0]!.reason, 'the new version admits no value here');
});

test('every reported incompatibility is real: some data valid under the old version fails the new one', () => {
  // witnesses: for each refused change, a datum the previous version accepts and the new one refuses
  const witnesses: [JsonSchema, JsonSchema, unknown][] = [
    [payment, withChange((s) => { s.required.push('note'); }), { amount: 1, currency: 'EUR' }],
    [payment, withChange((s) => { s.properties.amount.type = 'string'; }), { amount: 1, currency: 'EUR' }],
    [payment, withChange((s) => { s.properties.currency.enum = ['EUR']; }), { amount: 1, currency: 'USD' }],
    [payment, withChange((s) => { s.additionalProperties = false; }), { amount: 1, currency: 'EUR', extra: true }],
    [payment, withChange((s) => { s.properties.note.maxLength = 3; }), { amount: 1, currency: 'EUR', note: 'long note' }],
  ];
  for (const [prev, next, datum] of witnesses) {
    assert.notDeepEqual(check(prev, next), []);
    assert.equal(compileSchema(prev)(datum), true);
    assert.equal(compileSchema(next)(datum), false);
  }
});

test('the boolean schemas true and false compile: true accepts everything, false nothing', () => {
  assert.equal(compileSchema(true)({ any: 1 }), true);
  assert.equal(compileSchema(false)({ any: 1 }), false);
  assert.equal(compileSchema(false)(null), false);
});
