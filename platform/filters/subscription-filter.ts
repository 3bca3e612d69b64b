/**
 * Subscription filters, as in the CloudEvents Subscriptions API: each filter is one dialect of
 * exact | prefix | suffix (one attribute each) | all | any (lists of filters) | not (one filter) | sql (CESQL 1.0).
 * A subscription's `filters` all must match.
 *
 * Beyond the Subscriptions API and CESQL 1.0, every dialect that names an attribute may name a value inside the
 * event's JSON data instead: `{ "exact": { "data.merchant.country": "NL" } }`, `{ "sql": "data.amount > 100" }`
 * (cesql/data-path.ts: what a path may hold, and how a value maps to text or to CESQL's types). A value that is
 * not there behaves as a missing attribute. `readsData` says whether any filter reads data at all.
 *
 * `compileFilters` is the one step that turns filters into the predicate the route calls per event,
 * and the API's validation (`filtersSchema`) is that same step run on the request body: whatever the
 * API accepts, the route compiles, with the same limits. It reads untrusted JSON, so it checks the
 * shape as it goes and never recurses deeper than MAX_FILTER_DEPTH.
 *
 * Limits, each of which bounds the work of one event against one subscription:
 *   - MAX_FILTER_DEPTH: all / any / not nest at most 8 deep (a filter inside eight of them is the deepest);
 *   - MAX_FILTER_LIST: at most 32 filters in `filters` and in each all / any;
 *   - MAX_FILTERS: at most 128 filters in all, counting those inside all, any and not;
 *   - MAX_ATTRIBUTE_VALUE: exact / prefix / suffix values of at most 1024 characters;
 *   - data paths of at most MAX_DATA_PATH_SEGMENTS members and MAX_DATA_PATH_LENGTH characters;
 *   - each sql expression within the CESQL limits (4096 characters, nesting 64, 1000 nodes: cesql/parser.ts),
 *     and MAX_SQL_NODES: at most 2000 CESQL nodes over all the sql filters of a subscription;
 *   - per event, the filters share one budget of MAX_EVALUATION_STEPS (cesql/evaluation-context.ts):
 *     those of one subscription when `verdict()` is called alone, those of all of a tenant's
 *     subscriptions when the caller passes one budget to each (the route does: platform/store/
 *     subscription-index.ts). Each subscription is first charged its `cost` (one step per filter and
 *     per CESQL node: the work that does not grow with the event), then every character its sql
 *     filters examine and every member a data path looks up. When the budget runs out the event does
 *     not match, and `verdict()` says 'budgetExceeded' instead of 'noMatch', so that the route can
 *     count it and set it aside.
 * Per event and tenant the work is then bounded by the budget, however many subscriptions it has.
 */
import { z } from 'zod';
import { PioneerError } from '../errors.ts';
import {
  compileCesql,
  CesqlParseError,
  DATA_PATH_RULE,
  dataText,
  MAX_EVALUATION_STEPS,
  parseDataPath,
  type CesqlVerdict,
  type CompiledCesql,
  type DataPath,
  type EvaluationBudget,
} from './cesql/index.ts';

export type Filter =
  | { exact: Record<string, string> }
  | { prefix: Record<string, string> }
  | { suffix: Record<string, string> }
  | { all: Filter[] }
  | { any: Filter[] }
  | { not: Filter }
  | { sql: string };

/** One event's answer: 'budgetExceeded' when a sql filter ran out of budget before it could answer. */
export type FilterVerdict = CesqlVerdict;

/** A subscription's filters, compiled: call it as a predicate, or ask `verdict()` to know why not. */
export interface CompiledFilters {
  (event: Record<string, unknown>): boolean;
  /**
   * The answer for one event, within `budget` when given (charged `cost` first, then what the sql filters
   * examine; shared with other subscriptions' filters), else within a fresh MAX_EVALUATION_STEPS.
   */
  verdict(event: Record<string, unknown>, budget?: EvaluationBudget): FilterVerdict;
  /** the steps a verdict costs before any character is examined: one per filter and per CESQL node */
  readonly cost: number;
  /** whether any filter reads the event's data (a `data.` path); when none does, data is never looked at */
  readonly readsData: boolean;
}

export const DIALECTS = ['exact', 'prefix', 'suffix', 'all', 'any', 'not', 'sql'] as const;
export const MAX_FILTER_DEPTH = 8;
export const MAX_FILTER_LIST = 32;
export const MAX_FILTERS = 128;
export const MAX_ATTRIBUTE_VALUE = 1024;
export const MAX_SQL_NODES = 2000;
/** The reason the route gives for an event whose filters ran out of budget. */
export const BUDGET_EXCEEDED_REASON = `the filters of the tenant's subscriptions needed more than the ${MAX_EVALUATION_STEPS.toLocaleString('en-US')} steps an event may take`;

/** Problems past this many are not listed: one request's answer stays small. */
const MAX_ISSUES = 20;
const ATTRIBUTE_NAME = /^[a-z0-9]{1,20}$/;

export interface FilterIssue {
  /** Where, relative to `filters`: `[0, 'all', 1, 'sql']`. */
  path: (string | number)[];
  message: string;
}

/** The filters cannot be compiled; `issues` says where and why. */
export class FilterCompileError extends PioneerError {
  readonly issues: FilterIssue[];

  constructor(issues: FilterIssue[]) {
    const first = issues[0];
    const where = first?.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('') ?? '';
    super(first === undefined ? 'invalid filters' : `filters${where}: ${first.message}`, { code: 'invalid_filters' });
    this.issues = issues;
  }
}

const NO_MATCH = 0;
const MATCH = 1;
const EXCEEDED = 2;
type Outcome = typeof NO_MATCH | typeof MATCH | typeof EXCEEDED;
type Node = (event: Record<string, unknown>, budget: EvaluationBudget) => Outcome;

const VERDICTS: readonly FilterVerdict[] = ['noMatch', 'match', 'budgetExceeded'];

/**
 * Checks and compiles a subscription's filters (an empty list matches everything). Throws
 * `FilterCompileError` listing the problems; `filters` may be any JSON value.
 */
export function compileFilters(filters: unknown): CompiledFilters {
  const compiler = new FilterCompiler();
  const nodes = compiler.list(filters, [], 0, true);
  if (compiler.issues.length !== 0 || nodes === undefined) throw new FilterCompileError(compiler.issues);
  const root = allOf(nodes);
  const cost = compiler.cost;
  const own: EvaluationBudget = { steps: MAX_EVALUATION_STEPS };
  // without a budget from the caller, a fresh one per event; evaluation is synchronous, so one object serves
  const outcome = (event: Record<string, unknown>, shared?: EvaluationBudget): Outcome => {
    const budget = shared ?? ((own.steps = MAX_EVALUATION_STEPS), own);
    if (budget.steps < cost) {
      budget.steps = 0;
      return EXCEEDED;
    }
    budget.steps -= cost;
    return root(event, budget);
  };
  const predicate = ((event: Record<string, unknown>) => outcome(event) === MATCH) as CompiledFilters;
  predicate.verdict = (event, budget) => VERDICTS[outcome(event, budget)] as FilterVerdict;
  Object.defineProperty(predicate, 'cost', { value: cost });
  Object.defineProperty(predicate, 'readsData', { value: compiler.readsData });
  return predicate;
}

/** The issues `compileFilters` would throw, or none. */
export function checkFilters(filters: unknown): FilterIssue[] {
  try {
    compileFilters(filters);
    return [];
  } catch (err) {
    if (err instanceof FilterCompileError) return err.issues;
    throw err;
  }
}

/**
 * A subscription's `filters` in a request body: valid exactly when `compileFilters` compiles them,
 * each problem reported on its own field (`filters[0].all[1].sql`).
 */
export const filtersSchema: z.ZodType<Filter[]> = z.unknown().transform((value, ctx) => {
  const issues = checkFilters(value);
  if (issues.length === 0) return value as Filter[];
  for (const issue of issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  return z.NEVER;
}) as unknown as z.ZodType<Filter[]>;

function allOf(nodes: Node[]): Node {
  if (nodes.length === 1) return nodes[0] as Node;
  return (event, budget) => {
    for (const node of nodes) {
      const outcome = node(event, budget);
      if (outcome !== MATCH) return outcome;
    }
    return MATCH;
  };
}

function anyOf(nodes: Node[]): Node {
  return (event, budget) => {
    for (const node of nodes) {
      const outcome = node(event, budget);
      if (outcome !== NO_MATCH) return outcome;
    }
    return NO_MATCH;
  };
}

/**
 * An attribute as text for exact / prefix / suffix: strings as they are, numbers and Booleans in
 * their String form. Anything else (absent, null, an object) is no text and matches nothing, which
 * also spares writing out a large object for every filter. A data path's value is read the same way
 * (`dataText`).
 */
function attr(event: Record<string, unknown>, name: string): string | undefined {
  const v = event[name];
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(v);
    default:
      return undefined;
  }
}

/**
 * exact / prefix / suffix on a value inside the event's data, compared as text (`dataText`). The lookup takes one
 * step of the budget per member; when they are not left, the filter could not judge the event.
 */
function dataAttribute(dialect: 'exact' | 'prefix' | 'suffix', data: DataPath, expected: string): Node {
  const steps = data.segments.length;
  const compare =
    dialect === 'exact' ? (text: string) => text === expected : dialect === 'prefix' ? (text: string) => text.startsWith(expected) : (text: string) => text.endsWith(expected);
  return (e, budget) => {
    if (budget.steps < steps) {
      budget.steps = 0;
      return EXCEEDED;
    }
    budget.steps -= steps;
    const text = dataText(e, data);
    return text !== undefined && compare(text) ? MATCH : NO_MATCH;
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class FilterCompiler {
  readonly issues: FilterIssue[] = [];
  private filters = 0;
  private sqlNodes = 0;

  /** one step per filter and per CESQL node */
  get cost(): number {
    return this.filters + this.sqlNodes;
  }
  private overFilters = false;
  private overNodes = false;
  /** some filter reads the event's data */
  readsData = false;

  private issue(path: (string | number)[], message: string): undefined {
    if (this.issues.length < MAX_ISSUES) this.issues.push({ path, message });
    return undefined;
  }

  /** A list of filters: `filters` itself (`top`, may be empty) or the value of all / any. */
  list(value: unknown, path: (string | number)[], depth: number, top: boolean): Node[] | undefined {
    if (!Array.isArray(value)) return this.issue(path, top ? 'must be an array of filters' : 'must be an array of at least one filter');
    if (!top && value.length === 0) return this.issue(path, 'must list at least one filter');
    if (value.length > MAX_FILTER_LIST) return this.issue(path, `at most ${MAX_FILTER_LIST} filters`);
    const nodes: Node[] = [];
    for (let i = 0; i < value.length; i++) {
      const node = this.filter(value[i], [...path, i], depth);
      if (node !== undefined) nodes.push(node);
    }
    return nodes.length === value.length ? nodes : undefined;
  }

  filter(value: unknown, path: (string | number)[], depth: number): Node | undefined {
    if (depth > MAX_FILTER_DEPTH) return this.issue(path, `filters nest deeper than ${MAX_FILTER_DEPTH} (all, any and not)`);
    if (++this.filters > MAX_FILTERS) {
      if (!this.overFilters) this.issue([], `more than ${MAX_FILTERS} filters in all, counting those inside all, any and not`);
      this.overFilters = true;
      return undefined;
    }
    if (!isObject(value)) return this.issue(path, `a filter must be an object with exactly one dialect, one of ${DIALECTS.join(', ')}`);
    const names = Object.keys(value);
    if (names.length !== 1) {
      return this.issue(path, `a filter must have exactly one dialect, one of ${DIALECTS.join(', ')}; got ${names.length ? names.join(', ') : 'none'}`);
    }
    const dialect = names[0] as string;
    const body = value[dialect];
    const at = [...path, dialect];
    switch (dialect) {
      case 'exact':
      case 'prefix':
      case 'suffix':
        return this.attribute(dialect, body, at);
      case 'all':
      case 'any': {
        const nodes = this.list(body, at, depth + 1, false);
        if (nodes === undefined) return undefined;
        return dialect === 'all' ? allOf(nodes) : anyOf(nodes);
      }
      case 'not': {
        const inner = this.filter(body, at, depth + 1);
        if (inner === undefined) return undefined;
        return (event, budget) => {
          const outcome = inner(event, budget);
          return outcome === EXCEEDED ? EXCEEDED : outcome === MATCH ? NO_MATCH : MATCH;
        };
      }
      case 'sql':
        return this.sql(body, at);
      default:
        return this.issue(at, `unknown filter dialect '${dialect}'; supported: ${DIALECTS.join(', ')}`);
    }
  }

  private attribute(dialect: 'exact' | 'prefix' | 'suffix', body: unknown, path: (string | number)[]): Node | undefined {
    if (!isObject(body)) return this.issue(path, 'must be an object naming one attribute, e.g. { "subject": "acct-1" }');
    const names = Object.keys(body);
    if (names.length !== 1) return this.issue(path, 'must name exactly one attribute');
    const name = names[0] as string;
    const expected = body[name];
    if (name.startsWith('data.')) {
      const data = parseDataPath(name);
      if (typeof data === 'string') return this.issue([...path, name], `${data}; a data path is ${DATA_PATH_RULE}`);
      if (typeof expected !== 'string') return this.issue([...path, name], 'must be a string');
      if (expected.length > MAX_ATTRIBUTE_VALUE) return this.issue([...path, name], `at most ${MAX_ATTRIBUTE_VALUE} characters`);
      this.readsData = true;
      return dataAttribute(dialect, data, expected);
    }
    if (!ATTRIBUTE_NAME.test(name)) {
      return this.issue([...path, name], 'must be a CloudEvents attribute name (lowercase letters and digits, at most 20) or a data path (data.amount)');
    }
    if (typeof expected !== 'string') return this.issue([...path, name], 'must be a string');
    if (expected.length > MAX_ATTRIBUTE_VALUE) return this.issue([...path, name], `at most ${MAX_ATTRIBUTE_VALUE} characters`);
    switch (dialect) {
      case 'exact':
        return (e) => (attr(e, name) === expected ? MATCH : NO_MATCH);
      case 'prefix':
        return (e) => (attr(e, name)?.startsWith(expected) ? MATCH : NO_MATCH);
      case 'suffix':
        return (e) => (attr(e, name)?.endsWith(expected) ? MATCH : NO_MATCH);
    }
  }

  private sql(body: unknown, path: (string | number)[]): Node | undefined {
    if (typeof body !== 'string') return this.issue(path, 'must be a string');
    if (body.length === 0) return this.issue(path, 'must not be empty');
    let compiled: CompiledCesql;
    try {
      compiled = compileCesql(body);
    } catch (err) {
      if (err instanceof CesqlParseError) return this.issue(path, `invalid CESQL expression: ${err.message}`);
      throw err;
    }
    // such an expression compiles, but the spec makes it evaluate with an error: it could never match
    if (compiled.staticErrors.length !== 0) {
      for (const e of compiled.staticErrors) this.issue(path, `invalid CESQL expression: ${e.message}`);
      return undefined;
    }
    this.sqlNodes += compiled.nodes;
    if (compiled.readsData) this.readsData = true;
    if (this.sqlNodes > MAX_SQL_NODES) {
      if (!this.overNodes) this.issue([], `more than ${MAX_SQL_NODES} CESQL nodes in all the sql filters together`);
      this.overNodes = true;
      return undefined;
    }
    return (event, budget) => {
      const verdict = compiled.check(event, budget);
      return verdict === 'match' ? MATCH : verdict === 'noMatch' ? NO_MATCH : EXCEEDED;
    };
  }
}
