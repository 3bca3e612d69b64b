import {
  castToInteger,
  castToString,
  INT32_MAX,
  INT32_MIN,
  parseBoolean,
  parseInteger,
  type CesqlValue,
} from './casts.ts';
import type { EvaluationContext } from './evaluation-context.ts';

export type CesqlType = 'Boolean' | 'Integer' | 'String';
/** `Any` takes the argument as it is; the casting functions are the only ones that use it. */
export type ParameterType = CesqlType | 'Any';

/**
 * A function of CESQL (spec 3.5). Arguments arrive already cast to `params` (and to `variadic` for
 * those past the fixed ones). On an error the implementation calls `ctx.fail` and still returns a
 * value of its return type, as spec 3.5.3 asks.
 */
export interface CesqlFunction {
  name: string;
  params: readonly ParameterType[];
  variadic?: ParameterType;
  returns: CesqlType;
  call(args: CesqlValue[], ctx: EvaluationContext): CesqlValue;
}

export const ZERO_VALUES: Readonly<Record<CesqlType, CesqlValue>> = { Boolean: false, Integer: 0, String: '' };

const SURROGATE = /[\uD800-\uDFFF]/;
const EDGE_WHITESPACE = /^\p{White_Space}+|\p{White_Space}+$/gu;

/** The characters (code points) of a string, or `undefined` when every one is a single UTF-16 unit. */
function codePoints(s: string): string[] | undefined {
  return SURROGATE.test(s) ? Array.from(s) : undefined;
}

function length(s: string): number {
  const points = codePoints(s);
  return points === undefined ? s.length : points.length;
}

/** Code point based `slice(start, end)`; both within [0, length]. */
function slice(s: string, start: number, end?: number): string {
  const points = codePoints(s);
  return points === undefined ? s.slice(start, end) : points.slice(start, end).join('');
}

function str(args: CesqlValue[], i: number): string {
  return args[i] as string;
}

function int(args: CesqlValue[], i: number): number {
  return args[i] as number;
}

function substring(x: string, pos: number, len: number | undefined, ctx: EvaluationContext): string {
  const size = length(x);
  if (pos > size || pos < -size) {
    ctx.fail('functionEvaluation', `SUBSTRING position ${pos} is outside a string of length ${size}`);
    return '';
  }
  if (len !== undefined && len < 0) {
    ctx.fail('functionEvaluation', `SUBSTRING length ${len} is negative`);
    return '';
  }
  if (pos === 0) return '';
  const start = pos > 0 ? pos - 1 : size + pos;
  return len === undefined ? slice(x, start) : slice(x, start, Math.min(size, start + len));
}

const BUILT_INS: readonly CesqlFunction[] = [
  { name: 'LENGTH', params: ['String'], returns: 'Integer', call: (a) => length(str(a, 0)) },
  { name: 'CONCAT', params: [], variadic: 'String', returns: 'String', call: (a) => a.join('') },
  {
    name: 'CONCAT_WS',
    params: ['String'],
    variadic: 'String',
    returns: 'String',
    call: (a) => a.slice(1).join(str(a, 0)),
  },
  { name: 'LOWER', params: ['String'], returns: 'String', call: (a) => str(a, 0).toLowerCase() },
  { name: 'UPPER', params: ['String'], returns: 'String', call: (a) => str(a, 0).toUpperCase() },
  { name: 'TRIM', params: ['String'], returns: 'String', call: (a) => str(a, 0).replace(EDGE_WHITESPACE, '') },
  {
    name: 'LEFT',
    params: ['String', 'Integer'],
    returns: 'String',
    call: (a, ctx) => {
      const x = str(a, 0);
      const y = int(a, 1);
      if (y < 0) {
        ctx.fail('functionEvaluation', `LEFT length ${y} is negative`);
        return x;
      }
      return y >= length(x) ? x : slice(x, 0, y);
    },
  },
  {
    name: 'RIGHT',
    params: ['String', 'Integer'],
    returns: 'String',
    call: (a, ctx) => {
      const x = str(a, 0);
      const y = int(a, 1);
      if (y < 0) {
        ctx.fail('functionEvaluation', `RIGHT length ${y} is negative`);
        return x;
      }
      const size = length(x);
      return y >= size ? x : slice(x, size - y);
    },
  },
  {
    name: 'SUBSTRING',
    params: ['String', 'Integer'],
    returns: 'String',
    call: (a, ctx) => substring(str(a, 0), int(a, 1), undefined, ctx),
  },
  {
    name: 'SUBSTRING',
    params: ['String', 'Integer', 'Integer'],
    returns: 'String',
    call: (a, ctx) => substring(str(a, 0), int(a, 1), int(a, 2), ctx),
  },
  {
    name: 'ABS',
    params: ['Integer'],
    returns: 'Integer',
    call: (a, ctx) => {
      const x = int(a, 0);
      if (x === INT32_MIN) {
        ctx.fail('math', 'ABS(-2147483648) overflows a 32-bit integer');
        return INT32_MAX;
      }
      return x < 0 ? -x : x;
    },
  },
  { name: 'INT', params: ['Any'], returns: 'Integer', call: (a, ctx) => castToInteger(a[0] as CesqlValue, ctx) },
  {
    name: 'BOOL',
    params: ['Any'],
    returns: 'Boolean',
    call: (a, ctx) => {
      const x = a[0] as CesqlValue;
      if (typeof x === 'boolean') return x;
      if (typeof x === 'number') return x !== 0;
      const parsed = parseBoolean(x);
      if (parsed !== undefined) return parsed;
      ctx.fail('cast', `cannot cast '${x}' to Boolean`);
      return false;
    },
  },
  { name: 'STRING', params: ['Any'], returns: 'String', call: (a) => castToString(a[0] as CesqlValue) },
  { name: 'IS_BOOL', params: ['String'], returns: 'Boolean', call: (a) => parseBoolean(str(a, 0)) !== undefined },
  { name: 'IS_INT', params: ['String'], returns: 'Boolean', call: (a) => parseInteger(str(a, 0)) !== undefined },
];

/**
 * Functions by upper-case name. Overloads differ by arity (spec 3.5); a variadic overload applies
 * to any arity at or above its fixed parameters, after the fixed-arity ones.
 */
export class FunctionRegistry {
  private readonly byName = new Map<string, CesqlFunction[]>();

  constructor(functions: readonly CesqlFunction[] = BUILT_INS) {
    for (const fn of functions) this.register(fn);
  }

  register(fn: CesqlFunction): void {
    const name = fn.name.toUpperCase();
    const overloads = this.byName.get(name) ?? [];
    const clash = overloads.find((o) =>
      fn.variadic !== undefined || o.variadic !== undefined
        ? (fn.variadic !== undefined && o.variadic !== undefined) ||
          (fn.variadic !== undefined ? fn.params.length <= o.params.length : o.params.length <= fn.params.length)
        : o.params.length === fn.params.length,
    );
    if (clash !== undefined) throw new Error(`function ${name}/${fn.params.length} clashes with an existing overload`);
    overloads.push(fn);
    this.byName.set(name, overloads);
  }

  resolve(name: string, arity: number): CesqlFunction | undefined {
    const overloads = this.byName.get(name.toUpperCase());
    if (overloads === undefined) return undefined;
    return (
      overloads.find((o) => o.variadic === undefined && o.params.length === arity) ??
      overloads.find((o) => o.variadic !== undefined && o.params.length <= arity)
    );
  }
}

export const builtInFunctions = new FunctionRegistry();
