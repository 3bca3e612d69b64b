/**
 * A subscription's `transform`: a JSONata expression (the `jsonata` package) that produces the `data` its events
 * are delivered with: a projection, renamed fields, masked values. It sees the event's `data` as its input and
 * the whole event as `$event`; its result replaces `data` (a result of nothing removes `data`). The rest of the
 * event is kept as it came.
 *
 * The API and the route compile it with the same function (`transformSchema`, `compileTransform`), so whatever
 * the API accepts the route runs. Each evaluation is bounded, whatever the expression: at most
 * MAX_TRANSFORM_STEPS evaluation steps in all and MAX_TRANSFORM_DEPTH nested ones, sequences and ranges of at most
 * MAX_TRANSFORM_SEQUENCE items, strings of at most
 * MAX_TRANSFORM_STRING characters at every step (an evaluation hook; `$pad` is replaced by a bounded one), no
 * regular expressions (JavaScript's engine backtracks), and a result of at most MAX_TRANSFORM_BYTES as JSON.
 * These bounds count work, not time, so an event gets the same outcome on a busy machine and a quiet one, and a cold
 * read that derives an event again long after derives the same text or the same dead letter. MAX_TRANSFORM_MS of
 * wall time (JSONata's guardrail) is only a backstop for a single built-in call that does much inside one step.
 * Those bounds hold whatever the input: the event's data is itself at most the record size. An evaluation
 * that fails, or passes a bound, throws TransformError with the reason: the route sets the event aside in the
 * subscription's dead letters rather than deliver it untransformed.
 *
 * Numbers: JSONata computes with JavaScript numbers, so an integer beyond 2^53 that a transform passes on
 * arrives rounded; events of subscriptions without a transform keep every digit (docs/ingest.md).
 */
import jsonata from 'jsonata';
import { z } from 'zod';

export const MAX_TRANSFORM_LENGTH = 4096;
/**
 * The route evaluates a partition's events one after the other, so a transform's work is spent on the partition's
 * time for every tenant: the bound is kept low. A projection or a mask takes a few dozen steps; a step costs about
 * 0.6-1 µs, so 20,000 steps is about 12-20 ms, and mapping an array of a thousand items still fits. A tenant's
 * events are not yet bounded in sum (docs/operations.md): this bound is what limits how much one event can take.
 */
export const MAX_TRANSFORM_STEPS = 20_000;
/**
 * Wall time, a backstop only, for a built-in that does much inside one step (a sort of a long sequence): generous,
 * since a machine under load (a step then costs several µs) must not turn a transform that fits its steps into a
 * failure.
 */
export const MAX_TRANSFORM_MS = 1000;
export const MAX_TRANSFORM_DEPTH = 200;
export const MAX_TRANSFORM_BYTES = 256 * 1024;
/** the longest sequence (array, range) and string an evaluation may build on its way */
export const MAX_TRANSFORM_SEQUENCE = 100_000;
export const MAX_TRANSFORM_STRING = 256 * 1024;

/** An evaluation failed or passed a bound; `message` says which, for the dead letter's reason. */
export class TransformError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransformError';
  }
}

export interface CompiledTransform {
  /** The event's structured JSON with `data` replaced by the transform's result. */
  apply(event: Record<string, unknown>): Promise<string>;
}

type Expression = ReturnType<typeof jsonata>;

/** Whether the parsed expression holds a regular expression (JavaScript's engine backtracks: no bound holds it). */
function hasRegex(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(hasRegex);
  if (node === null || typeof node !== 'object') return false;
  if ((node as { type?: unknown }).type === 'regex') return true;
  return Object.values(node).some(hasRegex);
}

/** $pad as JSONata's, with a bounded width: the one built-in that builds a long string from a short input. */
function boundedPad(str: string, width: number, char?: string): string | undefined {
  if (str === undefined) return undefined;
  if (Math.abs(width) > MAX_TRANSFORM_STRING) throw new TransformError(`$pad to more than ${MAX_TRANSFORM_STRING} characters`);
  const fill = char === undefined || char.length === 0 ? ' ' : char;
  const chars = Array.from(str);
  const missing = Math.abs(width) - chars.length;
  if (missing <= 0) return str;
  const padding = fill.repeat(Math.ceil(missing / fill.length)).slice(0, missing);
  return width > 0 ? str + padding : padding + str;
}

function compile(source: string): Expression {
  let expression: Expression;
  try {
    expression = jsonata(source, { timeout: MAX_TRANSFORM_MS, stack: MAX_TRANSFORM_DEPTH, sequence: MAX_TRANSFORM_SEQUENCE } as never);
  } catch (err) {
    const e = err as { message?: string; position?: number };
    throw new TransformError(`does not compile: ${e.message ?? String(err)}${e.position !== undefined ? ` (at character ${e.position})` : ''}`);
  }
  if (hasRegex(expression.ast())) throw new TransformError('regular expressions are not allowed in a transform (their matching time has no bound)');
  expression.registerFunction('pad', boundedPad as never, '<s-ns?:s>');
  // every step counts against the evaluation's budget, kept on the evaluation's own root frame (JSONata's `base`),
  // so evaluations of one expression at the same time count apart
  expression.assign(Symbol.for('jsonata.__evaluate_entry') as never, ((_expr: unknown, _input: unknown, env: { base: { pioneerSteps?: number } }) => {
    const base = env.base;
    base.pioneerSteps = (base.pioneerSteps ?? 0) + 1;
    if (base.pioneerSteps > MAX_TRANSFORM_STEPS) throw new TransformError(`took more than ${MAX_TRANSFORM_STEPS} evaluation steps`);
  }) as never);
  // every value an evaluation step yields is checked: a string doubled in a loop stops at the bound, not at the heap's
  expression.assign(Symbol.for('jsonata.__evaluate_exit') as never, ((_expr: unknown, _input: unknown, _env: unknown, result: unknown) => {
    if (typeof result === 'string' && result.length > MAX_TRANSFORM_STRING) throw new TransformError(`built a string longer than ${MAX_TRANSFORM_STRING} characters`);
  }) as never);
  return expression;
}

/** Compiles a transform; throws TransformError naming what is wrong with it. */
export function compileTransform(source: string): CompiledTransform {
  if (source.length > MAX_TRANSFORM_LENGTH) throw new TransformError(`at most ${MAX_TRANSFORM_LENGTH} characters`);
  const expression = compile(source);
  return {
    async apply(event) {
      let result: unknown;
      try {
        result = await expression.evaluate(event['data'], { event });
      } catch (err) {
        if (err instanceof TransformError) throw err;
        const e = err as { message?: string; code?: string };
        throw new TransformError(`failed: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}`);
      }
      const { data: _data, ...rest } = event;
      const out = result === undefined ? rest : { ...rest, data: result };
      let json: string;
      try {
        json = JSON.stringify(out);
      } catch (err) {
        throw new TransformError(`produced what is not JSON: ${(err as Error).message}`);
      }
      if (json.length > MAX_TRANSFORM_BYTES) throw new TransformError(`produced more than ${MAX_TRANSFORM_BYTES} bytes`);
      return json;
    },
  };
}

/** The `transform` field of a subscription request: compiled as the route compiles it, its error named. */
export const transformSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_TRANSFORM_LENGTH, `at most ${MAX_TRANSFORM_LENGTH} characters`)
  .superRefine((source, ctx) => {
    try {
      compileTransform(source);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });
