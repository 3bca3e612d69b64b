import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CesqlParseError,
  compileCesql,
  MAX_DATA_PATH_LENGTH,
  MAX_DATA_PATH_SEGMENTS,
  type CesqlErrorKind,
  type CesqlValue,
} from '../../platform/filters/cesql/index.ts';
import { checkFilters, compileFilters, FilterCompileError, type Filter } from '../../platform/filters/subscription-filter.ts';
import { subscriptionCreateSchema } from '../../functions/subscriptions/schema.ts';

/** Filters on what is inside an event's JSON data: `data.amount > 100`, `{ "exact": { "data.merchant.country": "NL" } }`. */

/** `{ a: { b: { ... { o: value } } } }` */
const nest = (keys: string, value: unknown): unknown => [...keys].reduceRight((inner, key) => ({ [key]: inner }), value);

const event = {
  specversion: '1.0',
  id: 'evt-1',
  source: '/bank/core',
  type: 'payment.sent',
  subject: 'acct-42',
  data: {
    amount: 250,
    whole: 100.0,
    rate: 1.5,
    big: 3000000000,
    huge: 1e21,
    max: 2147483647,
    min: -2147483648,
    negative: -12,
    text: 'hello',
    digits: '500',
    flag: true,
    off: false,
    none: null,
    merchant: { country: 'NL', name: 'Bakkerij', Code: 'upper' },
    items: [{ sku: 'a-1', qty: 2 }, { sku: 'b-2', qty: 1 }],
    by_year: { '2024': 'leap', '0': 'zero' },
    deep: nest('abcdefghijklmno', 'bottom'),
  },
};

function check(expression: string, value: CesqlValue, error?: CesqlErrorKind, on: Record<string, unknown> = event): void {
  const result = compileCesql(expression).evaluate(on);
  assert.ok(Object.is(result.value, value), `${expression}: expected ${JSON.stringify(value)}, got ${JSON.stringify(result.value)}`);
  assert.equal(result.error?.kind, error, `${expression}: error kind (${result.error?.message})`);
}

function parseError(expression: string): CesqlParseError {
  try {
    compileCesql(expression);
  } catch (err) {
    assert.ok(err instanceof CesqlParseError, `${expression}: threw ${String(err)}`);
    return err;
  }
  assert.fail(`${expression}: compiled, expected a parse error`);
}

test('sql: a dotted path under data reads nested members, array elements and keys that are numbers', () => {
  check('data.amount', 250);
  check('data.amount > 100', true);
  check('data.amount * 2 = 500', true);
  check("data.merchant.country = 'NL'", true);
  check("data.merchant.country IN ('DE', 'NL')", true);
  check("data.merchant.name LIKE 'Bakker%'", true);
  check('LENGTH(data.merchant.name)', 8);
  check("data.items.0.sku = 'a-1'", true);
  check('data.items.1.qty', 1);
  check('data.items.0.qty + data.items.1.qty', 3);
  check("data.by_year.2024 = 'leap'", true);
  check("data.by_year.0 = 'zero'", true);
  check("data.deep.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o = 'bottom'", true);
  check("data.amount > 100 AND data.merchant.country = 'NL' AND type = 'payment.sent'", true);
  // members are case-sensitive, as JSON keys are; the word data is not, as attribute names are not
  check("data.merchant.Code = 'upper'", true);
  check('data.merchant.code', false, 'missingAttribute');
  check('DATA.amount', 250);
  check('Data.merchant.Code', 'upper');
  // a whole JSON array as data is walked the same way
  check("data.1 = 'y'", true, undefined, { ...event, data: ['x', 'y'] });
});

test('sql: numbers are Integers within 32 bits, other numbers Strings holding their text; strings and Booleans as they are', () => {
  check('data.whole', 100); // 100.0 in JSON is the integer 100 once parsed
  check('data.max', 2147483647);
  check('data.min', -2147483648);
  check('data.negative < 0', true);
  check('-data.negative', 12);
  check('data.max + 1', 0, 'math'); // 32-bit arithmetic, as for any Integer
  check('data.rate', '1.5');
  check("data.rate = '1.5'", true);
  check('data.rate > 1', false, 'cast'); // a fraction is not an Integer: the filter does not match
  check('data.big', '3000000000');
  check('data.big > 100', false, 'cast');
  check("data.big = '3000000000'", true);
  check('data.huge', '1e+21');
  check('data.text', 'hello');
  check('data.text > 1', false, 'cast');
  check('data.digits > 100', true); // a String holding an integer casts as any CESQL String does
  check('data.digits = 500', true);
  check('data.flag', true);
  check('data.off', false);
  check('data.flag AND data.amount > 1', true);
  check('NOT data.off', true);
  check("data.flag = 'true'", true); // `=` casts the left operand to the right one's type: true -> 'true'
  check("data.flag = 'TRUE'", false);
  check('IS_INT(data.amount)', true);
  check('STRING(data.amount)', '250');
  assert.equal(compileCesql('data.amount > 100').matches(event), true);
  assert.equal(compileCesql('data.rate > 1').matches(event), false);
  assert.equal(compileCesql('data.flag').matches(event), true);
  assert.equal(compileCesql('data.text').matches(event), false); // a String result does not pass
});

/**
 * No value at a path behaves exactly as a missing attribute: every expression gives the same value and the same
 * error with `data.<path>` as with an attribute the event does not carry.
 */
const ABSENT: [string, Record<string, unknown>][] = [
  ['no member of that name', event],
  ['null', { ...event, data: { x: null } }],
  ['an object', { ...event, data: { x: { y: 1 } } }],
  ['an array', { ...event, data: { x: [1, 2] } }],
  ['an empty object', { ...event, data: { x: {} } }],
  ['data that is a string (text, or a JSON string)', { ...event, datacontenttype: 'text/plain', data: '{"x": 1}' }],
  ['data that is a number', { ...event, data: 7 }],
  ['data_base64', { ...event, datacontenttype: 'application/octet-stream', data: undefined, data_base64: 'eyJ4IjogMX0=' }],
  ['no data at all', { specversion: '1.0', id: 'e', source: '/s', type: 't' }],
];

const SHAPES = [
  '$',
  'EXISTS $',
  'NOT EXISTS $',
  '$ = 1',
  "$ = 'a'",
  '$ > 1',
  'NOT ($ = 1)',
  '$ + 1',
  "$ LIKE '%'",
  "$ IN ('a', 'b')",
  "'a' IN ($, 'a')",
  "'a' IN ('a', $)",
  'LENGTH($)',
  'UPPER($)',
  '$ OR TRUE',
  'TRUE OR $',
  'FALSE AND $',
  '$ XOR TRUE',
  'EXISTS $ AND $ > 1',
  'NOT EXISTS $ OR $ > 1',
];

test('sql: nothing at the path, null, an object, an array, data that is not JSON and no data all behave as a missing attribute', () => {
  for (const [what, on] of ABSENT) {
    for (const shape of SHAPES) {
      const withData = compileCesql(shape.replaceAll('$', 'data.x')).evaluate(on);
      const withAttribute = compileCesql(shape.replaceAll('$', 'missing')).evaluate(on);
      const label = `${shape} with ${what}`;
      assert.ok(Object.is(withData.value, withAttribute.value), `${label}: ${JSON.stringify(withData.value)} vs ${JSON.stringify(withAttribute.value)}`);
      assert.deepEqual(withData.errors.map((e) => e.kind), withAttribute.errors.map((e) => e.kind), label);
    }
  }
  check('data.x', false, 'missingAttribute', ABSENT[1]![1]);
  assert.equal(compileCesql('data.x').evaluate(event).error?.message, "missing attribute 'data.x'");
  // an object is no value, a member inside it is: test the member
  check('EXISTS data.merchant', false);
  check('EXISTS data.merchant.country', true);
  check('EXISTS data.none', false);
  check('EXISTS data.items', false);
  check('EXISTS data.items.0.sku', true);
  // an array is indexed only by whole numbers without leading zeros, and has no named members
  check('data.items.2', false, 'missingAttribute');
  check('data.items.00.sku', false, 'missingAttribute');
  check('data.items.length', false, 'missingAttribute');
  // only the data's own members: nothing inherited
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    check(`EXISTS data.${name}`, false);
    check(`EXISTS data.merchant.${name}`, false);
    check(`EXISTS data.text.${name}`, false);
  }
  check("data.p = 'own'", true, undefined, { ...event, data: JSON.parse('{"__proto__": {"p": 1}, "p": "own"}') });
  // bare data stays what CESQL 1.0 makes it: missing, never the payload
  check('data', false, 'missingAttribute');
  check('EXISTS data', false);
});

test('sql: a data path is data and 1 to 16 members of letters, digits and _, at most 256 characters; anything else is a parse error', () => {
  const sixteen = `data.${Array.from({ length: MAX_DATA_PATH_SEGMENTS }, (_, i) => `m${i}`).join('.')}`;
  assert.equal(MAX_DATA_PATH_SEGMENTS, 16);
  assert.equal(MAX_DATA_PATH_LENGTH, 256);
  assert.doesNotThrow(() => compileCesql(`${sixteen} = 1`));
  assert.match(parseError(`${sixteen}.m16 = 1`).message, /at most 16 members after data \(this one has 17\) at position 0/);
  const long = `data.${'a'.repeat(MAX_DATA_PATH_LENGTH - 5)}`;
  assert.doesNotThrow(() => compileCesql(long));
  assert.match(parseError(`${long}b`).message, /at most 256 characters \(this one has 257\)/);
  assert.equal(parseError("subject.x = 'a'").message, "expected an attribute name, or a data path starting with data (data.amount) at position 0, found 'subject.x'");
  assert.equal(parseError('EXISTS type.x').position, 7);
  assert.equal(parseError('data.').message, "expected a member name (letters, digits and _) after '.' at position 5, found end of input");
  assert.equal(parseError('data..x').position, 5);
  assert.equal(parseError('data.x. = 1').found, "' '");
  assert.equal(parseError("data.'x'").found, "'''");
  assert.equal(parseError('data .x').position, 5); // the dot belongs to the path only written against it
  parseError('1.5');
  parseError('data.x(1)');
  // `-` is the minus operator: a key holding one cannot be named (`data.merchant-id` subtracts the attribute `id`)
  check("data.merchant-id = 'x'", false, 'missingAttribute');
  check('data.amount-2', 248);
  check('data.amount - data.negative', 262);
});

test('exact, prefix and suffix: data.<path> compares the value as text; no value matches nothing', () => {
  const matches = (filter: Filter, on: Record<string, unknown> = event) => compileFilters([filter])(on);
  assert.equal(matches({ exact: { 'data.merchant.country': 'NL' } }), true);
  assert.equal(matches({ exact: { 'data.merchant.country': 'nl' } }), false);
  assert.equal(matches({ prefix: { 'data.merchant.name': 'Bak' } }), true);
  assert.equal(matches({ suffix: { 'data.merchant.name': 'rij' } }), true);
  assert.equal(matches({ exact: { 'data.items.1.sku': 'b-2' } }), true);
  // a number as its text, as JavaScript writes the parsed number; a Boolean as true / false
  assert.equal(matches({ exact: { 'data.amount': '250' } }), true);
  assert.equal(matches({ exact: { 'data.whole': '100' } }), true);
  assert.equal(matches({ exact: { 'data.whole': '100.0' } }), false);
  assert.equal(matches({ exact: { 'data.rate': '1.5' } }), true);
  assert.equal(matches({ prefix: { 'data.big': '3000' } }), true);
  assert.equal(matches({ exact: { 'data.huge': '1e+21' } }), true);
  assert.equal(matches({ exact: { 'data.negative': '-12' } }), true);
  assert.equal(matches({ exact: { 'data.flag': 'true' } }), true);
  assert.equal(matches({ exact: { 'data.off': 'false' } }), true);
  // no value: nothing matches, and `not` around it does, as for a missing attribute
  for (const [what, on] of ABSENT) {
    for (const dialect of ['exact', 'prefix', 'suffix'] as const) {
      const named = (name: string) => ({ [dialect]: { [name]: '' } }) as unknown as Filter;
      assert.equal(matches(named('data.x'), on), false, `${dialect} on ${what}`);
      assert.equal(matches({ not: named('data.x') }, on), true, `not ${dialect} on ${what}`);
      assert.equal(matches(named('missing'), on), false);
    }
  }
  assert.equal(matches({ exact: { 'data.merchant': '{"country":"NL"}' } }), false);
  assert.equal(matches({ prefix: { 'data.items': '' } }), false);
  assert.equal(matches({ exact: { 'data.none': 'null' } }), false);
  assert.equal(matches({ exact: { 'data.items.length': '2' } }), false);
});

test('a bad data path is refused with the field and the reason, by the API schema and by the compiler alike', () => {
  const cases: [unknown, (string | number)[], RegExp][] = [
    [[{ sql: "subject.x = 'a'" }], [0, 'sql'], /^invalid CESQL expression: expected an attribute name, or a data path starting with data/],
    [[{ sql: 'data.amount. > 1' }], [0, 'sql'], /^invalid CESQL expression: expected a member name \(letters, digits and _\) after '\.' at position 12/],
    [[{ all: [{ sql: `data.${'a.'.repeat(16)}a = 1` }] }], [0, 'all', 0, 'sql'], /at most 16 members after data \(this one has 17\)/],
    [[{ exact: { 'data.merchant-id': 'x' } }], [0, 'exact', 'data.merchant-id'], /a data path member holds letters, digits and _ only, and is not empty \(found 'merchant-id'\); a data path is data followed by 1 to 16 members/],
    [[{ prefix: { 'data.': 'x' } }], [0, 'prefix', 'data.'], /found ''/],
    [[{ suffix: { 'data.a..b': 'x' } }], [0, 'suffix', 'data.a..b'], /found ''/],
    [[{ exact: { [`data.${'a.'.repeat(16)}a`]: 'x' } }], [0, 'exact', `data.${'a.'.repeat(16)}a`], /at most 16 members/],
    [[{ exact: { [`data.${'a'.repeat(300)}`]: 'x' } }], [0, 'exact', `data.${'a'.repeat(300)}`], /at most 256 characters \(this one has 305\)/],
    [[{ exact: { 'Data.x': 'x' } }], [0, 'exact', 'Data.x'], /or a data path \(data\.amount\)/],
    [[{ exact: { 'data.x': 1 } }], [0, 'exact', 'data.x'], /must be a string/],
    [[{ exact: { 'data.x': 'x'.repeat(1025) } }], [0, 'exact', 'data.x'], /at most 1024 characters/],
  ];
  for (const [filters, path, message] of cases) {
    const issues = checkFilters(filters);
    assert.equal(issues.length, 1, JSON.stringify(filters).slice(0, 80));
    assert.deepEqual(issues[0]!.path, path);
    assert.match(issues[0]!.message, message);
    assert.throws(() => compileFilters(filters), FilterCompileError);
    const parsed = subscriptionCreateSchema.safeParse({ filters });
    assert.equal(parsed.success, false);
    assert.deepEqual(parsed.error!.issues[0]!.path, ['filters', ...path]);
  }
  assert.equal(subscriptionCreateSchema.safeParse({ filters: [{ sql: 'data.amount > 100' }, { exact: { 'data.merchant.country': 'NL' } }] }).success, true);
});

test('readsData: only filters that name a data path read data, and without one the event data is never looked at', () => {
  const reads = (filters: unknown) => compileFilters(filters).readsData;
  assert.equal(reads([]), false);
  assert.equal(reads([{ exact: { subject: 'a' } }, { sql: "type LIKE 'payment.%' AND EXISTS data AND amount > 1" }]), false);
  assert.equal(reads([{ sql: 'data.amount > 1' }]), true);
  assert.equal(reads([{ sql: 'EXISTS data.amount' }]), true);
  assert.equal(reads([{ any: [{ exact: { subject: 'a' } }, { not: { suffix: { 'data.name': 'x' } } }] }]), true);
  assert.equal(compileCesql("subject = 'a'").readsData, false);
  assert.equal(compileCesql("subject = 'a' OR UPPER(data.name) = 'X'").readsData, true);

  // an event whose data counts its reads
  let reads_ = 0;
  const counting = { ...event };
  Object.defineProperty(counting, 'data', { enumerable: true, get: () => (reads_++, event.data) });
  const without = compileFilters([{ exact: { type: 'payment.sent' } }, { sql: "subject LIKE 'acct-%' AND NOT EXISTS data AND (data OR TRUE)" }, { not: { prefix: { source: 'x' } } }]);
  assert.equal(without.verdict(counting), 'noMatch'); // `data` alone is a missing attribute: an error, no match
  assert.equal(compileFilters([{ exact: { type: 'payment.sent' } }, { sql: "subject LIKE 'acct-%' AND NOT EXISTS data" }]).verdict(counting), 'match');
  assert.equal(reads_, 0, 'no filter names a data path: data is never read');
  assert.equal(compileFilters([{ sql: 'data.amount > 100' }, { exact: { 'data.merchant.country': 'NL' } }]).verdict(counting), 'match');
  assert.equal(reads_, 2);
});

test('each member a path looks up is one step of the budget, and running out is budgetExceeded, not noMatch', () => {
  const nodes = (expression: string) => compileCesql(expression).nodes;
  // sql: the path's members at evaluation, on top of the subscription's fixed cost of one step per filter and node
  const sql = compileFilters([{ sql: 'data.merchant.country > 1' }]);
  assert.equal(sql.cost, 1 + nodes('data.merchant.country > 1'));
  const budget = { steps: 1000 };
  sql.verdict(event, budget);
  // one step per member, then 'NL' cast to Integer reads its 2 characters (a cast error: no match)
  assert.equal(1000 - budget.steps, sql.cost + 2 + 2);
  const used = (filters: Filter[], on: Record<string, unknown> = event) => {
    const b = { steps: 1000 };
    compileFilters(filters).verdict(on, b);
    return 1000 - b.steps;
  };
  assert.equal(used([{ sql: 'data.amount > 1' }]) - used([{ sql: 'amount > 1' }]), 1);
  assert.equal(used([{ sql: 'data.items.0.qty > 1' }]) - used([{ sql: 'amount > 1' }]), 3);
  assert.equal(used([{ sql: 'EXISTS data.items.0.qty' }]) - used([{ sql: 'EXISTS amount' }]), 3);
  // a missing path costs its whole length too
  assert.equal(used([{ sql: 'EXISTS data.a.b.c' }]) - used([{ sql: 'EXISTS amount' }]), 3);
  assert.equal(used([{ exact: { 'data.items.0.sku': 'a-1' } }]) - used([{ exact: { subject: 'acct-42' } }]), 3);

  // too few steps left for the lookup: the filter could not judge the event
  const deep: Filter = { sql: `data.${Array.from({ length: 16 }, () => 'a').join('.')} = 1` };
  const exactDeep: Filter = { exact: { [`data.${Array.from({ length: 16 }, () => 'a').join('.')}`]: '1' } };
  for (const filter of [deep, exactDeep, { not: deep }, { not: exactDeep }] as Filter[]) {
    const compiled = compileFilters([filter]);
    const b = { steps: compiled.cost + 15 };
    assert.equal(compiled.verdict(event, b), 'budgetExceeded', JSON.stringify(filter));
    assert.equal(b.steps, 0);
    assert.notEqual(compiled.verdict(event, { steps: compiled.cost + 16 }), 'budgetExceeded', JSON.stringify(filter));
  }
  const r = compileCesql('EXISTS data.a OR data.amount > 1').evaluate(event, { steps: 1 });
  assert.equal(r.budgetExceeded, true);
  assert.equal(r.value, false);

  // a large data value costs what it costs as an attribute: a comparison or LIKE reads it once, charged per character
  const big = 'x'.repeat(Math.ceil(1_000_000 * 0.6));
  const bigEvent = { ...event, data: { note: big } };
  const like: Filter = { sql: "data.note LIKE '%y%'" };
  assert.equal(compileFilters([like]).verdict(bigEvent), 'noMatch');
  assert.equal(compileFilters([{ not: like }, { not: like }]).verdict(bigEvent), 'budgetExceeded');
});

test('property: any data and any path evaluate without throwing, and EXISTS says exactly when reading gives no error', () => {
  const key = fc.constantFrom('a', 'b', '0', '1', 'A', '_x', 'constructor', '__proto__', 'length');
  const data = fc.jsonValue({ maxDepth: 4 }).chain((v) =>
    fc.dictionary(key, fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constant(v)), { maxKeys: 4 }).map((o) => [o, v] as const),
  );
  fc.assert(
    fc.property(data, fc.array(key, { minLength: 1, maxLength: 5 }), fc.boolean(), ([object, other], segments, whole) => {
      const on = { ...event, data: whole ? other : object };
      const path = `data.${segments.join('.')}`;
      const exists = compileCesql(`EXISTS ${path}`).evaluate(on);
      const read = compileCesql(path).evaluate(on);
      assert.deepEqual(exists.errors, []);
      assert.equal(exists.value, read.errors.length === 0, `${path} on ${JSON.stringify(on.data)}`);
      if (read.errors.length !== 0) assert.deepEqual(read.errors.map((e) => e.kind), ['missingAttribute']);
      else assert.ok(['string', 'number', 'boolean'].includes(typeof read.value));
      const text = compileFilters([{ exact: { [path]: String(read.value) } }])(on);
      if (read.errors.length === 0) assert.equal(text, true, `exact ${path} = ${String(read.value)}`);
      else assert.equal(text, false);
    }),
    { numRuns: 3_000, seed: 11 },
  );
});

test('property: the API schema accepts exactly the data paths the compiler compiles', () => {
  const name = fc.oneof(
    fc.constantFrom('data.a', 'data.a.0', 'data.', 'data..a', 'data.a-b', 'data.a b', 'Data.a', 'datum.a', 'data'),
    fc.array(fc.oneof(fc.constantFrom('x', '_', '9', 'é', '-', ''), fc.string({ maxLength: 3 })), { maxLength: 20 }).map((s) => `data.${s.join('.')}`),
  );
  fc.assert(
    fc.property(name, fc.constantFrom('exact', 'prefix', 'suffix', 'sql'), (path, dialect) => {
      const filters = [dialect === 'sql' ? { sql: `${path} = 'x'` } : { [dialect]: { [path]: 'x' } }];
      let compiles = true;
      try {
        compileFilters(filters);
      } catch (err) {
        assert.ok(err instanceof FilterCompileError, String(err));
        compiles = false;
      }
      assert.equal(subscriptionCreateSchema.safeParse({ filters }).success, compiles, JSON.stringify(filters));
    }),
    { numRuns: 2_000, seed: 7 },
  );
});
