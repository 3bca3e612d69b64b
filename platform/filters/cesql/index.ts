/**
 * CESQL 1.0, the CloudEvents SQL Expression Language, as used by the `sql` subscription filter.
 *
 * `compileCesql` parses an expression once (throwing `CesqlParseError` for invalid syntax, and its
 * subclass `CesqlLimitError` for an expression over the size, nesting or node limits of parser.ts)
 * and returns an object that evaluates it against events in structured JSON form. Evaluation never
 * throws: following the spec's error model it always yields a value (the zero value of the failed
 * operator's type when something fails) together with the errors that occurred.
 *
 * Every evaluation is bounded, whatever the expression and the event: the nodes by the parser's
 * limits, the work that grows with the length of a value by a budget of MAX_EVALUATION_STEPS
 * (evaluation-context.ts). An evaluation that runs out of budget stops with an error of kind
 * `budgetExceeded`: `matches()` is then false, `evaluate()` says `budgetExceeded: true`, and `check()`
 * answers 'budgetExceeded' rather than 'noMatch', so that a caller can count such events and set them
 * aside with the reason instead of silently dropping them.
 *
 * Beyond CESQL 1.0, an expression may read inside the event's JSON data with a dotted path
 * (`data.amount > 100`; data-path.ts says what a path may hold and how its values map to CESQL's types).
 * `readsData` tells whether it does.
 */
import type { CesqlNode } from './ast.ts';
import type { CesqlValue } from './casts.ts';
import { NodeCompiler, type CesqlEvent, type Evaluator } from './compile-node.ts';
import { CesqlError } from './errors.ts';
import { EvaluationContext, type EvaluationBudget } from './evaluation-context.ts';
import { builtInFunctions, type FunctionRegistry } from './functions.ts';
import { parseCesqlCounted } from './parser.ts';

export { CESQL_ERROR_KINDS, CesqlError, CesqlLimitError, CesqlParseError, type CesqlErrorKind, type CesqlLimit } from './errors.ts';
export { MAX_EVALUATION_STEPS, type EvaluationBudget } from './evaluation-context.ts';
export { MAX_EXPRESSION_LENGTH, MAX_NESTING_DEPTH, MAX_NODES } from './parser.ts';
export {
  DATA_PATH_RULE,
  MAX_DATA_PATH_LENGTH,
  MAX_DATA_PATH_SEGMENTS,
  dataText,
  dataValue,
  parseDataPath,
  type DataPath,
} from './data-path.ts';
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
  /** The evaluation ran out of budget and stopped (one of `errors` is of kind `budgetExceeded`). */
  budgetExceeded: boolean;
}

/**
 * A filter's answer for one event: 'match', 'noMatch' (also when an error occurred, as CESQL says),
 * or 'budgetExceeded' when the evaluation stopped before it could answer.
 */
export type CesqlVerdict = 'match' | 'noMatch' | 'budgetExceeded';

export interface CompiledCesql {
  readonly expression: string;
  readonly ast: CesqlNode;
  /**
   * Errors detectable without an event (calls to functions that do not exist). Such an expression
   * still compiles, because the spec makes the call evaluate to `false` with a missingFunction
   * error, but it can never match; callers that validate filters should reject it.
   */
  readonly staticErrors: readonly CesqlError[];
  /** How many nodes the expression has (at most MAX_NODES). */
  readonly nodes: number;
  /** Whether it reads the event's data (a data path such as `data.amount`); when not, data is never looked at. */
  readonly readsData: boolean;
  /**
   * The value and every error. `budget` (default: a fresh MAX_EVALUATION_STEPS) is charged what the
   * evaluation used.
   */
  evaluate(event: CesqlEvent, budget?: EvaluationBudget): CesqlResult;
  /** True when the result, cast to Boolean, is `true` and no error occurred, within a fresh budget. */
  matches(event: CesqlEvent): boolean;
  /**
   * `matches()` against a budget shared with other expressions (a subscription's filters share one
   * per event), which is charged what this one used; tells a stop for want of budget from no match.
   */
  check(event: CesqlEvent, budget: EvaluationBudget): CesqlVerdict;
}

export interface CompileOptions {
  functions?: FunctionRegistry;
}

export function compileCesql(expression: string, { functions = builtInFunctions }: CompileOptions = {}): CompiledCesql {
  const { ast, nodes } = parseCesqlCounted(expression);
  const compiler = new NodeCompiler(functions);
  const root: Evaluator = compiler.compile(ast);
  const ctx = new EvaluationContext();
  return {
    expression,
    ast,
    nodes,
    readsData: compiler.readsData,
    staticErrors: compiler.staticErrors,
    evaluate(event, budget) {
      ctx.reset(true, budget?.steps);
      const value = root(event, ctx);
      const { errors, exhausted: budgetExceeded } = ctx;
      if (budget !== undefined) budget.steps = ctx.steps;
      ctx.reset(true);
      return errors.length === 0 ? { value, errors, budgetExceeded } : { value, error: errors[0], errors, budgetExceeded };
    },
    matches(event) {
      ctx.reset(false);
      const value = root(event, ctx);
      // CESQL 1.0: a filter passes only on a Boolean true without errors; any other result does not pass
      return value === true && ctx.count === 0;
    },
    check(event, budget) {
      ctx.reset(false, budget.steps);
      const value = root(event, ctx);
      budget.steps = ctx.steps;
      if (ctx.exhausted) return 'budgetExceeded';
      return value === true && ctx.count === 0 ? 'match' : 'noMatch';
    },
  };
}
