import type { EvaluationContext } from './evaluation-context.ts';

/**
 * Compiles a LIKE pattern (spec 3.4.3) into a matcher, once, when the expression is compiled.
 *
 * `%` matches any run of characters (also none), `_` exactly one character (a Unicode code point),
 * `\%` and `\_` match the wildcard characters themselves; any other character, a backslash before
 * anything else included, matches itself, case-sensitively.
 *
 * Patterns without `_` and with `%` only at the ends become `===`, `startsWith`, `endsWith` or
 * `includes`. Every other pattern runs through a matcher written by hand, which never backtracks
 * across a `%` (no RegExp: a backtracking engine takes exponential time on `%a%a%a%a%a%a%a%a%b`):
 *
 *   - the pattern is split on `%` into segments; a segment is literal characters and `_`, so it
 *     matches a fixed number of code points, and is compiled to an array of code points (-1 for `_`);
 *   - the first segment must match at the start of the value, the last one at its end;
 *   - each segment between them is placed at its leftmost occurrence after the one before it. For a
 *     pattern whose only variable-length wildcard is `%`, leftmost placement is always right: any
 *     match can move each segment to its leftmost place, leaving more of the value to the rest.
 *   - a middle segment's candidates are found by its longest literal run (`indexOf` when the value
 *     has no surrogate pairs), each checked once against the segment's code points.
 *
 * Cost: O(n · m) at worst for a value of n characters and a pattern of m (at most the 4096 characters
 * of an expression), the guarantee RE2 gives, and O(n + m) for the usual patterns, whose anchors are
 * rare in the value. Every character examined is charged to the evaluation's budget (`ctx`, see
 * evaluation-context.ts): one step per character compared by hand, one per character scanned by a
 * native method (`indexOf`, the check for surrogates), although those run many times faster, and
 * CALL_STEPS more for each call of `indexOf`, which costs about that much however little it scans. When
 * the budget runs out the matcher stops, the context holds a `budgetExceeded` error and the result
 * is `false`; a single native scan may pass the budget by at most the value's length. Measured on the
 * worst patterns (bench/cesql.ts) the hand-written loops take about a nanosecond a step.
 *
 * Matching is on code points: a value with surrogate pairs is read as an array of code points first
 * (one more pass), so `_` takes a pair whole and literal text never matches half of one, as a RegExp
 * with the `u` flag would; a lone surrogate is a code point of its own.
 */
export type LikeMatcher = (value: string, ctx: EvaluationContext) => boolean;

/** `_` in a segment's code points. */
const ANY = -1;

/** What is between two `%`: a fixed number of code points. */
interface Segment {
  /** How many code points it matches. */
  length: number;
  /** Where its literal code points are, and which: all that is checked (`_` matches anything). */
  offsets: Int32Array;
  codes: Int32Array;
  /** The longest run of literal code points: candidates are found by it. */
  anchor: { text: string; offset: number; first: number } | undefined;
}

/** Result of a search that ran out of budget. */
const EXCEEDED = -2;

/** What a call of `indexOf` costs beyond the characters it scans, in steps (about a step a nanosecond). */
const CALL_STEPS = 16;

const SURROGATE = /[\uD800-\uDFFF]/;

function isHigh(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

function isLow(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/** Whether literal text could match half of a surrogate pair at one of its ends. */
function splitsPairs(text: string): boolean {
  return text !== '' && (isLow(text.charCodeAt(0)) || isHigh(text.charCodeAt(text.length - 1)));
}

function segment(codes: number[]): Segment {
  let best: { offset: number; length: number } | undefined;
  for (let i = 0; i < codes.length; ) {
    if (codes[i] === ANY) {
      i++;
      continue;
    }
    let j = i;
    while (j < codes.length && codes[j] !== ANY) j++;
    if (best === undefined || j - i > best.length) best = { offset: i, length: j - i };
    i = j;
  }
  const anchor =
    best === undefined
      ? undefined
      : { text: String.fromCodePoint(...codes.slice(best.offset, best.offset + best.length)), offset: best.offset, first: codes[best.offset] as number };
  const offsets: number[] = [];
  codes.forEach((c, i) => c !== ANY && offsets.push(i));
  return { length: codes.length, offsets: Int32Array.from(offsets), codes: Int32Array.from(offsets.map((i) => codes[i] as number)), anchor };
}

type Part = { kind: 'text'; text: string } | { kind: 'any' } | { kind: 'one' };

function parse(pattern: string): Part[] {
  const parts: Part[] = [];
  let text = '';
  const flush = (): void => {
    if (text !== '') parts.push({ kind: 'text', text });
    text = '';
  };
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    const next = pattern.charAt(i + 1);
    if (c === '\\' && (next === '%' || next === '_')) {
      text += next;
      i++;
    } else if (c === '%') {
      flush();
      const last = parts[parts.length - 1];
      if (last === undefined || last.kind !== 'any') parts.push({ kind: 'any' });
    } else if (c === '_') {
      flush();
      parts.push({ kind: 'one' });
    } else {
      text += c;
    }
  }
  flush();
  return parts;
}

export function compileLikePattern(pattern: string): LikeMatcher {
  const parts = parse(pattern);
  const fast = fastPath(parts);
  if (fast !== undefined) return fast;
  const segments: number[][] = [[]];
  for (const part of parts) {
    const current = segments[segments.length - 1] as number[];
    if (part.kind === 'any') segments.push([]);
    else if (part.kind === 'one') current.push(ANY);
    else for (const c of part.text) current.push(c.codePointAt(0) as number);
  }
  const matcher = new WildcardMatcher(segments.map(segment));
  return (value, ctx) => matcher.test(value, ctx);
}

/** The shapes that a native string method answers, charged what that method may examine. */
function fastPath(parts: Part[]): LikeMatcher | undefined {
  const shape = parts.map((p) => (p.kind === 'text' ? 't' : p.kind === 'any' ? '%' : '_')).join('');
  if (parts.some((p) => p.kind === 'text' && splitsPairs(p.text)) && shape !== 't') return undefined;
  const literal = (index: number): string => {
    const part = parts[index];
    return part !== undefined && part.kind === 'text' ? part.text : '';
  };
  switch (shape) {
    case '':
      return (value) => value === '';
    case 't': {
      const exact = literal(0);
      return (value, ctx) => ctx.charge(exact.length) && value === exact;
    }
    case '%':
      return () => true;
    case 't%': {
      const prefix = literal(0);
      return (value, ctx) => ctx.charge(prefix.length) && value.startsWith(prefix);
    }
    case '%t': {
      const suffix = literal(1);
      return (value, ctx) => ctx.charge(suffix.length) && value.endsWith(suffix);
    }
    case '%t%': {
      const infix = literal(1);
      return (value, ctx) => ctx.charge(value.length) && value.includes(infix);
    }
    case 't%t': {
      const prefix = literal(0);
      const suffix = literal(2);
      const min = prefix.length + suffix.length;
      return (value, ctx) => ctx.charge(min) && value.length >= min && value.startsWith(prefix) && value.endsWith(suffix);
    }
  }
  return undefined;
}

/**
 * The general case. The value is read either as it is (`text`: no surrogate pairs, so one UTF-16 unit
 * is one code point) or as an array of code points (`points`). `work` counts the steps of one `test`,
 * `limit` is the budget that was left when it began; both live on the instance because evaluation is
 * synchronous and one matcher belongs to one compiled expression.
 */
class WildcardMatcher {
  private readonly first: Segment;
  private readonly middle: Segment[];
  private readonly last: Segment | undefined;
  private readonly minLength: number;
  private text = '';
  private points: Int32Array | undefined;
  private work = 0;
  private limit = 0;

  constructor(segments: Segment[]) {
    this.first = segments[0] as Segment;
    this.last = segments.length > 1 ? segments[segments.length - 1] : undefined;
    this.middle = segments.slice(1, -1);
    this.minLength = segments.reduce((sum, s) => sum + s.length, 0);
  }

  test(value: string, ctx: EvaluationContext): boolean {
    // a code point is one or two units: a value shorter than the pattern's code points cannot match
    if (value.length < this.minLength) return false;
    // the check for surrogates is a native scan (it also flattens a string built by CONCAT)
    if (!ctx.charge(value.length)) return false;
    this.work = 0;
    this.limit = ctx.steps;
    let length = value.length;
    if (SURROGATE.test(value)) {
      if (!ctx.charge(value.length)) return false;
      this.limit = ctx.steps;
      this.points = codePoints(value);
      length = this.points.length;
    } else {
      this.text = value;
    }
    const matched = this.run(length);
    this.text = '';
    this.points = undefined;
    if (matched === EXCEEDED || this.work > this.limit) {
      ctx.exceed();
      return false;
    }
    ctx.steps -= this.work;
    return matched === 1;
  }

  /** 1 on a match, 0 on none, EXCEEDED when the budget ran out. */
  private run(length: number): number {
    if (length < this.minLength) return 0;
    const first = this.first.length;
    if (!this.verify(this.first, 0)) return 0;
    if (this.last === undefined) return first === length ? 1 : 0;
    const end = length - this.last.length;
    if (!this.verify(this.last, end)) return 0;
    let at = first;
    for (const segment of this.middle) {
      const start = this.find(segment, at, end);
      if (start < 0) return start === EXCEEDED ? EXCEEDED : 0;
      at = start + segment.length;
    }
    return this.work > this.limit ? EXCEEDED : 1;
  }

  /** Whether `segment` matches the code points from `start` on (the caller knows they exist). */
  private verify(segment: Segment, start: number): boolean {
    const { codes, offsets } = segment;
    const n = codes.length;
    let k = 0;
    if (this.points === undefined) {
      const text = this.text;
      while (k < n && text.charCodeAt(start + (offsets[k] as number)) === codes[k]) k++;
    } else {
      const points = this.points;
      while (k < n && points[start + (offsets[k] as number)] === codes[k]) k++;
    }
    this.work += k + 1;
    return k === n;
  }

  /** The leftmost start, from `from` on, where `segment` matches and ends by `end`; -1 or EXCEEDED. */
  private find(segment: Segment, from: number, end: number): number {
    const length = segment.length;
    const anchor = segment.anchor;
    if (anchor === undefined) return from + length <= end ? from : -1;
    if (this.points === undefined) {
      const text = this.text;
      let pos = from + anchor.offset;
      for (;;) {
        const at = text.indexOf(anchor.text, pos);
        this.work += CALL_STEPS + (at < 0 ? text.length : at + anchor.text.length) - pos;
        if (at < 0) return -1;
        const start = at - anchor.offset;
        if (start + length > end) return -1;
        if (this.verify(segment, start)) return start;
        if (this.work > this.limit) return EXCEEDED;
        pos = at + 1;
      }
    }
    const points = this.points;
    const { offset, first } = anchor;
    for (let start = from; start + length <= end; start++) {
      this.work++;
      if (points[start + offset] === first && this.verify(segment, start)) return start;
      if (this.work > this.limit) return EXCEEDED;
    }
    return -1;
  }
}

/** The code points of `value`; a lone surrogate is one of its own, as `Array.from` reads it. */
function codePoints(value: string): Int32Array {
  const points = new Int32Array(value.length);
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (isHigh(c) && i + 1 < value.length) {
      const d = value.charCodeAt(i + 1);
      if (isLow(d)) {
        points[n++] = (c - 0xd800) * 0x400 + (d - 0xdc00) + 0x10000;
        i++;
        continue;
      }
    }
    points[n++] = c;
  }
  return points.subarray(0, n);
}
