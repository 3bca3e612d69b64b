import { CesqlError, type CesqlErrorKind } from './errors.ts';

/**
 * The work one evaluation may do, in steps. A step is one character that an operation whose cost
 * grows with the length of a value examines, copies or builds: LIKE (every character it compares),
 * the string functions (their argument and result lengths), a String cast to Integer, a comparison
 * of two strings of the same length, an attribute written out as JSON text; and each member a data
 * path (`data.merchant.country`, data-path.ts) looks up is one step. Everything else an
 * evaluation does is a constant amount per node, and the parser bounds the nodes (parser.ts), so this
 * bounds the whole evaluation, whatever the event carries.
 *
 * Measured (bench/cesql.ts, node 20, one core of the 2-core test machine): the hand-written LIKE
 * matcher on its worst patterns takes about 0.5 to 1 ns a step, the native string operations less,
 * so 1,000,000 steps hold an evaluation under about 1 ms; and they let a LIKE, a comparison or a
 * string function look at an attribute as large as a whole 1 MB Kafka record (the broker's default
 * `message.max.bytes`) once, so no real filter on a real event comes near the budget.
 */
export const MAX_EVALUATION_STEPS = 1_000_000;

/**
 * Steps left for a run of evaluations that share one budget (a subscription's filters share one per
 * event). `compiled.check(event, budget)` takes what it used from `steps`.
 */
export interface EvaluationBudget {
  steps: number;
}

/**
 * Collects the errors of one evaluation (the spec's "error list", section 3.3) and counts its work.
 *
 * Compiled expressions reuse one context per expression: evaluation is synchronous, so it is never
 * shared by two evaluations at once. `count` is what operators compare to notice that an operand
 * failed; the error objects themselves are only built when `collect` is on, so that `matches()`,
 * which needs no more than "did anything fail", allocates nothing on the error path.
 *
 * `steps` is what is left of the budget. `charge(n)` takes `n` steps before the work is done; when
 * fewer are left it raises a `budgetExceeded` error (once; any later refusal only counts as an
 * error, so that every operator above it yields its zero value) and the caller must not do the work.
 */
export class EvaluationContext {
  count = 0;
  collect = true;
  errors: CesqlError[] = [];
  steps = MAX_EVALUATION_STEPS;
  exhausted = false;

  reset(collect: boolean, steps = MAX_EVALUATION_STEPS): void {
    this.count = 0;
    this.collect = collect;
    this.steps = steps;
    this.exhausted = false;
    if (this.errors.length !== 0) this.errors = [];
  }

  fail(kind: CesqlErrorKind, message: string): void {
    this.count++;
    if (this.collect) this.errors.push(new CesqlError(kind, message));
  }

  /** Takes `n` steps; `false` (with an error) when not that many are left, and then nothing may be done. */
  charge(n: number): boolean {
    if (n <= this.steps) {
      this.steps -= n;
      return true;
    }
    this.exceed();
    return false;
  }

  /** The budget is used up (also when a caller found so itself, having counted its steps locally). */
  exceed(): void {
    this.steps = 0;
    if (this.exhausted) {
      this.count++;
      return;
    }
    this.exhausted = true;
    this.fail('budgetExceeded', `the evaluation needed more than its budget of ${MAX_EVALUATION_STEPS.toLocaleString('en-US')} steps`);
  }
}
