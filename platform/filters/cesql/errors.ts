import { PioneerError } from '../../errors.ts';

/**
 * The error kinds of CESQL 1.0 (section 3.3). The names are the ones the CESQL TCK uses.
 * An evaluation that raises one of these still yields a value: the zero value of the type of the
 * operator or function that failed (`false`, `0` or `''`).
 */
export const CESQL_ERROR_KINDS = [
  'parse',
  'math',
  'cast',
  'missingFunction',
  'functionEvaluation',
  'missingAttribute',
  'generic',
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

  constructor(expected: string, position: number, found: string) {
    super('parse', `expected ${expected} at position ${position}, found ${found}`);
    this.position = position;
    this.expected = expected;
    this.found = found;
  }
}
