import { CesqlParseError } from './errors.ts';

/**
 * Tokens of CESQL 1.0. Words (keywords, identifiers, function names) keep their source spelling;
 * `upper` is the case-folded form used to recognise keywords and functions, which are
 * case-insensitive (spec 2). A `path` is Pioneer's extension: a word followed directly by `.` and
 * more words (`data.merchant.country`), `root` the first and `segments` the rest, as written.
 */
export type Token =
  | { kind: 'integer'; text: string; pos: number; end: number }
  | { kind: 'string'; value: string; text: string; pos: number; end: number }
  | { kind: 'word'; text: string; upper: string; pos: number; end: number }
  | { kind: 'path'; text: string; root: string; segments: string[]; pos: number; end: number }
  | { kind: 'punct'; text: Punct; pos: number; end: number }
  | { kind: 'eof'; text: ''; pos: number; end: number };

export type Punct = '(' | ')' | ',' | '=' | '!=' | '<>' | '<' | '<=' | '>' | '>=' | '+' | '-' | '*' | '/' | '%';

const TWO_CHAR: ReadonlySet<string> = new Set(['!=', '<>', '<=', '>=']);
const ONE_CHAR: ReadonlySet<string> = new Set(['(', ')', ',', '=', '<', '>', '+', '-', '*', '/', '%']);

function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\r' || c === '\n';
}

function isWordChar(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c === '_';
}

function isDigit(c: string): boolean {
  return c >= '0' && c <= '9';
}

/**
 * The same string as one flat, internalised string: a property key is stored that way, where a
 * slice of the source would stay a view into the whole expression that every comparison unpacks.
 */
function flat(value: string): string {
  return Object.keys({ [value]: true })[0] ?? value;
}

/** How a token or the end of input is named in a parse error message. */
export function describeToken(token: Token): string {
  if (token.kind === 'eof') return 'end of input';
  return token.kind === 'string' ? token.text : `'${token.text}'`;
}

/**
 * Splits an expression into tokens. String literals follow spec 2.2: delimited by `'` or `"`; inside,
 * a backslash followed by the delimiter stands for the delimiter. Every other backslash is kept as
 * written, so `'a\_b'` is the three characters `a\_b`, which is what lets a LIKE pattern escape its
 * wildcards. A backslash always pairs with the character after it, so `'a\\'` ends after `\\`.
 */
export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  const n = source.length;
  let i = 0;
  while (i < n) {
    const c = source.charAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    const start = i;
    if (c === "'" || c === '"') {
      // The value is assembled from slices of the source, so that it is a flat string and not a
      // rope of single characters that every comparison would have to walk.
      let value = '';
      i++;
      let segment = i;
      let closed = false;
      while (i < n) {
        const d = source.charAt(i);
        if (d === '\\' && i + 1 < n) {
          if (source.charAt(i + 1) === c) {
            value += source.slice(segment, i);
            segment = i + 1;
          }
          i += 2;
          continue;
        }
        if (d === c) {
          value += source.slice(segment, i);
          closed = true;
          i++;
          break;
        }
        i++;
      }
      if (!closed) throw new CesqlParseError(`closing ${c} of the string literal started at position ${start}`, n, 'end of input');
      tokens.push({ kind: 'string', value: flat(value), text: source.slice(start, i), pos: start, end: i });
      continue;
    }
    if (isWordChar(c)) {
      while (i < n && isWordChar(source.charAt(i))) i++;
      const text = source.slice(start, i);
      let allDigits = true;
      for (let k = 0; k < text.length && allDigits; k++) allDigits = isDigit(text.charAt(k));
      if (allDigits) tokens.push({ kind: 'integer', text, pos: start, end: i });
      else if (source.charAt(i) === '.') {
        // a word directly followed by a dot: a dotted path (data-path.ts; the parser checks its root and limits)
        const segments: string[] = [];
        while (source.charAt(i) === '.') {
          const from = ++i;
          while (i < n && isWordChar(source.charAt(i))) i++;
          if (i === from) {
            const found = i < n ? `'${source.charAt(i)}'` : 'end of input';
            throw new CesqlParseError("a member name (letters, digits and _) after '.'", i, found);
          }
          segments.push(source.slice(from, i));
        }
        tokens.push({ kind: 'path', text: source.slice(start, i), root: text, segments, pos: start, end: i });
      } else tokens.push({ kind: 'word', text, upper: text.toUpperCase(), pos: start, end: i });
      continue;
    }
    const two = source.slice(i, i + 2);
    if (TWO_CHAR.has(two)) {
      tokens.push({ kind: 'punct', text: two as Punct, pos: start, end: i + 2 });
      i += 2;
      continue;
    }
    if (ONE_CHAR.has(c)) {
      tokens.push({ kind: 'punct', text: c as Punct, pos: start, end: i + 1 });
      i++;
      continue;
    }
    throw new CesqlParseError('an operator, literal, identifier or function', start, `'${c}'`);
  }
  tokens.push({ kind: 'eof', text: '', pos: n, end: n });
  return tokens;
}
