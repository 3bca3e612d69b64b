import type { EvaluationContext } from './evaluation-context.ts';

/** A CESQL value: Boolean, Integer (a 32-bit signed integer held in a number) or String. */
export type CesqlValue = boolean | number | string;

export const INT32_MIN = -2147483648;
export const INT32_MAX = 2147483647;

const INTEGER_TEXT = /^[+-]?[0-9]+$/;

export function typeName(value: CesqlValue): 'Boolean' | 'Integer' | 'String' {
  return typeof value === 'boolean' ? 'Boolean' : typeof value === 'number' ? 'Integer' : 'String';
}

/** String -> Integer of spec 3.7: base 10, optional sign, 32-bit; `undefined` when it is not one. */
export function parseInteger(text: string): number | undefined {
  if (!INTEGER_TEXT.test(text)) return undefined;
  const value = Number(text);
  if (value < INT32_MIN || value > INT32_MAX) return undefined;
  return value | 0;
}

/** String -> Boolean of spec 3.7: the lower case form must be exactly `true` or `false`. */
export function parseBoolean(text: string): boolean | undefined {
  if (text.length !== 4 && text.length !== 5) return undefined;
  const lower = text.toLowerCase();
  return lower === 'true' ? true : lower === 'false' ? false : undefined;
}

/**
 * Any value to Integer (Boolean -> 1/0, String parsed). A failed cast is `0` and a cast error.
 * Reading a String costs its length, charged to the evaluation budget (`0` when refused).
 */
export function castToInteger(value: CesqlValue, ctx: EvaluationContext): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (!ctx.charge(value.length)) return 0;
  const parsed = parseInteger(value);
  if (parsed !== undefined) return parsed;
  ctx.fail('cast', `cannot cast '${value}' to Integer`);
  return 0;
}

/**
 * Any value to Boolean where an operator asks for one (NOT, AND, OR, XOR, `=` against a Boolean,
 * IN with a Boolean on the left, the result of a filter). Strings are parsed; an Integer is refused
 * with a cast error, as the CESQL TCK requires (`NOT 10` is `true` with a cast error). An Integer
 * becomes a Boolean only through the explicit `BOOL()` function.
 */
export function castToBoolean(value: CesqlValue, ctx: EvaluationContext): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const parsed = parseBoolean(value);
    if (parsed !== undefined) return parsed;
    ctx.fail('cast', `cannot cast '${value}' to Boolean`);
    return false;
  }
  ctx.fail('cast', `cannot cast Integer ${value} to Boolean implicitly, use BOOL()`);
  return false;
}

/** Integer -> String is base 10, Boolean -> String is `true`/`false`; never fails. */
export function castToString(value: CesqlValue): string {
  return typeof value === 'string' ? value : String(value);
}
