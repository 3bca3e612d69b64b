import type { CesqlNode, ComparisonOperator } from './ast.ts';
import {
  castToBoolean,
  castToInteger,
  castToString,
  INT32_MAX,
  INT32_MIN,
  type CesqlValue,
} from './casts.ts';
import { CesqlError } from './errors.ts';
import type { EvaluationContext } from './evaluation-context.ts';
import { ZERO_VALUES, type FunctionRegistry, type ParameterType } from './functions.ts';
import { compileLikePattern } from './like-pattern.ts';

/** A CloudEvent in structured JSON form: context attributes and extensions at the top level. */
export type CesqlEvent = Readonly<Record<string, unknown>>;

/** One compiled node: computes its value; errors go to `ctx`. */
export type Evaluator = (event: CesqlEvent, ctx: EvaluationContext) => CesqlValue;

/** Attributes that are part of the event but not addressable: CESQL does not look into the payload. */
const PAYLOAD_MEMBERS: ReadonlySet<string> = new Set(['data', 'data_base64']);

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
      const value = attributeValue(event, name);
      if (value !== undefined) return value;
      ctx.fail('missingAttribute', message);
      return false;
    };
  }

  private binary(node: CesqlNode & { type: 'binary' }): Evaluator {
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
        return this.arithmetic(left, right, (x, y) => x + y, '+');
      case '-':
        return this.arithmetic(left, right, (x, y) => x - y, '-');
      case '*':
        return this.arithmetic(left, right, (x, y) => x * y, '*');
      case '/':
        return this.arithmetic(left, right, (x, y) => Math.trunc(x / y), '/');
      case '%':
        return this.arithmetic(left, right, (x, y) => x % y, '%');
    }
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

  private ordering(left: Evaluator, right: Evaluator, op: Exclude<ComparisonOperator, '=' | '!=' | '<>'>): Evaluator {
    const compare =
      op === '<'
        ? (x: number, y: number) => x < y
        : op === '<='
          ? (x: number, y: number) => x <= y
          : op === '>'
            ? (x: number, y: number) => x > y
            : (x: number, y: number) => x >= y;
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

  /**
   * Integer arithmetic on 32-bit signed values. Division truncates towards zero and the remainder
   * takes the sign of the dividend; dividing by zero is a math error with `0`. A result outside the
   * 32-bit range (e.g. `2147483647 + 1`, `-2147483648 / -1`) is a math error with `0` as well: the
   * spec only says integers are 32-bit, and the zero value is its answer for a failed operator.
   */
  private arithmetic(left: Evaluator, right: Evaluator, apply: (x: number, y: number) => number, op: string): Evaluator {
    const divides = op === '/' || op === '%';
    return (event, ctx) => {
      const n = ctx.count;
      const l = left(event, ctx);
      if (ctx.count !== n) return 0;
      const r = right(event, ctx);
      if (ctx.count !== n) return 0;
      const x = typeof l === 'number' ? l : castToInteger(l, ctx);
      const y = typeof r === 'number' ? r : castToInteger(r, ctx);
      if (divides && y === 0) {
        ctx.fail('math', `division by zero in ${x} ${op} 0`);
        return 0;
      }
      const result = apply(x, y);
      if (result < INT32_MIN || result > INT32_MAX) {
        ctx.fail('math', `${x} ${op} ${y} overflows a 32-bit integer`);
        return 0;
      }
      return result | 0;
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
      return matches(typeof value === 'string' ? value : castToString(value)) !== negated;
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

/** `l = r` with the left operand cast to the type of the right one. */
function equals(l: CesqlValue, r: CesqlValue, ctx: EvaluationContext): boolean {
  if (typeof l === typeof r) return l === r;
  if (typeof r === 'string') return castToString(l) === r;
  if (typeof r === 'number') return castToInteger(l, ctx) === r;
  return castToBoolean(l, ctx) === r;
}

/** `x = item` for IN: the item is cast to the type of `x`. */
function equalsAsType(x: CesqlValue, item: CesqlValue, ctx: EvaluationContext): boolean {
  if (typeof x === typeof item) return x === item;
  if (typeof x === 'string') return x === castToString(item);
  if (typeof x === 'number') return x === castToInteger(item, ctx);
  return x === castToBoolean(item, ctx);
}

function inSet(x: CesqlValue, items: readonly CesqlValue[], ctx: EvaluationContext): boolean {
  for (const item of items) if (equalsAsType(x, item, ctx)) return true;
  return false;
}
