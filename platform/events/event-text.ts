/**
 * A CloudEvent's JSON text, kept as it was received. JavaScript parses every JSON number into a double, so an
 * event that is parsed and serialised again loses digits (12345678901234567890 becomes 12345678901234567000)
 * and, for names that look like integers, its member order. The platform parses events to validate and route
 * them, and writes and stores the text it was given: these helpers cut that text into events, put it on one
 * line (SSE messages and NDJSON files hold one event per line) and add a member at the end, never touching a
 * number or a member's place.
 *
 * The text is tokenised by jsonc-parser (the scanner and parser of VS Code's JSON support): its tokens and
 * node offsets point into the original text, so every token is copied as written. A lossless parser
 * (lossless-json, json-bigint) would keep the digits but rebuild objects, and a JS object puts integer-like
 * names ("10", "2") first whatever their place in the text. Callers validate the text with JSON.parse first:
 * these helpers take strict JSON.
 */
import jsonc from 'jsonc-parser';

const EOF = 17; // jsonc.SyntaxKind.EOF (a const enum the module does not export under isolatedModules)

/** The JSON text without insignificant whitespace: every token (strings, numbers, names) copied as written. */
export function compactJson(text: string): string {
  const scanner = jsonc.createScanner(text, true);
  let out = '';
  for (let kind = scanner.scan(); kind !== EOF; kind = scanner.scan()) {
    const at = scanner.getTokenOffset();
    out += text.slice(at, at + scanner.getTokenLength());
  }
  return out;
}

/** The text on one line: as it is when it holds no line break (outer whitespace trimmed), else compacted. */
export function oneLine(text: string): string {
  return /[\r\n]/.test(text) ? compactJson(text) : text.trim();
}

/**
 * How deep the text of an event may nest. jsonc-parser's parser recurses once per level, so a body nested some
 * ten thousand levels deep, which JSON.parse accepts, would overflow the stack; no event needs a fraction of this.
 */
export const MAX_JSON_DEPTH = 512;

/** The text nests deeper than MAX_JSON_DEPTH. */
export class JsonTooDeepError extends Error {
  constructor() {
    super(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
    this.name = 'JsonTooDeepError';
  }
}

export interface ValueText {
  /** the value's own text, on one line (oneLine) */
  text: string;
  /** the first member name the value (an object) repeats at its top level */
  repeated?: string;
}

/**
 * One pass over strict JSON: the text of the value (`of: 'value'`) or of each element of the array (`of:
 * 'elements'`), with the first member name each repeats at its top level (JSON.parse keeps the last value of a
 * repeated name, other parsers the first). Throws JsonTooDeepError past MAX_JSON_DEPTH.
 */
export function valueTexts(text: string, of: 'value' | 'elements'): ValueText[] {
  const level = of === 'value' ? 0 : 1;
  const out: ValueText[] = [];
  let depth = 0;
  let start = 0;
  let names = new Set<string>();
  let repeated: string | undefined;
  const push = (end: number) => out.push({ text: oneLine(text.slice(start, end)), ...(repeated !== undefined ? { repeated } : {}) });
  const begin = (offset: number) => {
    if (depth >= MAX_JSON_DEPTH) throw new JsonTooDeepError(); // ends the parse before it recurses further
    if (depth++ !== level) return;
    start = offset;
    names = new Set();
    repeated = undefined;
  };
  const end = (offset: number, length: number) => {
    if (--depth === level) push(offset + length);
  };
  jsonc.visit(text, {
    onObjectBegin: begin,
    onArrayBegin: begin,
    onObjectEnd: end,
    onArrayEnd: end,
    onObjectProperty: (name) => {
      if (depth !== level + 1) return;
      if (names.has(name)) repeated ??= name;
      names.add(name);
    },
    onLiteralValue: (_value, offset, length) => {
      if (depth !== level) return;
      start = offset;
      repeated = undefined;
      push(offset + length);
    },
  });
  return out;
}

/** A JSON object's text on one line (oneLine) with `name: value` added as its last member; the rest stays as it was. */
export function withMember(compactObject: string, name: string, value: unknown): string {
  return withRawMember(compactObject, name, JSON.stringify(value));
}

/**
 * The structured text of an event whose attributes are strings (the binary modes: headers) and whose `data`
 * is the JSON text of a payload: the attributes serialised, then `"data":` and the payload's own text.
 */
export function withJsonData(attributes: Record<string, unknown>, dataText: string): string {
  const rest = { ...attributes };
  delete rest['data'];
  delete rest['data_base64'];
  return withRawMember(JSON.stringify(rest), 'data', oneLine(dataText));
}

function withRawMember(compactObject: string, name: string, rawValue: string): string {
  if (!compactObject.endsWith('}')) throw new Error('not a JSON object on one line');
  const body = compactObject.slice(0, -1);
  return `${body}${body.trimEnd().endsWith('{') ? '' : ','}${JSON.stringify(name)}:${rawValue}}`;
}
