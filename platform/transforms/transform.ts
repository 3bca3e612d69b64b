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
 * read that derives an event again long after derives the same text or the same dead letter (reference lookups
 * aside: they read the records as they are then). MAX_TRANSFORM_MS of the process's CPU time (checked every
 * CPU_CHECK_STEPS steps; CPU spent while a reference lookup is awaited left out) is only a backstop for a single
 * built-in call that does much inside one step.
 * Those bounds hold whatever the input: the event's data is itself at most the record size. An evaluation
 * that fails, or passes a bound, throws TransformError with the reason: the route sets the event aside in the
 * subscription's dead letters rather than deliver it untransformed.
 *
 * Reference data: `$lookup(table, key)` with a table's name (a string) yields the data of the event's tenant's
 * record `key` of that table (platform/reference/store.ts), or nothing when there is none; with an object or
 * array first, `$lookup` is JSONata's own (the value of a field). The caller binds the lookups to the event's
 * tenant (`apply(event, reader)`); the expression names no tenant, so it reaches no other tenant's records. A table
 * named by a string literal is checked at compile time (REFERENCE_TABLE_PATTERN, 400 at the API); a computed name is
 * checked when called. An evaluation makes at most MAX_TRANSFORM_LOOKUPS lookups. Time spent waiting for a lookup
 * does not count against MAX_TRANSFORM_MS: a slow Redis never turns a good transform into a dead letter; a Redis
 * that fails fails the evaluation with ReferenceUnavailableError (retriable: the caller retries, the event is not
 * set aside). The cold tier and replays look records up as they are when they derive the event again, not as
 * they were when the route first appended it.
 *
 * Numbers: JSONata computes with JavaScript numbers, so an integer beyond 2^53 that a transform passes on
 * arrives rounded; events of subscriptions without a transform keep every digit (docs/ingest.md).
 */
import jsonata from 'jsonata';
import { z } from 'zod';
import { isReferenceTable, MAX_REFERENCE_KEY_LENGTH, REFERENCE_TABLE_RULE } from '../reference/names.ts';
import { ReferenceUnavailableError, type ReferenceReader } from '../reference/lookups.ts';

export const MAX_TRANSFORM_LENGTH = 4096;
/**
 * The route evaluates a partition's events one after the other, so a transform's work is spent on the partition's
 * time for every tenant: the bound is kept low. A projection or a mask takes a few dozen steps; a step costs about
 * 0.6-1 µs, so 20,000 steps is about 12-20 ms, and mapping an array of a thousand items still fits. A tenant's
 * events are not yet bounded in sum (docs/operations.md): this bound is what limits how much one event can take.
 */
export const MAX_TRANSFORM_STEPS = 20_000;
/**
 * CPU time, a backstop only, for a built-in that does much inside one step (a sort of a long sequence): generous,
 * since a machine under load (a step then costs several µs) must not turn a transform that fits its steps into a
 * failure. It is the process's CPU time, not wall time: other processes of a busy machine (wall time ran past a
 * second for 20,000 steps at a load of 12 on two cores) and waits for reference lookups do not count.
 */
export const MAX_TRANSFORM_MS = 1000;
/** How often (in steps) the CPU time is read: process.cpuUsage() costs about a microsecond. */
const CPU_CHECK_STEPS = 64;

/** The process's CPU time so far (ms). */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
export const MAX_TRANSFORM_DEPTH = 200;
export const MAX_TRANSFORM_BYTES = 256 * 1024;
/** the longest sequence (array, range) and string an evaluation may build on its way */
export const MAX_TRANSFORM_SEQUENCE = 100_000;
export const MAX_TRANSFORM_STRING = 256 * 1024;
/**
 * Reference lookups per evaluation: each may be a Redis read (the route caches them briefly), so a transform that
 * maps a long array through `$lookup` is bounded in reads as its steps are bounded in work.
 */
export const MAX_TRANSFORM_LOOKUPS = 100;

/** An evaluation failed or passed a bound; `message` says which, for the dead letter's reason. */
export class TransformError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransformError';
  }
}

export interface CompiledTransform {
  /**
   * The event's structured JSON with `data` replaced by the transform's result; `$lookup(table, key)` reads through
   * `references`, which the caller binds to the event's tenant (without it a reference lookup fails the evaluation).
   */
  apply(event: Record<string, unknown>, references?: ReferenceReader): Promise<string>;
  /** Whether the expression calls `$lookup` at all (the caller needs to bind references only then). */
  readonly looksUp: boolean;
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

/** What one evaluation keeps on its own root frame (JSONata's `base`), so evaluations at the same time count apart. */
interface EvaluationState {
  pioneerSteps?: number;
  /** the process's CPU time when its first step began (ms) */
  pioneerStart?: number;
  /** the process's CPU time spent while lookups were awaited (ms): other work's, not counted against MAX_TRANSFORM_MS */
  pioneerWaited?: number;
  pioneerLookups?: number;
}

/** The binding that carries an evaluation's reference reader: a name no JSONata variable can have (a space). */
const REFERENCES = 'pioneer references';

/** The calls of `$lookup` in the parsed expression (direct calls and partial applications). */
function lookupCalls(node: unknown, out: { arguments: { type?: string; value?: unknown }[] }[] = []): typeof out {
  if (Array.isArray(node)) {
    for (const n of node) lookupCalls(n, out);
    return out;
  }
  if (node === null || typeof node !== 'object') return out;
  const n = node as { type?: string; procedure?: { type?: string; value?: unknown }; arguments?: { type?: string; value?: unknown }[] };
  if ((n.type === 'function' || n.type === 'partial') && n.procedure?.type === 'variable' && n.procedure.value === 'lookup') out.push({ arguments: n.arguments ?? [] });
  for (const v of Object.values(node)) lookupCalls(v, out);
  return out;
}

/** Whether the expression names `$lookup` anywhere (called, or passed as a function). */
function namesLookup(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(namesLookup);
  if (node === null || typeof node !== 'object') return false;
  const n = node as { type?: string; value?: unknown };
  if (n.type === 'variable' && n.value === 'lookup') return true;
  return Object.values(node).some(namesLookup);
}

/** JSONata's own `$lookup(object, key)`: the value of `key` in an object, or in each object of an array. */
function fieldLookup(this: { createSequence(): unknown[] }, input: unknown, key: string): unknown {
  if (Array.isArray(input)) {
    const result = this.createSequence();
    for (const item of input) {
      const res = fieldLookup.call(this, item, key);
      if (res === undefined) continue;
      if (Array.isArray(res)) for (const v of res) result.push(v);
      else result.push(res);
    }
    return result;
  }
  if (input !== null && typeof input === 'object' && Object.prototype.hasOwnProperty.call(input, key) && typeof input !== 'function') return (input as Record<string, unknown>)[key];
  return undefined;
}

/**
 * `$lookup`: a reference lookup when the first argument is a table's name, JSONata's field lookup otherwise. A
 * missing record, and a key that is not a string or a number or is longer than a key can be, yield nothing.
 */
async function lookup(this: { environment: { base: EvaluationState; lookup(name: string): unknown }; createSequence(): unknown[] }, first: unknown, key: unknown): Promise<unknown> {
  if (typeof first !== 'string') return typeof key === 'string' ? fieldLookup.call(this, first, key) : undefined;
  if (!isReferenceTable(first)) throw new TransformError(`$lookup: '${first.slice(0, 80)}' is not a table's name (${REFERENCE_TABLE_RULE})`);
  const base = this.environment.base;
  base.pioneerLookups = (base.pioneerLookups ?? 0) + 1;
  if (base.pioneerLookups > MAX_TRANSFORM_LOOKUPS) throw new TransformError(`made more than ${MAX_TRANSFORM_LOOKUPS} reference lookups`);
  const id = typeof key === 'number' && Number.isFinite(key) ? String(key) : key;
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_REFERENCE_KEY_LENGTH) return undefined;
  const reader = this.environment.lookup(REFERENCES) as ReferenceReader | undefined;
  if (!reader) throw new TransformError('$lookup: reference data is not available here');
  const started = cpuMs();
  let text: string | null;
  try {
    text = await reader(first, id);
  } catch (err) {
    throw err instanceof ReferenceUnavailableError ? err : new ReferenceUnavailableError(err);
  } finally {
    base.pioneerWaited = (base.pioneerWaited ?? 0) + (cpuMs() - started);
  }
  return text === null ? undefined : JSON.parse(text);
}

function compile(source: string): Expression {
  let expression: Expression;
  try {
    // no `timeout` (JSONata's counts wall time): the backstop is the entry hook's, in CPU time
    expression = jsonata(source, { stack: MAX_TRANSFORM_DEPTH, sequence: MAX_TRANSFORM_SEQUENCE } as never);
  } catch (err) {
    const e = err as { message?: string; position?: number };
    throw new TransformError(`does not compile: ${e.message ?? String(err)}${e.position !== undefined ? ` (at character ${e.position})` : ''}`);
  }
  if (hasRegex(expression.ast())) throw new TransformError('regular expressions are not allowed in a transform (their matching time has no bound)');
  for (const call of lookupCalls(expression.ast())) {
    const table = call.arguments[0];
    if (table?.type === 'string' && !isReferenceTable(String(table.value)))
      throw new TransformError(`$lookup: '${String(table.value).slice(0, 80)}' is not a table's name (${REFERENCE_TABLE_RULE})`);
  }
  expression.registerFunction('pad', boundedPad as never, '<s-ns?:s>');
  expression.registerFunction('lookup', lookup as never, '<x-j?:x>');
  // every step counts against the evaluation's budget, kept on the evaluation's own root frame (JSONata's `base`),
  // so evaluations of one expression at the same time count apart
  expression.assign(Symbol.for('jsonata.__evaluate_entry') as never, ((_expr: unknown, _input: unknown, env: { base: EvaluationState }) => {
    const base = env.base;
    base.pioneerSteps = (base.pioneerSteps ?? 0) + 1;
    if (base.pioneerSteps > MAX_TRANSFORM_STEPS) throw new TransformError(`took more than ${MAX_TRANSFORM_STEPS} evaluation steps`);
    if (base.pioneerStart === undefined) base.pioneerStart = cpuMs();
    else if (base.pioneerSteps % CPU_CHECK_STEPS === 0 && cpuMs() - base.pioneerStart - (base.pioneerWaited ?? 0) > MAX_TRANSFORM_MS)
      throw new TransformError(`took more than ${MAX_TRANSFORM_MS} ms of CPU time`);
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
    looksUp: namesLookup(expression.ast()),
    async apply(event, references) {
      let result: unknown;
      try {
        result = await expression.evaluate(event['data'], references ? { event, [REFERENCES]: references } : { event });
      } catch (err) {
        if (err instanceof TransformError || err instanceof ReferenceUnavailableError) throw err;
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
