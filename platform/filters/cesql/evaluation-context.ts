import { CesqlError, type CesqlErrorKind } from './errors.ts';

/**
 * Collects the errors of one evaluation (the spec's "error list", section 3.3).
 *
 * Compiled expressions reuse one context per expression: evaluation is synchronous, so it is never
 * shared by two evaluations at once. `count` is what operators compare to notice that an operand
 * failed; the error objects themselves are only built when `collect` is on, so that `matches()`,
 * which needs no more than "did anything fail", allocates nothing on the error path.
 */
export class EvaluationContext {
  count = 0;
  collect = true;
  errors: CesqlError[] = [];

  reset(collect: boolean): void {
    this.count = 0;
    this.collect = collect;
    if (this.errors.length !== 0) this.errors = [];
  }

  fail(kind: CesqlErrorKind, message: string): void {
    this.count++;
    if (this.collect) this.errors.push(new CesqlError(kind, message));
  }
}
