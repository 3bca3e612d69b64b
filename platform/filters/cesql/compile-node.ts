import type { ArithmeticOperator, BinaryOperator, CesqlNode, ComparisonOperator } from './ast.ts';
import {
  castToBoolean,
  castToInteger,
  castToString,
  INT32_MAX,
  INT32_MIN,
  type CesqlValue,
} from './casts.ts';
import { dataValue, type DataPath } from './data-path.ts';
import { CesqlError } from './errors.ts';
import type { EvaluationContext } from './evaluation-context.ts';
import { ZERO_VALUES, type FunctionRegistry, type ParameterType } from './functions.ts';
import { compileLikePattern } from './like-pattern.ts';

/** A CloudEvent in structured JSON form: context attributes and extensions at the top level. */
export type CesqlEvent = Readonly<Record<string, unknown>>;

/** One compiled node: computes its value; errors go to `ctx`. */
export type Evaluator = (event: CesqlEvent, ctx: EvaluationContext) => CesqlValue;

/**
 * Attributes that are part of the event but not addressable: CESQL does not look into the payload. Pioneer's
 * data paths (`data.amount`, data-path.ts) do; `data` alone stays missing.
 */
const PAYLOAD_MEMBERS: ReadonlySet<string> = new Set(['data', 'data_base64']);

/**
 * Steps charged per character of an attribute written out as JSON text (an object or array where
 * CloudEvents expects a primitive): `JSON.stringify` of many small members takes about four times
 * as long a character as the budget's hand-written loops (bench/cesql.ts).
 */
const JSON_STEPS = 4;

/** Operators of one precedence level: a left-to-right run of them is one chain, evaluated in a loop. */
const PRECEDENCE: Readonly<Record<BinaryOperator, number>> = {
  AND: 0, OR: 0, XOR: 0,
  '=': 1, '!=': 1, '<>': 1, '<': 1, '<=': 1, '>': 1, '>=': 1,
  '+': 2, '-': 2,
  '*': 3, '/': 3, '%': 3,
};

const ARITHMETIC: Readonly<Record<ArithmeticOperator, (x: number, y: number) => number>> = {
  '+': (x, y) => x + y,
  '-': (x, y) => x - y,
  '*': (x, y) => x * y,
  '/': (x, y) => Math.trunc(x / y),
  '%': (x, y) => x % y,
};

type OrderingOperator = Exclude<ComparisonOperator, '=' | '!=' | '<>'>;

const ORDERING: Readonly<Record<OrderingOperator, (x: number, y: number) => boolean>> = {
  '<': (x, y) => x < y,
  '<=': (x, y) => x <= y,
  '>': (x, y) => x > y,
  '>=': (x, y) => x >= y,
};

/**
 * An attribute's value as a CESQL value (spec 3.2): strings, booleans and 32-bit integers as they
 * are, any other value as its String form. `undefined` when the event does not carry it (JSON `null`
 * counts as absent, as it does in the CloudEvents JSON format).
 */
export function attributeValue(event: CesqlEvent, name: string): CesqlValue | undefined {
  const value = event[name];
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX ? value | 0 : String(value);
    case 'undefined':
      return undefined;
    case 'bigint':
      return value >= INT32_MIN && value <= INT32_MAX ? Number(value) : String(value);
    case 'object':
      if (value === null) return undefined;
      if (value instanceof Date) return value.toISOString();
      if (value instanceof URL) return value.href;
      return JSON.stringify(value);
    default:
      return String(value);
  }
}

/**
 * Turns a syntax tree into nested closures, so that evaluating an event walks no tree and dispatches
 * on no node type.
 *
 * Error semantics (spec 3.3, 3.2 and the CESQL TCK): an operator whose operand raised an error does
 * not compute; it yields the zero value of its own type, so `true AND (1 != 1 / 0)` is `false` and
 * `1 / missing` is `0`, with the operand's error. A cast an operator applies to its own operands is
 * different: the failed cast gives the zero value of the target type and the operator goes on with
 * it, so `NOT 10` is `true` with a cast error.
 */
export class NodeCompiler {
  /** Errors found without looking at any event (unknown functions); evaluation raises them too. */
  readonly staticErrors: CesqlError[] = [];
  /** Whether anything compiled reads the event's data (a data path): a caller may spare decoding it otherwise. */
  readsData = false;

  constructor(private readonly functions: FunctionRegistry) {}

  compile(node: CesqlNode): Evaluator {
    switch (node.type) {
      case 'literal': {
        const value = node.value;
        return () => value;
      }
      case 'attribute':
        return this.attribute(node.name);
      case 'exists': {
        const name = node.name;
        if (PAYLOAD_MEMBERS.has(name)) return () => false;
        return (event) => {
          const value = event[name];
          return value !== undefined && value !== null;
        };
      }
      case 'data':
        return this.data(node.path);
      case 'existsData': {
        this.readsData = true;
        const path = node.path;
        const steps = path.segments.length;
        return (event, ctx) => ctx.charge(steps) && dataValue(event, path) !== undefined;
      }
      case 'not': {
        const operand = this.compile(node.operand);
        return (event, ctx) => {
          const n = ctx.count;
          const value = operand(event, ctx);
          if (ctx.count !== n) return false;
          return !castToBoolean(value, ctx);
        };
      }
      case 'negate': {
        const operand = this.compile(node.operand);
        return (event, ctx) => {
          const n = ctx.count;
          const value = operand(event, ctx);
          if (ctx.count !== n) return 0;
          const x = castToInteger(value, ctx);
          if (x === INT32_MIN) {
            ctx.fail('math', 'negating -2147483648 overflows a 32-bit integer');
            return 0;
          }
          return x === 0 ? 0 : -x;
        };
      }
      case 'binary':
        return this.binary(node);
      case 'like':
        return this.like(node.operand, node.pattern, node.negated);
      case 'in':
        return this.in(node.operand, node.set, node.negated);
      case 'call':
        return this.call(node.name, node.args);
    }
  }

  private attribute(name: string): Evaluator {
    const message = `missing attribute '${name}'`;
    if (PAYLOAD_MEMBERS.has(name)) {
      return (_event, ctx) => {
        ctx.fail('missingAttribute', message);
        return false;
      };
    }
    return (event, ctx) => {
      const raw = event[name];
      if (typeof raw === 'string') return raw;
      if (typeof raw === 'object' && raw !== null) {
        // written out as JSON text, which costs JSON_STEPS a character: refused once the budget is gone
        if (ctx.exhausted) {
          ctx.exceed();
          return false;
        }
        const text = attributeValue(event, name) as string;
        return ctx.charge(JSON_STEPS * text.length) ? text : false;
      }
      const value = attributeValue(event, name);
      if (value !== undefined) return value;
      ctx.fail('missingAttribute', message);
      return false;
    };
  }

  /**
   * A value inside the event's data: one step per member looked up, and no value (nothing there, null, an
   * object or an array, or no JSON data) is a missing attribute, with the same error and zero value.
   */
  private data(path: DataPath): Evaluator {
    this.readsData = true;
    const message = `missing attribute '${path.text}'`;
    const steps = path.segments.length;
    return (event, ctx) => {
      if (!ctx.charge(steps)) return false;
      const value = dataValue(event, path);
      if (value !== undefined) return value;
      ctx.fail('missingAttribute', message);
      return false;
    };
  }

  private binary(node: CesqlNode & { type: 'binary' }): Evaluator {
    const level = PRECEDENCE[node.op];
    if (node.left.type === 'binary' && PRECEDENCE[node.left.op] === level) return this.chain(node, level);
    const left = this.compile(node.left);
    const right = this.compile(node.right);
    switch (node.op) {
      case 'AND':
        return (event, ctx) => {
          const n = ctx.count;
          const l = left(event, ctx);
          if (ctx.count !== n) return false;
          if (!castToBoolean(l, ctx)) return false;
          const m = ctx.count;
          const r = right(event, ctx);
          if (ctx.count !== m) return false;
          return castToBoolean(r, ctx);
        };
      case 'OR':
        return (event, ctx) => {
          const n = ctx.count;
          const l = left(event, ctx);
          if (ctx.count !== n) return false;
          if (castToBoolean(l, ctx)) return true;
          const m = ctx.count;
          const r = right(event, ctx);
          if (ctx.count !== m) return false;
          return castToBoolean(r, ctx);
        };
      case 'XOR':
        return (event, ctx) => {
          const n = ctx.count;
          const l = left(event, ctx);
          if (ctx.count !== n) return false;
          const r = right(event, ctx);
          if (ctx.count !== n) return false;
          return castToBoolean(l, ctx) !== castToBoolean(r, ctx);
        };
      case '=':
      case '!=':
      case '<>':
        return this.equality(node, left, right, node.op !== '=');
      case '<':
      case '<=':
      case '>':
      case '>=':
        return this.ordering(left, right, node.op);
      case '+':
      case '-':
      case '*':
      case '/':
      case '%':
        return this.arithmetic(left, right, node.op);
    }
  }

  /**
   * A left-to-right run of operators of one precedence level (`a OR b OR c`, `1 + 2 - 3`), which the
   * parser builds as a left-deep tree, evaluated in a loop instead of by recursion: however long the
   * run, it takes one stack frame. The loop does exactly what the nested operators would: each level
   * starts where the run starts, so "an operand of this level failed" is "the error count moved since
   * the run began", and then every level above yields its zero value, as does the run.
   */
  private chain(node: CesqlNode & { type: 'binary' }, level: number): Evaluator {
    const spine: (CesqlNode & { type: 'binary' })[] = [];
    let leftmost: CesqlNode = node;
    while (leftmost.type === 'binary' && PRECEDENCE[leftmost.op] === level) {
      spine.push(leftmost);
      leftmost = leftmost.left;
    }
    spine.reverse();
    const first = this.compile(leftmost);
    const ops = spine.map((s) => s.op);
    const rights = spine.map((s) => this.compile(s.right));
    const zero: CesqlValue = level >= 2 ? 0 : false;
    const length = ops.length;
    return (event, ctx) => {
      const n = ctx.count;
      let acc = first(event, ctx);
      for (let i = 0; i < length; i++) {
        if (ctx.count !== n) return zero;
        const op = ops[i] as BinaryOperator;
        const right = rights[i] as Evaluator;
        if (op === 'AND' || op === 'OR') {
          const l = castToBoolean(acc, ctx);
          if (l !== (op === 'AND')) {
            // short-circuit: this level is decided (a failed cast decided it too, with its error)
            acc = l;
            continue;
          }
          const m = ctx.count;
          const r = right(event, ctx);
          if (ctx.count !== m) return zero;
          acc = castToBoolean(r, ctx);
          continue;
        }
        const r = right(event, ctx);
        if (ctx.count !== n) return zero;
        acc = apply(op, acc, r, ctx);
      }
      return acc;
    };
  }

  /**
   * `=` is ambiguous (Boolean, Integer and String overloads), so spec 3.7 picks the overload by the
   * type of the right operand and casts the left one to it: `'TRUE' = true` is `true`,
   * `true = 'TRUE'` compares `'true'` with `'TRUE'` and is `false`.
   */
  private equality(node: CesqlNode & { type: 'binary' }, left: Evaluator, right: Evaluator, negated: boolean): Evaluator {
    const { left: leftNode, right: rightNode } = node;
    if (leftNode.type === 'attribute' && rightNode.type === 'literal' && typeof rightNode.value === 'string') {
      // The common `attribute = 'text'`: a string attribute is compared directly, anything else
      // (absent, Boolean, Integer) takes the general path.
      const name = leftNode.name;
      const literal = rightNode.value;
      return (event, ctx) => {
        const raw = event[name];
        if (typeof raw === 'string') return (raw === literal) !== negated;
        const n = ctx.count;
        const l = left(event, ctx);
        if (ctx.count !== n) return false;
        return equals(l, literal, ctx) !== negated;
      };
    }
    return (event, ctx) => {
      const n = ctx.count;
      const l = left(event, ctx);
      if (ctx.count !== n) return false;
      const r = right(event, ctx);
      if (ctx.count !== n) return false;
      return equals(l, r, ctx) !== negated;
    };
  }

  private ordering(left: Evaluator, right: Evaluator, op: OrderingOperator): Evaluator {
    const compare = ORDERING[op];
    return (event, ctx) => {
      const n = ctx.count;
      const l = left(event, ctx);
      if (ctx.count !== n) return false;
      const r = right(event, ctx);
      if (ctx.count !== n) return false;
      const x = typeof l === 'number' ? l : castToInteger(l, ctx);
      const y = typeof r === 'number' ? r : castToInteger(r, ctx);
      return compare(x, y);
    };
  }

  private arithmetic(left: Evaluator, right: Evaluator, op: ArithmeticOperator): Evaluator {
    return (event, ctx) => {
      const n = ctx.count;
      const l = left(event, ctx);
      if (ctx.count !== n) return 0;
      const r = right(event, ctx);
      if (ctx.count !== n) return 0;
      return arithmetic(op, l, r, ctx);
    };
  }

  /** The pattern must be a string literal (the parser enforces it); the operand is cast to String. */
  private like(operandNode: CesqlNode, pattern: string, negated: boolean): Evaluator {
    const operand = this.compile(operandNode);
    const matches = compileLikePattern(pattern);
    return (event, ctx) => {
      const n = ctx.count;
      const value = operand(event, ctx);
      if (ctx.count !== n) return false;
      const matched = matches(typeof value === 'string' ? value : castToString(value), ctx);
      if (ctx.count !== n) return false;
      return matched !== negated;
    };
  }

  /**
   * `x IN (y1, ...)` is `=` with the type of `x` as the target of the casts (spec 3.4.5, 3.7). The
   * set is scanned left to right and stops at the first element equal to `x`, like a chain of OR.
   * When every element is a literal of the same type, the set is compiled into a `Set`.
   */
  private in(operandNode: CesqlNode, setNodes: CesqlNode[], negated: boolean): Evaluator {
    const operand = this.compile(operandNode);
    const literals = setNodes.every((s) => s.type === 'literal')
      ? setNodes.map((s) => (s.type === 'literal' ? s.value : false))
      : undefined;
    const firstType = literals === undefined ? undefined : typeof literals[0];
    if (literals !== undefined && literals.every((v) => typeof v === firstType)) {
      const members = new Set<CesqlValue>(literals);
      if (operandNode.type === 'attribute' && firstType === 'string') {
        const name = operandNode.name;
        return (event, ctx) => {
          const raw = event[name];
          if (typeof raw === 'string') return members.has(raw) !== negated;
          const n = ctx.count;
          const value = operand(event, ctx);
          if (ctx.count !== n) return false;
          return inSet(value, literals, ctx) !== negated;
        };
      }
      return (event, ctx) => {
        const n = ctx.count;
        const value = operand(event, ctx);
        if (ctx.count !== n) return false;
        if (typeof value === firstType) return members.has(value) !== negated;
        return inSet(value, literals, ctx) !== negated;
      };
    }
    const set = setNodes.map((s) => this.compile(s));
    return (event, ctx) => {
      const n = ctx.count;
      const value = operand(event, ctx);
      if (ctx.count !== n) return false;
      for (const element of set) {
        const m = ctx.count;
        const item = element(event, ctx);
        if (ctx.count !== m) return false;
        if (equalsAsType(value, item, ctx)) return !negated;
      }
      return negated;
    };
  }

  private call(name: string, argNodes: CesqlNode[]): Evaluator {
    const fn = this.functions.resolve(name, argNodes.length);
    if (fn === undefined) {
      const message = `no function ${name} taking ${argNodes.length} argument${argNodes.length === 1 ? '' : 's'}`;
      this.staticErrors.push(new CesqlError('missingFunction', message));
      return (_event, ctx) => {
        ctx.fail('missingFunction', message);
        return false;
      };
    }
    const args = argNodes.map((a) => this.compile(a));
    const types: ParameterType[] = args.map((_, i) => fn.params[i] ?? fn.variadic ?? 'Any');
    const zero = ZERO_VALUES[fn.returns];
    return (event, ctx) => {
      const n = ctx.count;
      const values: CesqlValue[] = new Array(args.length);
      for (let i = 0; i < args.length; i++) {
        values[i] = (args[i] as Evaluator)(event, ctx);
        if (ctx.count !== n) return zero;
      }
      for (let i = 0; i < values.length; i++) values[i] = castTo(values[i] as CesqlValue, types[i] as ParameterType, ctx);
      return fn.call(values, ctx);
    };
  }
}

function castTo(value: CesqlValue, type: ParameterType, ctx: EvaluationContext): CesqlValue {
  switch (type) {
    case 'Any':
      return value;
    case 'String':
      return castToString(value);
    case 'Integer':
      return castToInteger(value, ctx);
    case 'Boolean':
      return castToBoolean(value, ctx);
  }
}

/**
 * Integer arithmetic on 32-bit signed values. Division truncates towards zero and the remainder
 * takes the sign of the dividend; dividing by zero is a math error with `0`. A result outside the
 * 32-bit range (e.g. `2147483647 + 1`, `-2147483648 / -1`) is a math error with `0` as well: the
 * spec only says integers are 32-bit, and the zero value is its answer for a failed operator.
 */
function arithmetic(op: ArithmeticOperator, l: CesqlValue, r: CesqlValue, ctx: EvaluationContext): number {
  const x = typeof l === 'number' ? l : castToInteger(l, ctx);
  const y = typeof r === 'number' ? r : castToInteger(r, ctx);
  if (y === 0 && (op === '/' || op === '%')) {
    ctx.fail('math', `division by zero in ${x} ${op} 0`);
    return 0;
  }
  const result = ARITHMETIC[op](x, y);
  if (result < INT32_MIN || result > INT32_MAX) {
    ctx.fail('math', `${x} ${op} ${y} overflows a 32-bit integer`);
    return 0;
  }
  return result | 0;
}

/** A binary operator other than AND and OR applied to operands that did not fail (for chains). */
function apply(op: BinaryOperator, l: CesqlValue, r: CesqlValue, ctx: EvaluationContext): CesqlValue {
  switch (op) {
    case 'XOR':
      return castToBoolean(l, ctx) !== castToBoolean(r, ctx);
    case '=':
      return equals(l, r, ctx);
    case '!=':
    case '<>':
      return !equals(l, r, ctx);
    case '<':
    case '<=':
    case '>':
    case '>=':
      return ORDERING[op](typeof l === 'number' ? l : castToInteger(l, ctx), typeof r === 'number' ? r : castToInteger(r, ctx));
    case '+':
    case '-':
    case '*':
    case '/':
    case '%':
      return arithmetic(op, l, r, ctx);
    case 'AND':
    case 'OR':
      throw new Error(`${op} is evaluated by the chain itself`);
  }
}

/**
 * Two strings of one length are compared character by character: charged to the budget, so that
 * comparing large attributes again and again cannot run unbounded. `false` when refused.
 */
function sameStrings(l: string, r: string, ctx: EvaluationContext): boolean {
  if (l.length !== r.length) return false;
  return ctx.charge(l.length) && l === r;
}

/** `l = r` with the left operand cast to the type of the right one. */
function equals(l: CesqlValue, r: CesqlValue, ctx: EvaluationContext): boolean {
  if (typeof l === 'string' && typeof r === 'string') return sameStrings(l, r, ctx);
  if (typeof l === typeof r) return l === r;
  if (typeof r === 'string') return sameStrings(castToString(l), r, ctx);
  if (typeof r === 'number') return castToInteger(l, ctx) === r;
  return castToBoolean(l, ctx) === r;
}

/** `x = item` for IN: the item is cast to the type of `x`. */
function equalsAsType(x: CesqlValue, item: CesqlValue, ctx: EvaluationContext): boolean {
  if (typeof x === 'string' && typeof item === 'string') return sameStrings(x, item, ctx);
  if (typeof x === typeof item) return x === item;
  if (typeof x === 'string') return sameStrings(x, castToString(item), ctx);
  if (typeof x === 'number') return x === castToInteger(item, ctx);
  return x === castToBoolean(item, ctx);
}

function inSet(x: CesqlValue, items: readonly CesqlValue[], ctx: EvaluationContext): boolean {
  for (const item of items) if (equalsAsType(x, item, ctx)) return true;
  return false;
}
