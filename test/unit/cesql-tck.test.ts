import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { CESQL_ERROR_KINDS, CesqlParseError, compileCesql, type CesqlErrorKind } from '../../platform/filters/cesql/index.ts';

/**
 * Runs the CESQL 1.0 TCK (cloudevents/spec, cesql/cesql_tck) kept beside the repository: every case
 * of every YAML file, asserting the value and the error kind.
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tckDir = path.resolve(repoRoot, '../shared/conformance/cesql_tck');

interface TckCase {
  name: string;
  expression: string;
  result?: boolean | number | string;
  error?: CesqlErrorKind;
  event?: Record<string, unknown>;
  eventOverrides?: Record<string, unknown>;
}

interface TckFile {
  name: string;
  tests: TckCase[];
}

const baseEvent = { specversion: '1.0', id: 'tck-event', source: 'https://example.com/tck', type: 'com.example.tck' };

function loadTck(): { file: string; suite: TckFile }[] {
  const files = readdirSync(tckDir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort();
  return files.map((file) => {
    const text = readFileSync(path.join(tckDir, file), 'utf8');
    const suite = parse(text) as TckFile;
    // An expression such as `true`, `0` or `-10` is a YAML boolean or number; read it again with the
    // failsafe schema, which keeps every scalar as the text that was written.
    const verbatim = parse(text, { schema: 'failsafe' }) as { tests?: { expression?: string }[] };
    suite.tests?.forEach((c, i) => {
      const expression = verbatim.tests?.[i]?.expression;
      if (expression !== undefined) c.expression = expression;
    });
    return { file, suite };
  });
}

function runCase(c: TckCase): { value?: boolean | number | string; error?: CesqlErrorKind } {
  let compiled;
  try {
    compiled = compileCesql(c.expression);
  } catch (err) {
    if (err instanceof CesqlParseError) return { error: 'parse' };
    throw err;
  }
  const event = c.event ?? { ...baseEvent, ...c.eventOverrides };
  const result = compiled.evaluate(event);
  return result.error === undefined ? { value: result.value } : { value: result.value, error: result.error.kind };
}

test('the CESQL TCK passes, every case of every file', () => {
  const suites = loadTck();
  assert.ok(suites.length > 0, `no TCK files in ${tckDir}`);
  let run = 0;
  const failures: string[] = [];
  for (const { file, suite } of suites) {
    assert.ok(Array.isArray(suite.tests), `${file} has no tests list`);
    for (const c of suite.tests) {
      run++;
      if (c.error !== undefined) assert.ok(CESQL_ERROR_KINDS.includes(c.error), `${file}: unknown error kind ${c.error}`);
      const got = runCase(c);
      const valueOk = c.result === undefined || Object.is(got.value, c.result);
      const errorOk = got.error === c.error;
      if (!valueOk || !errorOk) {
        failures.push(
          `${file} / ${c.name}: ${c.expression}\n    expected ${JSON.stringify(c.result)} error=${c.error ?? 'none'}` +
            `, got ${JSON.stringify(got.value)} error=${got.error ?? 'none'}`,
        );
      }
    }
  }
  console.log(`CESQL TCK: ${run} cases run from ${suites.length} files, ${run - failures.length} passed`);
  assert.ok(run > 0, 'the TCK has zero cases');
  assert.deepEqual(failures, []);
});
