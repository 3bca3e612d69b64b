import { INT32_MAX, INT32_MIN, type CesqlValue } from './casts.ts';

/**
 * Pioneer's extension of the `sql` dialect (and of `exact`, `prefix` and `suffix`): a dotted path under `data`
 * reads a value inside the event's JSON data, as an attribute reads a context attribute. CESQL 1.0 itself
 * reaches context attributes only.
 *
 *   data.amount, data.merchant.country, data.items.0.sku
 *
 * - After `data`, 1 to MAX_DATA_PATH_SEGMENTS members, each of letters, digits and `_` (`[A-Za-z0-9_]+`),
 *   case-sensitive as JSON keys are; the whole path is at most MAX_DATA_PATH_LENGTH characters. Keys holding
 *   any other character (`-`, `.`, spaces) cannot be addressed. In `sql` the word `data` is case-insensitive,
 *   as attribute names are; in `exact`, `prefix` and `suffix` it is written `data`, as attribute names there
 *   are in lower case.
 * - A member names a member of an object (its own members only), or, when it is a non-negative integer written
 *   without leading zeros (`0`, `12`), an element of an array. A name on an array, or an index past its end,
 *   finds nothing.
 * - Only a string, a number or a Boolean is a value. Nothing found, JSON `null`, an object or an array at the
 *   path, data that is not JSON (text, `data_base64`) and an event without data are all no value, which
 *   behaves exactly as a missing attribute: EXISTS is false, reading it is a missingAttribute error.
 * - A string is a String and a Boolean a Boolean. A number is an Integer when it is an integer within the
 *   32-bit signed range (`100` and `100.0`, which JSON.parse does not tell apart); any other number is a
 *   String holding its text as JavaScript writes it (`'100.5'`, `'3000000000'`, `'1e+21'`), as CESQL 1.0
 *   treats such an extension attribute: it compares as text with `=`, and ordering it against an Integer is
 *   a cast error, so the filter does not match.
 *
 * A lookup costs one step of the evaluation budget per member (evaluation-context.ts).
 */
export const DATA_ROOT = 'data';

/** At most this many members after `data`. */
export const MAX_DATA_PATH_SEGMENTS = 16;

/** A whole data path, `data.` included, is at most this many characters. */
export const MAX_DATA_PATH_LENGTH = 256;

const SEGMENT = /^[A-Za-z0-9_]+$/;
const INDEX = /^(?:0|[1-9][0-9]*)$/;

/** What a data path is, for messages. */
export const DATA_PATH_RULE =
  `data followed by 1 to ${MAX_DATA_PATH_SEGMENTS} members, each of letters, digits and _ (data.merchant.country), ` +
  `at most ${MAX_DATA_PATH_LENGTH} characters`;

/** A data path, compiled: its members, and for each whether it can index an array (and which element). */
export interface DataPath {
  /** as written: `data.merchant.country` */
  readonly text: string;
  readonly segments: readonly string[];
  /** per segment, the array index it stands for, or -1 */
  readonly indices: readonly number[];
}

/**
 * The members of a data path after `data`, or why it is not one (a message without the path itself).
 * `segments` are what follows `data.`, split at the dots; the root is the caller's to check.
 */
export function checkDataPath(text: string, segments: readonly string[]): string | undefined {
  if (text.length > MAX_DATA_PATH_LENGTH) return `a data path is at most ${MAX_DATA_PATH_LENGTH} characters (this one has ${text.length})`;
  if (segments.length === 0) return 'a data path names at least one member after data (data.amount)';
  if (segments.length > MAX_DATA_PATH_SEGMENTS) return `a data path has at most ${MAX_DATA_PATH_SEGMENTS} members after data (this one has ${segments.length})`;
  for (const s of segments) if (!SEGMENT.test(s)) return `a data path member holds letters, digits and _ only, and is not empty (found '${s}')`;
  return undefined;
}

/** Builds a data path from members already checked by `checkDataPath`. */
export function dataPath(text: string, segments: readonly string[]): DataPath {
  // each key as one flat, internalised string: a slice of a longer text would be unpacked on every lookup
  const keys = segments.map((s) => Object.keys({ [s]: true })[0] ?? s);
  return { text, segments: keys, indices: keys.map((s) => (INDEX.test(s) ? Number(s) : -1)) };
}

/**
 * `text` (`data.a.b`, `data` in lower case) as a data path, or the reason it is not one. For exact, prefix and
 * suffix, whose attribute names are JSON keys of the filter.
 */
export function parseDataPath(text: string): DataPath | string {
  if (!text.startsWith(`${DATA_ROOT}.`)) return `a data path starts with ${DATA_ROOT}. (data.amount)`;
  const segments = text.slice(DATA_ROOT.length + 1).split('.');
  const problem = checkDataPath(text, segments);
  return problem ?? dataPath(text, segments);
}

/**
 * What the path finds in the event's data: a string, number or Boolean, else `undefined` (nothing there,
 * null, an object or an array; no data, or data that is not JSON).
 */
export function dataLookup(event: Readonly<Record<string, unknown>>, path: DataPath): string | number | boolean | undefined {
  let current: unknown = event[DATA_ROOT];
  const { segments, indices } = path;
  for (let i = 0; i < segments.length; i++) {
    if (typeof current !== 'object' || current === null) return undefined;
    if (Array.isArray(current)) {
      const index = indices[i] as number;
      if (index < 0 || index >= current.length) return undefined;
      current = current[index];
    } else {
      const key = segments[i] as string;
      if (!Object.prototype.hasOwnProperty.call(current, key)) return undefined;
      current = (current as Record<string, unknown>)[key];
    }
  }
  switch (typeof current) {
    case 'string':
    case 'number':
    case 'boolean':
      return current;
    default:
      return undefined;
  }
}

/** The value a data path finds, as a CESQL value (see above), or `undefined`: behaves as a missing attribute. */
export function dataValue(event: Readonly<Record<string, unknown>>, path: DataPath): CesqlValue | undefined {
  const value = dataLookup(event, path);
  if (typeof value !== 'number') return value;
  return Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX ? value | 0 : String(value);
}

/**
 * The value a data path finds as text, for exact, prefix and suffix: a string as it is, a number or a Boolean
 * in its String form (`250`, `100.5`, `true`); `undefined` when there is none, which matches nothing.
 */
export function dataText(event: Readonly<Record<string, unknown>>, path: DataPath): string | undefined {
  const value = dataLookup(event, path);
  return value === undefined || typeof value === 'string' ? value : String(value);
}
