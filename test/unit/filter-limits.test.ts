import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CesqlLimitError,
  CesqlParseError,
  compileCesql,
  FunctionRegistry,
  MAX_EVALUATION_STEPS,
  MAX_EXPRESSION_LENGTH,
  MAX_NESTING_DEPTH,
  MAX_NODES,
} from '../../platform/filters/cesql/index.ts';
import {
  BUDGET_EXCEEDED_REASON,
  checkFilters,
  compileFilters,
  FilterCompileError,
  MAX_FILTERS,
  MAX_SQL_NODES,
  type Filter,
} from '../../platform/filters/subscription-filter.ts';
import { subscriptionCreateSchema, subscriptionPatchSchema } from '../../functions/subscriptions/schema.ts';
import { compileSubscription, matcherOf, type IndexedSubscription } from '../../platform/store/subscription-index.ts';
import type { Subscription } from '../../platform/store/subscriptions.ts';

/** Tenant-supplied filters are bounded: in size, nesting and nodes at creation, in work per event. */

function limitError(expression: string): CesqlLimitError {
  try {
    compileCesql(expression);
  } catch (err) {
    assert.ok(err instanceof CesqlLimitError, `${expression.slice(0, 40)}: threw ${String(err)}`);
    assert.ok(err instanceof CesqlParseError);
    assert.equal(err.kind, 'parse');
    return err;
  }
  assert.fail(`${expression.slice(0, 40)}…: compiled, expected a limit error`);
}

const nest = (open: string, inner: string, close: string, levels: number): string => `${open.repeat(levels)}${inner}${close.repeat(levels)}`;

test('nesting deeper than 64 is a parse error naming the limit, whatever nests', () => {
  assert.equal(MAX_NESTING_DEPTH, 64);
  for (const [name, at, over] of [
    ['parentheses', (n: number) => nest('(', 'TRUE', ')', n), 2000],
    ['function calls', (n: number) => `${nest('ABS(', '1', ')', n)} = 1`, 800],
    ['NOT', (n: number) => `${'NOT '.repeat(n)}TRUE`, 1000],
    ['unary minus', (n: number) => `${'- '.repeat(n)}amount = 1`, 1000],
    ['IN lists', (n: number) => `${nest('1 IN (', '1', ')', n)}`, 500],
    ['LIKE on LIKE', (n: number) => `subject${" LIKE 'a'".repeat(n + 1)}`, 300],
  ] as const) {
    const err = limitError(at(over));
    assert.equal(err.limit, 'depth', name);
    assert.match(err.message, /nesting deeper than 64/, name);
    // the deepest allowed nesting compiles and evaluates; one more level does not
    assert.doesNotThrow(() => compileCesql(at(MAX_NESTING_DEPTH)).evaluate({ subject: 'a', amount: 1 }), name);
    assert.equal(limitError(at(MAX_NESTING_DEPTH + 1)).limit, 'depth', name);
  }
  // the position is where the limit was passed
  assert.equal(limitError(nest('(', 'TRUE', ')', 2000)).position, 64);
});

test('more than 1000 nodes is a parse error naming the limit; 1000 compile', () => {
  assert.equal(MAX_NODES, 1000);
  const chain = (terms: number): string => Array.from({ length: terms }, () => 'x').join(' OR ');
  assert.doesNotThrow(() => compileCesql(chain(500))); // 999 nodes
  const err = limitError(chain(501));
  assert.equal(err.limit, 'nodes');
  assert.match(err.message, /more than 1000 nodes/);
  assert.equal(limitError(`type IN (${Array.from({ length: 1000 }, (_, i) => i).join(',')})`).limit, 'nodes');
  assert.equal(limitError('1+'.repeat(1000) + '1').limit, 'nodes');
  assert.equal(compileCesql(`type IN (${Array.from({ length: 998 }, (_, i) => i).join(',')})`).nodes, 1000);
});

test('an expression longer than 4096 characters is refused before it is read', () => {
  assert.equal(MAX_EXPRESSION_LENGTH, 4096);
  const err = limitError(Array.from({ length: 12_000 }, () => 'flag').join(' OR '));
  assert.equal(err.limit, 'length');
  assert.match(err.message, /longer than 4096 characters/);
  assert.doesNotThrow(() => compileCesql(`subject = '${'x'.repeat(4096 - 12)}'`));
  assert.equal(limitError(`subject = '${'x'.repeat(4096 - 11)}'`).limit, 'length');
});

/** The stack depth at which a function is called, through a registry whose function records it. */
function probing(): { functions: FunctionRegistry; depths: number[] } {
  const depths: number[] = [];
  const frames = (): number => {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = Infinity;
    const depth = (new Error().stack ?? '').split('\n').length;
    Error.stackTraceLimit = limit;
    return depth;
  };
  class Probing extends FunctionRegistry {
    override resolve(name: string, arity: number) {
      if (name === 'PROBE') depths.push(frames());
      return super.resolve(name, arity);
    }
  }
  const functions = new Probing();
  functions.register({ name: 'PROBE', params: [], returns: 'Boolean', call: () => (depths.push(frames()), true) });
  return { functions, depths };
}

test('a chain of 1000 nodes compiles and evaluates in constant stack depth: no recursion per operator', () => {
  for (const op of ['OR', 'AND', 'XOR', '+', '=']) {
    const { functions, depths } = probing();
    // `x` is false, `y` true: every operand is read, none fails
    const chain = (terms: number): string =>
      op === '+' ? `${Array.from({ length: terms }, () => '1').join(' + ')} + INT(PROBE()) = 0` : `${Array.from({ length: terms }, () => (op === 'AND' ? 'y' : 'x')).join(` ${op} `)} ${op} PROBE()`;
    const short = compileCesql(chain(3), { functions });
    const long = compileCesql(chain(497), { functions });
    assert.ok(long.nodes >= 995 && long.nodes <= MAX_NODES, `${op}: ${long.nodes} nodes`);
    short.evaluate({ x: false, y: true });
    const result = long.evaluate({ x: false, y: true });
    assert.deepEqual(result.errors, [], op);
    // depths: [compile short, compile long, evaluate short, evaluate long]
    const [compileShort, compileLong, evalShort, evalLong] = depths as [number, number, number, number];
    assert.ok(Math.abs(compileLong - compileShort) <= 2, `${op}: compiling 497 terms is ${compileLong - compileShort} frames deeper than 3 terms`);
    assert.ok(Math.abs(evalLong - evalShort) <= 2, `${op}: evaluating 497 terms is ${evalLong - evalShort} frames deeper than 3 terms`);
  }
  // and the answers are those of the operators nested left to right
  const or = compileCesql(`${Array.from({ length: 499 }, (_, i) => `n = ${i}`).slice(0, 249).join(' OR ')} OR n = 1000`);
  assert.equal(or.matches({ n: 1000 }), true);
  assert.equal(or.matches({ n: 248 }), true);
  assert.equal(or.matches({ n: 249 }), false);
});

test('chains keep the error semantics of the nested operators they replace', () => {
  const check = (expression: string, value: boolean | number, error?: string, event: Record<string, unknown> = {}) => {
    const result = compileCesql(expression).evaluate(event);
    assert.equal(result.value, value, expression);
    assert.equal(result.error?.kind, error, `${expression}: error`);
  };
  check('NOT 10 OR TRUE OR FALSE', false, 'cast'); // the left operand failed: every level above yields false
  check('10 OR TRUE', true, 'cast'); // one level: the failed cast is false, the right operand decides
  check('10 OR TRUE OR FALSE', false, 'cast'); // two: the level above sees the error
  check('1 + 2 * 3 - 4 / 0 + 1', 0, 'math');
  check('1 + 2 * 3 - 4 + 1', 4);
  check("'a' = 'a' = TRUE", true);
  check('5 > 3 = TRUE', true);
  check('TRUE AND FALSE OR TRUE XOR TRUE', false);
  check('FALSE AND missing OR TRUE', true); // AND decided before reading `missing`
  check('missing OR TRUE AND TRUE', false, 'missingAttribute');
  check('TRUE OR missing OR missing', true);
  check('FALSE OR FALSE OR missing', false, 'missingAttribute');
  check('1 AND TRUE AND TRUE', false, 'cast');
  check('TRUE XOR 1 XOR TRUE', false, 'cast');
  check('2147483647 + 1 - 1', 0, 'math');
});

test('string work is charged to the budget: huge CONCATs, large comparisons and casts end with budgetExceeded, never throw', () => {
  const big = 'x'.repeat(300_000);
  const cases: [string, Record<string, unknown>][] = [
    // 270 million characters, past what V8 lets a string hold: refused before it is built
    [`LENGTH(CONCAT(${'a, '.repeat(899)}a)) > 0`, { a: big }],
    [`LENGTH(CONCAT_WS(a, ${'a, '.repeat(10)}a)) > 0`, { a: big }],
    [`${Array.from({ length: 8 }, () => 'a = b').join(' AND ')}`, { a: big, b: `${big}` }],
    [`${Array.from({ length: 8 }, () => "UPPER(a) = 'X'").join(' OR ')}`, { a: big }],
    [`${Array.from({ length: 8 }, () => 'INT(a) = 1').join(' OR ')}`, { a: '0'.repeat(300_000) }],
    [`${Array.from({ length: 8 }, () => "LENGTH(obj) = 1").join(' OR ')}`, { obj: { pad: big } }],
    [`${Array.from({ length: 8 }, () => "a LIKE '%y%'").join(' OR ')}`, { a: big }],
  ];
  for (const [expression, event] of cases) {
    const compiled = compileCesql(expression);
    const result = compiled.evaluate(event);
    assert.equal(result.budgetExceeded, true, expression.slice(0, 60));
    assert.ok(result.errors.some((e) => e.kind === 'budgetExceeded'));
    assert.equal(compiled.matches(event), false);
  }
  // one pass over a large value is within the budget
  assert.equal(compileCesql("a LIKE '%y%' OR a = b").evaluate({ a: big, b: big }).budgetExceeded, false);
  assert.ok(MAX_EVALUATION_STEPS >= 1_000_000);
});

const deepNot = (levels: number, inner: unknown = { exact: { subject: 'x' } }): unknown => (levels === 0 ? inner : { not: deepNot(levels - 1, inner) });

test('filters nested deeper than 8 are refused by the API with the field, by the same step the route compiles with', () => {
  const tooDeep = [deepNot(9)];
  const issues = checkFilters(tooDeep);
  assert.deepEqual(issues, [{ path: [0, ...Array(9).fill('not')], message: 'filters nest deeper than 8 (all, any and not)' }]);
  assert.throws(() => compileFilters(tooDeep), (err) => err instanceof FilterCompileError && /filters\[0\]\.not.*deeper than 8/.test(err.message));
  for (const schema of [subscriptionCreateSchema, subscriptionPatchSchema]) {
    const parsed = schema.safeParse({ filters: tooDeep });
    assert.equal(parsed.success, false);
    assert.deepEqual(parsed.error!.issues[0]!.path, ['filters', 0, ...Array(9).fill('not')]);
  }
  // 8 deep is allowed, by both
  assert.equal(subscriptionCreateSchema.safeParse({ filters: [deepNot(8)] }).success, true);
  assert.doesNotThrow(() => compileFilters([deepNot(8)]));
  // a body nested far deeper is refused without recursing into it
  let huge: unknown = { exact: { subject: 'x' } };
  for (let i = 0; i < 100_000; i++) huge = { not: huge };
  assert.equal(checkFilters([huge]).length, 1);
});

test('a subscription holds at most 128 filters and 2000 CESQL nodes in all', () => {
  const exact = { exact: { subject: 'x' } };
  const many = Array.from({ length: 5 }, () => ({ any: Array.from({ length: 30 }, () => exact) }));
  assert.equal(MAX_FILTERS, 128);
  assert.deepEqual(checkFilters(many), [{ path: [], message: 'more than 128 filters in all, counting those inside all, any and not' }]);
  assert.deepEqual(checkFilters(many.slice(0, 4)), []);
  const sql = { sql: Array.from({ length: 450 }, () => 'x').join(' OR ') }; // 899 nodes
  assert.equal(MAX_SQL_NODES, 2000);
  assert.deepEqual(checkFilters([sql, sql]), []);
  assert.deepEqual(checkFilters([sql, { not: sql }, sql]), [{ path: [], message: 'more than 2000 CESQL nodes in all the sql filters together' }]);
  const parsed = subscriptionCreateSchema.safeParse({ filters: [sql, sql, sql] });
  assert.equal(parsed.success, false);
  assert.deepEqual(parsed.error!.issues[0]!.path, ['filters']);
});

test('filters share one budget per event; running out is a verdict of its own, and NOT does not turn it into a match', () => {
  const half = 'x'.repeat(Math.ceil(MAX_EVALUATION_STEPS * 0.6));
  const contains: Filter = { sql: "subject LIKE '%y%'" };
  const one = compileFilters([contains]);
  assert.equal(one.verdict({ subject: half }), 'noMatch');
  const two = compileFilters([{ not: contains }, { not: contains }]);
  assert.equal(two.verdict({ subject: half }), 'budgetExceeded');
  assert.equal(two({ subject: half }), false);
  // each event starts with a full budget
  assert.equal(two.verdict({ subject: 'short' }), 'match');
  assert.equal(two.verdict({ subject: half }), 'budgetExceeded');
  const costly: Filter = { sql: `subject LIKE '%${'a_'.repeat(12)}b%'` };
  for (const filters of [[costly], [{ not: costly }], [{ any: [costly, { exact: { type: 't' } }] }], [{ all: [{ exact: { type: 't' } }, { not: { not: costly } }] }]] as Filter[][]) {
    const compiled = compileFilters(filters);
    assert.equal(compiled.verdict({ type: 't', subject: 'a'.repeat(200_000) }), 'budgetExceeded', JSON.stringify(filters).slice(0, 80));
    assert.equal(compiled({ type: 't', subject: 'a'.repeat(200_000) }), false);
  }
  assert.match(BUDGET_EXCEEDED_REASON, /1,000,000 steps/);
});

test('exact, prefix and suffix compare text: numbers and Booleans in their String form, objects never', () => {
  const f = compileFilters([{ any: [{ exact: { amount: '250' } }, { prefix: { flag: 'tr' } }, { suffix: { obj: ']' } }] }]);
  assert.equal(f({ amount: 250 }), true);
  assert.equal(f({ flag: true }), true);
  assert.equal(f({ obj: { a: [1] } }), false);
  assert.equal(f({ obj: [1, 2] }), false);
});

/** Random filter JSON, valid or not: the API's schema accepts exactly what compileFilters compiles. */
const anyFilter = fc.letrec((tie) => ({
  filter: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ exact: fc.dictionary(fc.constantFrom('subject', 'Type', 'x'), fc.oneof(fc.string({ maxLength: 3 }), fc.integer()), { maxKeys: 2 }) }),
    fc.record({ sql: fc.oneof(fc.constantFrom('TRUE', 'a >', 'NOPE()', "subject LIKE '%a_'"), fc.integer({ min: 0, max: 100 }).map((n) => nest('(', 'TRUE', ')', n))) }),
    fc.record({ all: fc.array(tie('filter'), { maxLength: 3 }) }),
    fc.record({ any: fc.array(tie('filter'), { maxLength: 3 }) }),
    fc.record({ not: tie('filter') }),
    fc.constantFrom({ regex: 'a' }, null, 'x', [], { exact: 'x' }, deepNot(12)),
  ),
})).filter;

test('property: the schema accepts exactly the filters that compileFilters compiles, and never throws anything else', () => {
  fc.assert(
    fc.property(fc.oneof(fc.array(anyFilter, { maxLength: 4 }), anyFilter), (filters) => {
      let compiles = true;
      try {
        compileFilters(filters);
      } catch (err) {
        assert.ok(err instanceof FilterCompileError, String(err));
        compiles = false;
      }
      const parsed = subscriptionCreateSchema.safeParse({ filters });
      assert.equal(parsed.success, compiles, JSON.stringify(filters).slice(0, 200));
      if (!parsed.success) assert.ok(parsed.error.issues.every((i) => i.path[0] === 'filters'));
    }),
    { numRuns: 2_000, seed: 5 },
  );
});

test("all of a tenant's subscriptions share one budget per event, so a tenant's subscription count cannot multiply an event's cost; other tenants keep theirs", () => {
  const sub = (tenant: string, n: number, filters: Filter[]): Subscription => ({ id: `sub_${tenant}_${n}`, tenant_id: tenant, filters, types: ['t'], created_at: '', updated_at: '' });
  const costly: Filter = { sql: `subject LIKE '%${'a_'.repeat(12)}b%'` };
  const cheap: Filter = { prefix: { subject: 'aaa' } };
  const subs = [...Array.from({ length: 50 }, (_, n) => sub('ten_a', n, [costly])), sub('ten_a', 50, [cheap]), sub('ten_b', 0, [cheap]), sub('ten_b', 1, [costly])];
  const matcher = matcherOf(subs.map(compileSubscription));
  const event = { type: 't', subject: 'a'.repeat(200_000) };
  const exceeded: IndexedSubscription[] = [];
  const matched = matcher.match('ten_a', event, exceeded);
  // the first costly subscription uses the budget up; every later one, the cheap one too, is not judged
  assert.deepEqual(matched, []);
  assert.equal(exceeded.length, 51);
  // alone, the cheap subscription matches: it was the shared budget that stopped it
  assert.equal(compileSubscription(subs[50]!).verdict(event), 'match');
  // another tenant's event has a budget of its own: its cheap subscription is judged before its costly one
  const other: IndexedSubscription[] = [];
  assert.deepEqual(matcher.match('ten_b', event, other).map((s) => s.sub.id), ['sub_ten_b_0']);
  assert.deepEqual(other.map((s) => s.sub.id), ['sub_ten_b_1']);
  // the fixed cost counts too: 600 subscriptions of 2,000 CESQL nodes each exceed the budget on a tiny event
  const wide: Filter[] = [{ sql: Array.from({ length: 333 }, () => 'flag').join(' OR ') }, { sql: Array.from({ length: 333 }, () => 'flag').join(' OR ') }, { sql: Array.from({ length: 333 }, () => 'flag').join(' OR ') }];
  const many = matcherOf(Array.from({ length: 600 }, (_, n) => compileSubscription(sub('ten_c', n, wide))));
  const over: IndexedSubscription[] = [];
  many.match('ten_c', { type: 't', flag: false }, over);
  assert.ok(over.length > 50 && over.length < 600, `${over.length} of 600 subscriptions over the budget`);
});
