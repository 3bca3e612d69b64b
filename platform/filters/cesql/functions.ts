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
 * value of its return type, as spec 3.5.3 asks. Work that grows with the length of a string (reading
 * it, building a result) is charged to the evaluation budget first, `ctx.charge(characters)`; when
 * that is refused the function returns its zero value without doing the work.
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

/** Whether the unit at `i` starts a surrogate pair (two units, one code point). */
function pairAt(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  if (c < 0xd800 || c > 0xdbff || i + 1 >= s.length) return false;
  const d = s.charCodeAt(i + 1);
  return d >= 0xdc00 && d <= 0xdfff;
}

/**
 * The number of characters (code points) of a string; a lone surrogate counts as one. Counted in
 * place, without an array of the characters: strings may be large, and every step is charged.
 */
function length(s: string): number {
  if (!SURROGATE.test(s)) return s.length;
  let count = 0;
  for (let i = 0; i < s.length; i++, count++) if (pairAt(s, i)) i++;
  return count;
}

/** The UTF-16 index of code point `index` (0 <= index <= length). */
function unitIndex(s: string, index: number): number {
  let i = 0;
  for (let k = 0; k < index && i < s.length; k++) i += pairAt(s, i) ? 2 : 1;
  return i;
}

/** Code point based `slice(start, end)`; both within [0, length]. */
function slice(s: string, start: number, end?: number): string {
  if (!SURROGATE.test(s)) return s.slice(start, end);
  const from = unitIndex(s, start);
  return end === undefined ? s.slice(from) : s.slice(from, from + unitIndex(s.slice(from), end - start));
}

/**
 * Unicode White_Space (all in the basic plane). TRIM is written by hand: the RegExp
 * `/^\p{White_Space}+|\p{White_Space}+$/` takes quadratic time on a long run of spaces followed by
 * anything else (1.7 s for 40,000 spaces).
 */
function isWhiteSpace(c: number): boolean {
  return (
    (c >= 0x09 && c <= 0x0d) ||
    c === 0x20 ||
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

function trim(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isWhiteSpace(s.charCodeAt(start))) start++;
  while (end > start && isWhiteSpace(s.charCodeAt(end - 1))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

function str(args: CesqlValue[], i: number): string {
  return args[i] as string;
}

function int(args: CesqlValue[], i: number): number {
  return args[i] as number;
}

/** The total length of string arguments `from` on, what joining them builds. */
function totalLength(args: CesqlValue[], from: number): number {
  let total = 0;
  for (let i = from; i < args.length; i++) total += (args[i] as string).length;
  return total;
}

function substring(x: string, pos: number, len: number | undefined, ctx: EvaluationContext): string {
  // counting the characters and finding where to cut are two passes
  if (!ctx.charge(2 * x.length)) return '';
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
  { name: 'LENGTH', params: ['String'], returns: 'Integer', call: (a, ctx) => (ctx.charge(str(a, 0).length) ? length(str(a, 0)) : 0) },
  {
    name: 'CONCAT',
    params: [],
    variadic: 'String',
    returns: 'String',
    call: (a, ctx) => (ctx.charge(totalLength(a, 0)) ? a.join('') : ''),
  },
  {
    name: 'CONCAT_WS',
    params: ['String'],
    variadic: 'String',
    returns: 'String',
    call: (a, ctx) => (ctx.charge(totalLength(a, 1) + str(a, 0).length * Math.max(0, a.length - 2)) ? a.slice(1).join(str(a, 0)) : ''),
  },
  { name: 'LOWER', params: ['String'], returns: 'String', call: (a, ctx) => (ctx.charge(str(a, 0).length) ? str(a, 0).toLowerCase() : '') },
  { name: 'UPPER', params: ['String'], returns: 'String', call: (a, ctx) => (ctx.charge(str(a, 0).length) ? str(a, 0).toUpperCase() : '') },
  {
    name: 'TRIM',
    params: ['String'],
    returns: 'String',
    call: (a, ctx) => (ctx.charge(str(a, 0).length) ? trim(str(a, 0)) : ''),
  },
  {
    name: 'LEFT',
    params: ['String', 'Integer'],
    returns: 'String',
    call: (a, ctx) => {
      const x = str(a, 0);
      if (!ctx.charge(2 * x.length)) return '';
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
      if (!ctx.charge(2 * x.length)) return '';
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
  {
    name: 'IS_INT',
    params: ['String'],
    returns: 'Boolean',
    call: (a, ctx) => ctx.charge(str(a, 0).length) && parseInteger(str(a, 0)) !== undefined,
  },
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
