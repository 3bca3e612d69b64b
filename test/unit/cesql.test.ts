import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CesqlError,
  CesqlParseError,
  compileCesql,
  FunctionRegistry,
  type CesqlErrorKind,
  type CesqlValue,
} from '../../platform/filters/cesql/index.ts';

/** What the CESQL TCK does not reach: parse errors, the edges of casts, LIKE, overflow, attributes. */

const event = {
  specversion: '1.0',
  id: 'evt-1',
  source: 'https://bank.example/ledger',
  type: 'payment.sent',
  subject: 'acct-42',
  tenantid: 'acme',
  amount: 250,
  ratio: 1.5,
  flag: true,
  empty: null,
  data: { amount: 250 },
};

function check(expression: string, value: CesqlValue, error?: CesqlErrorKind, on: Record<string, unknown> = event): void {
  const result = compileCesql(expression).evaluate(on);
  assert.ok(Object.is(result.value, value), `${expression}: expected ${JSON.stringify(value)}, got ${JSON.stringify(result.value)}`);
  assert.equal(result.error?.kind, error, `${expression}: error kind`);
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

test('a parse error names the position, what was expected and what was found', () => {
  const err = parseError("(subject = 'a'");
  assert.equal(err.position, 14);
  assert.equal(err.expected, "')'");
  assert.equal(err.message, "expected ')' at position 14, found end of input");
  assert.equal(err.kind, 'parse');
  assert.equal(err.code, 'cesql_parse');
  assert.ok(err instanceof CesqlError);

  const call = parseError('ABC(');
  assert.equal(call.position, 4);
  assert.equal(call.message, "expected an expression or ')' at position 4, found end of input");

  const trailing = parseError("subject = 'a' 'b'");
  assert.equal(trailing.position, 14);
  assert.equal(trailing.found, "'b'");

  assert.equal(parseError("LENGTH('a' 'b')").message, "expected ',' or ')' at position 11, found 'b'");
  assert.equal(parseError('a = ').position, 4);
  assert.equal(parseError("'abc").message, "expected closing ' of the string literal started at position 0 at position 4, found end of input");
  assert.equal(parseError('a ! b').position, 2);
});

test('invalid syntax is rejected at compile time', () => {
  for (const expression of [
    '',
    '   ',
    '2147483648',
    '+2147483648',
    '1 IN ()',
    "subject LIKE type",
    "subject LIKE 'a' || 'b'",
    'my_ext = 1',
    'EXISTS',
    'EXISTS 1a_b',
    'a NOT b',
    'NOT',
    '1 +',
    '(1',
    '1)',
    'AND = 1',
    'LEN9TH(1)',
    "'a' = \"b",
    'subject = = 1',
    '+ 1',
  ]) {
    parseError(expression);
  }
});

test('integer literals span the 32-bit range, and a sign belongs to the literal', () => {
  check('2147483647', 2147483647);
  check('-2147483648', -2147483648);
  check('+7', 7);
  check('007', 7);
  check('-0', 0);
  check('4 -1', 3);
  check('--2147483648', 0, 'math');
  check('-(-2147483648)', 0, 'math');
  check('ABS(-2147483648)', 2147483647, 'math');
});

test('integer arithmetic is 32-bit: overflow is a math error with 0', () => {
  check('2147483647 + 1', 0, 'math');
  check('-2147483648 - 1', 0, 'math');
  check('65536 * 65536', 0, 'math');
  check('-65536 * 32768', -2147483648);
  check('-2147483648 / -1', 0, 'math');
  check('-2147483648 % -1', 0);
  check('-7 / 2', -3);
  check('-7 % 2', -1);
  check('7 % -2', 1);
  check('0 * -1', 0);
  check('-1 / 5', 0);
  check('amount / (amount - 250)', 0, 'math');
});

test('precedence follows spec 3.6: unary first, then LIKE and IN, arithmetic, comparison, logic left to right', () => {
  check('1 + 2 * 3', 7);
  check('2 - 3 - 4', -5);
  check('7 / 2 * 2', 6);
  check('NOT TRUE = FALSE', true);
  check('TRUE OR FALSE AND FALSE', false);
  check('FALSE AND FALSE OR TRUE', true);
  check('TRUE XOR TRUE XOR TRUE', true);
  check("NOT subject LIKE 'acct%'", false, 'cast');
  check("subject LIKE 'acct%' = TRUE", true);
  check('1 + 1 IN (2)', 1);
  check('2 = 1 + 1', true);
  check('-amount * 2', -500);
});

test('string literals: both quote styles, escaped quotes, other backslashes kept', () => {
  check("'it\\'s'", "it's");
  check('"say \\"hi\\""', 'say "hi"');
  check("'a\"b'", 'a"b');
  check('"a\'b"', "a'b");
  check("LENGTH('a\\\\')", 3);
  check("LENGTH('a\\nb')", 4);
  check("''", '');
});

test('keywords and functions are case-insensitive, attribute names resolve in lower case', () => {
  check('SUBJECT = \'acct-42\' aNd Exists TenantId', true);
  check("length('abc') = LeNgTh('xyz')", true);
  check('tRuE xor FALSE', true);
});

test('implicit casts: = casts the left operand to the type of the right one', () => {
  check("'5' = 5", true);
  check("'+5' = 5", true);
  check("' 5' = 5", false, 'cast');
  check("'abc' = 1", false, 'cast');
  check("'2147483648' = 1", false, 'cast');
  check('TRUE = 1', true);
  check("1 = '1'", true);
  check("'TrUe' = TRUE", true);
  check('TRUE = \'true\'', true);
  check('TRUE = \'TRUE\'', false);
  check('10 = TRUE', false, 'cast');
  check('amount = 250', true);
  check("amount = '250'", true);
  check("'abc' != 1", true, 'cast');
  check("'10' < '9'", false);
  check('1 AND TRUE', false, 'cast');
  check('10 OR TRUE', true, 'cast');
  check("'yes' AND TRUE", false, 'cast');
});

test('explicit casting functions', () => {
  check('INT(\'-12\')', -12);
  check('INT(TRUE)', 1);
  check("INT('1.5')", 0, 'cast');
  check('BOOL(1)', true);
  check('BOOL(0)', false);
  check('BOOL(-3)', true);
  check("BOOL('FALSE')", false);
  check("BOOL('no')", false, 'cast');
  check('STRING(-5)', '-5');
  check('STRING(FALSE)', 'false');
  check("IS_INT('12')", true);
  check("IS_INT('1.5')", false);
  check("IS_INT('99999999999')", false);
  check('IS_INT(3)', true);
  check("IS_BOOL('False')", true);
  check('IS_BOOL(1)', false);
});

test('LIKE: wildcards, escapes, regexp characters, code points', () => {
  check("'a%b' LIKE 'a\\%b'", true);
  check("'axb' LIKE 'a\\%b'", false);
  check("'a_b' LIKE 'a\\_b'", true);
  check("'axb' LIKE 'a\\_b'", false);
  check("'a\\b' LIKE 'a\\b'", true);
  check("'a\\xb' LIKE 'a\\_b'", false);
  check("'a.c' LIKE 'a.c'", true);
  check("'abc' LIKE 'a.c'", false);
  check("'(x)+[y]' LIKE '(%)+[_]'", true);
  check("'ab' LIKE 'ab%ba'", false);
  check("'abba' LIKE 'ab%ba'", true);
  check("'😀' LIKE '_'", true);
  check("'a\nb' LIKE 'a%b'", true);
  check("'a\nb' LIKE 'a_b'", true);
  check("'' LIKE '%'", true);
  check("'' LIKE ''", true);
  check("'x' LIKE ''", false);
  check("'ABC' LIKE 'abc'", false);
  check("type LIKE 'payment.%'", true);
  check("type LIKE '%.sent'", true);
  check("type LIKE '%ment%'", true);
  check("type NOT LIKE 'payment.%'", false);
  check("amount LIKE '2_0'", true);
  check("missing LIKE '%'", false, 'missingAttribute');
});

test('IN: the left operand decides the type, the set is scanned until a match', () => {
  check("subject IN ('a', 'acct-42')", true);
  check("subject NOT IN ('a', 'b')", true);
  check("amount IN ('250')", true);
  check("subject IN (missing, 'acct-42')", false, 'missingAttribute');
  check("subject IN ('acct-42', missing)", true);
  check("1 IN ('x', 1)", true, 'cast');
  check("tenantid IN (subject, source, 'acme')", true);
  check("TRUE IN ('true')", true);
});

test('attributes: primitive values kept, others as strings, null and the payload absent', () => {
  check('amount', 250);
  check('amount + 1', 251);
  check('ratio', '1.5');
  check("ratio = '1.5'", true);
  check('flag', true);
  check('empty', false, 'missingAttribute');
  check('EXISTS empty', false);
  check('data', false, 'missingAttribute');
  check('EXISTS data', false);
  check('EXISTS amount', true);
  check('big', '3000000000', undefined, { ...event, big: 3000000000 });
  check('obj', '{"a":1}', undefined, { ...event, obj: { a: 1 } });
  check('when', '2024-01-02T03:04:05.000Z', undefined, { ...event, when: new Date('2024-01-02T03:04:05Z') });
});

test('missing attributes: EXISTS guards them, an error anywhere makes the result the zero value', () => {
  check("EXISTS region AND region = 'eu'", false);
  check("NOT EXISTS region OR region = 'eu'", true);
  check("region = 'eu' OR TRUE", false, 'missingAttribute');
  check('NOT (missing = 1)', false, 'missingAttribute');
  check('LENGTH(missing)', 0, 'missingAttribute');
  check('UPPER(missing)', '', 'missingAttribute');
  check('missing XOR TRUE', false, 'missingAttribute');
  check('1 + 1 / 0 + missing', 0, 'math');
});

test('string functions count characters (code points) and follow the spec edge cases', () => {
  check("LENGTH('😀a')", 2);
  check("LEFT('😀ab', 1)", '😀');
  check("RIGHT('a😀', 1)", '😀');
  check("SUBSTRING('x😀yz', 2, 2)", '😀y');
  check("SUBSTRING('abcdef', 6)", 'f');
  check("SUBSTRING('abcdef', -6)", 'abcdef');
  check("SUBSTRING('abcdef', 7)", '', 'functionEvaluation');
  check("SUBSTRING('abcdef', 2, 100)", 'bcdef');
  check("SUBSTRING('abcdef', 2, -1)", '', 'functionEvaluation');
  check("SUBSTRING('', 0)", '');
  check("LEFT('abc', 0)", '');
  check("RIGHT('abc', 0)", '');
  check("LEFT('abc', 'x')", '', 'cast');
  check("TRIM('\u00a0\u0085 a \u3000')", 'a');
  check("TRIM('\u200b a')", '\u200b a');
  check("CONCAT_WS('-', 1, TRUE, 'x')", '1-true-x');
  check('CONCAT(1, 2)', '12');
  check("LOWER('ÀB')", 'àb');
});

test('unknown functions and arities are missingFunction errors, reported at compile time too', () => {
  const compiled = compileCesql("NOPE(subject) OR LENGTH('a', 'b')");
  assert.deepEqual(
    compiled.staticErrors.map((e) => [e.kind, e.message]),
    [
      ['missingFunction', 'no function NOPE taking 1 argument'],
      ['missingFunction', 'no function LENGTH taking 2 arguments'],
    ],
  );
  const result = compiled.evaluate(event);
  assert.equal(result.value, false);
  assert.equal(result.error?.kind, 'missingFunction');
  assert.equal(compiled.matches(event), false);
  assert.deepEqual(compileCesql('LENGTH(subject)').staticErrors, []);
});

test('compiled once, evaluated many times: no state leaks between evaluations', () => {
  const compiled = compileCesql("region = 'eu'");
  const withRegion = { ...event, region: 'eu' };
  assert.equal(compiled.evaluate(event).error?.kind, 'missingAttribute');
  const ok = compiled.evaluate(withRegion);
  assert.equal(ok.value, true);
  assert.equal(ok.error, undefined);
  assert.deepEqual(ok.errors, []);
  assert.equal(compiled.matches(event), false);
  assert.equal(compiled.matches(withRegion), true);
  const failed = compiled.evaluate(event);
  assert.equal(failed.errors.length, 1);
  assert.equal(compiled.evaluate(event).errors.length, 1);
  assert.equal(failed.errors.length, 1, 'an earlier result is not changed by a later evaluation');
  assert.equal(compiled.expression, "region = 'eu'");
});

test('matches passes only a Boolean true without errors (CESQL 1.0: other results do not pass)', () => {
  assert.equal(compileCesql("'true'").matches(event), false);
  assert.equal(compileCesql("'yes'").matches(event), false);
  assert.equal(compileCesql('1').matches(event), false);
  assert.equal(compileCesql('flag').matches(event), true); // a Boolean extension attribute
  assert.equal(compileCesql('subject').matches(event), false); // a String result does not pass
  assert.equal(compileCesql('TRUE').matches(event), true);
  assert.equal(compileCesql('NOT 10').matches(event), false);
  assert.equal(compileCesql("tenantid = 'acme' AND (subject IN ('a','b','c') OR EXISTS amount)").matches(event), true);
  assert.equal(compileCesql("type LIKE 'payment.%' AND amount > 100").matches(event), true);
  assert.equal(compileCesql("type LIKE 'payment.%' AND amount > 1000").matches(event), false);
});

test('a custom function registry: overloads by arity, variadic only above the fixed ones', () => {
  const functions = new FunctionRegistry([]);
  functions.register({ name: 'twice', params: ['Integer'], returns: 'Integer', call: ([x]) => (x as number) * 2 });
  functions.register({ name: 'TWICE', params: ['String', 'String'], returns: 'String', call: ([a, b]) => `${a}${b}${a}${b}` });
  assert.throws(() => functions.register({ name: 'twice', params: ['String'], returns: 'String', call: () => '' }), /clashes/);
  assert.throws(() => functions.register({ name: 'twice', params: ['String'], variadic: 'String', returns: 'String', call: () => '' }), /clashes/);
  functions.register({ name: 'twice', params: ['String', 'String', 'String'], variadic: 'String', returns: 'String', call: (a) => a.join('') });
  assert.equal(compileCesql("TWICE('21')", { functions }).evaluate(event).value, 42);
  assert.equal(compileCesql("twice('a', 1)", { functions }).evaluate(event).value, 'a1a1');
  assert.equal(compileCesql("twice('a', 'b', 'c', 'd')", { functions }).evaluate(event).value, 'abcd');
  assert.equal(compileCesql("LENGTH('a')", { functions }).evaluate(event).error?.kind, 'missingFunction');
});
