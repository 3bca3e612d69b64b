import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileCesql, MAX_EVALUATION_STEPS } from '../../platform/filters/cesql/index.ts';
import { EvaluationContext } from '../../platform/filters/cesql/evaluation-context.ts';
import { compileLikePattern } from '../../platform/filters/cesql/like-pattern.ts';

/**
 * LIKE runs in time linear in the value (times the pattern's length at worst), never backtracking
 * across `%`, and agrees with a plain dynamic-programming matcher over code points on any input.
 */

function elapsed(run: () => void): number {
  const start = performance.now();
  run();
  return performance.now() - start;
}

test('the %a%a%a%a%a%a%a%a%b family is answered at once (a backtracking matcher took 13.8 s at 45 characters, 38 s at 60)', () => {
  const filter = compileCesql("subject LIKE '%a%a%a%a%a%a%a%a%b'");
  for (const n of [45, 60, 1000, 100_000]) {
    const ms = elapsed(() => assert.equal(filter.matches({ subject: 'a'.repeat(n) }), false));
    assert.ok(ms < 1000, `${n} characters took ${ms} ms`);
    assert.equal(filter.matches({ subject: `${'a'.repeat(n - 1)}b` }), true);
    // the last segment cannot end the value, so every middle one is searched: still one pass
    assert.equal(filter.matches({ subject: `${'a'.repeat(n - 1)}bc` }), false);
  }
});

test('patterns near the 4,096-character limit stay linear in the value', () => {
  const cases: [string, string, boolean][] = [
    [`%${'a%'.repeat(2030)}b`, 'a'.repeat(100_000), false],
    [`%${'a%'.repeat(2030)}b`, `${'a'.repeat(3000)}b`, true],
    [`${'a%'.repeat(2030)}b`, `${'a'.repeat(2029)}`, false],
    [`%${'ab'.repeat(1015)}_%${'ba'.repeat(1015)}`, 'ab'.repeat(50_000), false],
    [`%${'a_'.repeat(2030)}b%`, 'a'.repeat(100_000), false],
  ];
  for (const [pattern, value, expected] of cases) {
    assert.ok(pattern.length < 4096 - 16);
    const filter = compileCesql(`subject LIKE '${pattern}'`);
    let result: ReturnType<typeof filter.evaluate> | undefined;
    const ms = elapsed(() => (result = filter.evaluate({ subject: value })));
    assert.ok(ms < 1000, `${pattern.slice(0, 20)}… on ${value.length} characters took ${ms} ms`);
    // either answered, or stopped by the budget: never more work than that
    if (result!.budgetExceeded) assert.equal(expected, false);
    else assert.equal(result!.value, expected, pattern.slice(0, 30));
  }
});

test('a value the pattern cannot examine within the budget ends the evaluation with budgetExceeded, not a match', () => {
  // `_` between literals: every position of the value is a candidate to check (about 30 steps each)
  const pattern = `%${'a_'.repeat(12)}b%`;
  const value = 'a'.repeat(200_000);
  for (const expression of [`subject LIKE '${pattern}'`, `subject NOT LIKE '${pattern}'`, `NOT (subject LIKE '${pattern}')`]) {
    const filter = compileCesql(expression);
    const result = filter.evaluate({ subject: value });
    assert.equal(result.budgetExceeded, true, expression);
    assert.equal(result.error?.kind, 'budgetExceeded');
    assert.match(result.error!.message, /budget/);
    assert.equal(filter.matches({ subject: value }), false, expression);
    assert.equal(filter.check({ subject: value }, { steps: MAX_EVALUATION_STEPS }), 'budgetExceeded');
  }
  // the same pattern on a short value is answered
  assert.equal(compileCesql(`subject LIKE '${pattern}'`).matches({ subject: `${'a'.repeat(1000)}b` }), true);
  // and a cheap pattern on the large value is within the budget
  assert.equal(compileCesql("subject LIKE 'a%a'").matches({ subject: value }), true);
  assert.equal(compileCesql("subject LIKE '%aab%'").evaluate({ subject: value }).budgetExceeded, false);
});

test('every fast path and the general matcher charge the characters they examine', () => {
  const ctx = new EvaluationContext();
  const value = 'x'.repeat(10_000);
  for (const [pattern, charged] of [
    ['x%', 1],
    ['%x', 1],
    ['x%x', 2],
    ['%y%', 10_000],
    ['xx', 2],
    ['%', 0],
  ] as const) {
    ctx.reset(false, 1_000_000);
    compileLikePattern(pattern)(value, ctx);
    assert.equal(1_000_000 - ctx.steps, charged, pattern);
  }
  ctx.reset(false, 100);
  assert.equal(compileLikePattern('%x_y%')(value, ctx), false);
  assert.equal(ctx.exhausted, true);
  assert.equal(ctx.count, 1);
});

/** Spec 3.4.3 over code points, by dynamic programming: the reference the matcher is held to. */
function referenceLike(value: string, pattern: string): boolean {
  type Token = { any: true } | { one: true } | { char: string };
  const tokens: Token[] = [];
  const p = Array.from(pattern);
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '\\' && (p[i + 1] === '%' || p[i + 1] === '_')) tokens.push({ char: p[++i]! });
    else if (c === '%') tokens.push({ any: true });
    else if (c === '_') tokens.push({ one: true });
    else tokens.push({ char: c });
  }
  const v = Array.from(value);
  // can[j]: the first i code points of the value match the first j tokens
  let can = new Array<boolean>(tokens.length + 1).fill(false);
  can[0] = true;
  for (let j = 1; j <= tokens.length; j++) can[j] = can[j - 1]! && 'any' in tokens[j - 1]!;
  for (let i = 1; i <= v.length; i++) {
    const next = new Array<boolean>(tokens.length + 1).fill(false);
    for (let j = 1; j <= tokens.length; j++) {
      const t = tokens[j - 1]!;
      if ('any' in t) next[j] = next[j - 1]! || can[j]!;
      else if ('one' in t) next[j] = can[j - 1]!;
      else next[j] = can[j - 1]! && t.char === v[i - 1];
    }
    can = next;
  }
  return can[tokens.length]!;
}

function like(value: string, pattern: string, steps = MAX_EVALUATION_STEPS): boolean {
  const ctx = new EvaluationContext();
  ctx.reset(false, steps);
  const result = compileLikePattern(pattern)(value, ctx);
  assert.equal(ctx.exhausted, false, 'small inputs stay within the budget');
  return result;
}

test('the reference matcher itself: wildcards, escapes, code points', () => {
  assert.equal(referenceLike('abba', 'ab%ba'), true);
  assert.equal(referenceLike('aba', 'ab%ba'), false);
  assert.equal(referenceLike('😀', '_'), true);
  assert.equal(referenceLike('a%b', 'a\\%b'), true);
  assert.equal(referenceLike('axb', 'a\\%b'), false);
  assert.equal(referenceLike('a\\b', 'a\\b'), true);
  assert.equal(referenceLike('', '%'), true);
});

test('half a surrogate pair in a pattern never matches half of a pair in the value', () => {
  assert.equal(like('😀', '%\uDE00'), false);
  assert.equal(like('😀', '\uD83D%'), false);
  assert.equal(like('😀', '%\uDE00%'), false);
  assert.equal(like('😀', '\uD83D_'), false);
  assert.equal(like('x\uDE00', '%\uDE00'), true);
  assert.equal(like('\uD83Dx', '\uD83D%'), true);
  assert.equal(like('😀😀', '%😀'), true);
  assert.equal(like('a😀b', 'a_b'), true);
  assert.equal(like('a😀b', '%_b'), true);
  assert.equal(like('a😀b', '%__b'), true);
  assert.equal(like('a😀b', '%___b'), false);
});

const alphabet = ['a', 'b', 'ab', '%', '_', '\\', '😀', '\uD83D', '\uDE00', 'é', '.', '*'];
const patternTokens = [...alphabet, '%', '_', '\\%', '\\_', '%a%', 'a_b'];
const smallValue = fc.array(fc.constantFrom(...alphabet), { maxLength: 14 }).map((a) => a.join(''));
const smallPattern = fc.array(fc.constantFrom(...patternTokens), { maxLength: 9 }).map((a) => a.join(''));

test('property: LIKE agrees with the dynamic-programming reference on small alphabets (wildcards, escapes, surrogates)', () => {
  fc.assert(
    fc.property(smallValue, smallPattern, (value, pattern) => {
      assert.equal(like(value, pattern), referenceLike(value, pattern), `${JSON.stringify(value)} LIKE ${JSON.stringify(pattern)}`);
    }),
    { numRuns: 20_000, seed: 42 },
  );
});

test('property: a pattern cut from the value itself, with wildcards put in, matches it; the reference agrees', () => {
  const derived = fc
    .tuple(fc.string({ unit: 'binary', maxLength: 16 }), fc.array(fc.tuple(fc.nat(), fc.constantFrom('%', '_', '')), { maxLength: 5 }))
    .map(([value, edits]) => {
      const points = Array.from(value);
      for (const [at, wildcard] of edits) if (points.length > 0) points[at % points.length] = wildcard;
      return { value, pattern: points.join('') };
    });
  fc.assert(
    fc.property(derived, ({ value, pattern }) => {
      assert.equal(like(value, pattern), referenceLike(value, pattern), `${JSON.stringify(value)} LIKE ${JSON.stringify(pattern)}`);
    }),
    { numRuns: 5_000, seed: 7 },
  );
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 6 }), (value, pattern) => {
      assert.equal(like(value, pattern), referenceLike(value, pattern));
    }),
    { numRuns: 5_000, seed: 11 },
  );
});

test('property: the same through a CESQL expression, against the pattern as the lexer reads it', () => {
  const quotable = fc.array(fc.constantFrom('a', 'b', '%', '_', '\\%', '\\_', '😀', 'x'), { maxLength: 8 }).map((a) => a.join(''));
  fc.assert(
    fc.property(smallValue, quotable, (value, pattern) => {
      const result = compileCesql(`subject LIKE '${pattern}'`).evaluate({ subject: value });
      assert.equal(result.value, referenceLike(value, pattern));
      assert.equal(result.errors.length, 0);
    }),
    { numRuns: 2_000, seed: 3 },
  );
});
