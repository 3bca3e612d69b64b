import { PioneerError } from '../../errors.ts';

/**
 * The error kinds of CESQL 1.0 (section 3.3). The names are the ones the CESQL TCK uses.
 * An evaluation that raises one of these still yields a value: the zero value of the type of the
 * operator or function that failed (`false`, `0` or `''`).
 *
 * `budgetExceeded` is Pioneer's own: the evaluation used up its work budget (MAX_EVALUATION_STEPS in
 * evaluation-context.ts) and stopped. The event did not fail to match, it was not judged: callers
 * that must tell the two apart (the route, to count and dead-letter it) look for this kind.
 */
export const CESQL_ERROR_KINDS = [
  'parse',
  'math',
  'cast',
  'missingFunction',
  'functionEvaluation',
  'missingAttribute',
  'generic',
  'budgetExceeded',
] as const;

export type CesqlErrorKind = (typeof CESQL_ERROR_KINDS)[number];

/** Any CESQL error. `kind` is the spec's error type; `code` is `cesql_<kind>` for the platform. */
export class CesqlError extends PioneerError {
  readonly kind: CesqlErrorKind;

  constructor(kind: CesqlErrorKind, message: string) {
    super(message, { code: `cesql_${kind}`, retriable: false });
    this.kind = kind;
  }
}

/**
 * The expression is not valid CESQL. Thrown by `compileCesql`, never by evaluation.
 * `position` is the 0-based offset in the expression where the parser stopped, `expected` what it
 * wanted there and `found` what it saw instead (`end of input` or the offending text, quoted).
 */
export class CesqlParseError extends CesqlError {
  readonly position: number;
  readonly expected: string;
  readonly found: string;

  constructor(expected: string, position: number, found: string, message = `expected ${expected} at position ${position}, found ${found}`) {
    super('parse', message);
    this.position = position;
    this.expected = expected;
    this.found = found;
  }
}

/** Which of the parser's limits an expression went past (the values are in parser.ts). */
export type CesqlLimit = 'length' | 'depth' | 'nodes';

/**
 * The expression is valid CESQL but larger than Pioneer compiles: longer than MAX_EXPRESSION_LENGTH,
 * nesting deeper than MAX_NESTING_DEPTH or with more than MAX_NODES nodes. The message names the limit.
 * A parse error (kind `parse`), so that whoever reports parse errors reports these too.
 */
export class CesqlLimitError extends CesqlParseError {
  readonly limit: CesqlLimit;

  constructor(limit: CesqlLimit, message: string, position: number, found: string) {
    super(`an expression within the ${limit} limit`, position, found, message);
    this.limit = limit;
  }
}
