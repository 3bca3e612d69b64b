/**
 * CESQL 1.0, the CloudEvents SQL Expression Language, as used by the `sql` subscription filter.
 *
 * `compileCesql` parses an expression once (throwing `CesqlParseError` for invalid syntax) and
 * returns an object that evaluates it against events in structured JSON form. Evaluation never
 * throws: following the spec's error model it always yields a value (the zero value of the failed
 * operator's type when something fails) together with the errors that occurred.
 */
import type { CesqlNode } from './ast.ts';
import type { CesqlValue } from './casts.ts';
import { NodeCompiler, type CesqlEvent, type Evaluator } from './compile-node.ts';
import { CesqlError } from './errors.ts';
import { EvaluationContext } from './evaluation-context.ts';
import { builtInFunctions, type FunctionRegistry } from './functions.ts';
import { parseCesql } from './parser.ts';

export { CESQL_ERROR_KINDS, CesqlError, CesqlParseError, type CesqlErrorKind } from './errors.ts';
export { FunctionRegistry, type CesqlFunction, type CesqlType, type ParameterType } from './functions.ts';
export type { CesqlNode } from './ast.ts';
export type { CesqlValue } from './casts.ts';
export type { CesqlEvent } from './compile-node.ts';

export interface CesqlResult {
  value: CesqlValue;
  /** The first error raised, when any. */
  error?: CesqlError;
  /** Every error raised, in order; empty when none. */
  errors: CesqlError[];
}

export interface CompiledCesql {
  readonly expression: string;
  readonly ast: CesqlNode;
  /**
   * Errors detectable without an event (calls to functions that do not exist). Such an expression
   * still compiles, because the spec makes the call evaluate to `false` with a missingFunction
   * error, but it can never match; callers that validate filters should reject it.
   */
  readonly staticErrors: readonly CesqlError[];
  evaluate(event: CesqlEvent): CesqlResult;
  /** True when the result, cast to Boolean, is `true` and no error occurred. */
  matches(event: CesqlEvent): boolean;
}

export interface CompileOptions {
  functions?: FunctionRegistry;
}

export function compileCesql(expression: string, { functions = builtInFunctions }: CompileOptions = {}): CompiledCesql {
  const ast = parseCesql(expression);
  const compiler = new NodeCompiler(functions);
  const root: Evaluator = compiler.compile(ast);
  const ctx = new EvaluationContext();
  return {
    expression,
    ast,
    staticErrors: compiler.staticErrors,
    evaluate(event) {
      ctx.reset(true);
      const value = root(event, ctx);
      const errors = ctx.errors;
      ctx.reset(true);
      return errors.length === 0 ? { value, errors } : { value, error: errors[0], errors };
    },
    matches(event) {
      ctx.reset(false);
      const value = root(event, ctx);
      // CESQL 1.0: a filter passes only on a Boolean true without errors; any other result does not pass
      return value === true && ctx.count === 0;
    },
  };
}
