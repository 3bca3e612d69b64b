/**
 * Backward compatibility of two versions of a JSON Schema registered for one CloudEvent type.
 *
 * The rule: every event `data` valid under the previous version stays valid under the new one (the new
 * version may only widen), and no property the previous version required disappears from the required
 * list (subscribers written against it rely on it). A pure function of the two schemas: no I/O, no ajv.
 *
 * Refused, each reported with the schema path and the reason:
 * - `type` narrowed (a type removed; `integer` -> `number` widens, `number` -> `integer` narrows), or added
 * - `enum` / `const`: a value removed, or added where any value was allowed
 * - a property newly required; a required property no longer required
 * - a property removed while the object was closed in the new version (`additionalProperties: false`)
 * - `additionalProperties` closed (true -> false) or given a narrower schema
 * - bounds tightened: minimum/maximum (and the exclusive forms), minLength/maxLength, minItems/maxItems,
 *   minProperties/maxProperties, multipleOf changed (unless a divisor of the previous), pattern or format
 *   added or changed, uniqueItems added
 * - any other keyword (`$ref`, `allOf`, `anyOf`, `oneOf`, `not`, `if`, `patternProperties`, ...) changed:
 *   compatibility is not proven, so the change is refused (unchanged, they are fine)
 * Recurses into `properties`, `items` (schema form), `prefixItems` and `additionalProperties`.
 * Allowed: adding an optional property, loosening any bound, adding enum values, removing a constraint.
 * Annotations (`title`, `description`, `examples`, `default`, `$comment`, `deprecated`, ...) never matter.
 */

export type JsonSchema = boolean | { [keyword: string]: unknown };

export interface Incompatibility {
  /** Where in the new schema, as a dotted path from its root (`properties.amount.type`); `` is the root. */
  path: string;
  reason: string;
}

const ANNOTATIONS = new Set([
  'title', 'description', 'examples', 'default', '$comment', 'deprecated', 'readOnly', 'writeOnly', '$schema', '$id',
  'contentMediaType', 'contentEncoding',
]);

/** Keywords this checker reasons about; any other keyword must be unchanged. */
const HANDLED = new Set([
  'type', 'enum', 'const', 'properties', 'required', 'additionalProperties', 'items', 'prefixItems',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf', 'minLength', 'maxLength', 'pattern',
  'format', 'minItems', 'maxItems', 'uniqueItems', 'minProperties', 'maxProperties',
]);

const JSON_TYPES = ['null', 'boolean', 'object', 'array', 'number', 'integer', 'string'] as const;

type SchemaObject = { [keyword: string]: unknown };

function isObject(v: unknown): v is SchemaObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => deepEqual(v, bb[i]));
  }
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual((a as SchemaObject)[k], (b as SchemaObject)[k]));
}

const join = (path: string, part: string) => (path ? `${path}.${part}` : part);
const show = (v: unknown) => JSON.stringify(v);

/** The types a schema admits; null means any type (no `type` keyword). */
function typesOf(s: SchemaObject): Set<string> | null {
  const t = s['type'];
  if (t === undefined) return null;
  return new Set(Array.isArray(t) ? (t as string[]) : [t as string]);
}

function admitsType(types: Set<string> | null, type: string): boolean {
  if (types === null) return true;
  return types.has(type) || (type === 'integer' && types.has('number'));
}

/** The values a schema is limited to by `const`/`enum`; null means no such limit. */
function valuesOf(s: SchemaObject): unknown[] | null {
  if ('const' in s) return [s['const']];
  if (Array.isArray(s['enum'])) return s['enum'] as unknown[];
  return null;
}

function requiredOf(s: SchemaObject): string[] {
  return Array.isArray(s['required']) ? (s['required'] as string[]) : [];
}

function propertiesOf(s: SchemaObject): Record<string, JsonSchema> {
  return isObject(s['properties']) ? (s['properties'] as Record<string, JsonSchema>) : {};
}

/** `additionalProperties` as a schema (absent = true). */
function additionalOf(s: SchemaObject): JsonSchema {
  const a = s['additionalProperties'];
  return a === undefined ? true : (a as JsonSchema);
}

const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

/** The lower bound as [value, exclusive]; draft-04 boolean `exclusiveMinimum` is read too. */
function lowerBound(s: SchemaObject): [number, boolean] | undefined {
  const min = num(s['minimum']);
  const exMin = num(s['exclusiveMinimum']);
  if (exMin !== undefined && (min === undefined || exMin >= min)) return [exMin, true];
  if (min !== undefined) return [min, s['exclusiveMinimum'] === true];
  return undefined;
}

function upperBound(s: SchemaObject): [number, boolean] | undefined {
  const max = num(s['maximum']);
  const exMax = num(s['exclusiveMaximum']);
  if (exMax !== undefined && (max === undefined || exMax <= max)) return [exMax, true];
  if (max !== undefined) return [max, s['exclusiveMaximum'] === true];
  return undefined;
}

function isMultiple(value: number, divisor: number): boolean {
  const q = value / divisor;
  return Math.abs(q - Math.round(q)) < 1e-9;
}

/**
 * The reasons `next` is not backward compatible with `prev`; empty when it is.
 * Both are assumed to be valid JSON Schemas (checked against the meta-schema before).
 */
export function checkBackwardCompatible(prev: JsonSchema, next: JsonSchema): Incompatibility[] {
  const out: Incompatibility[] = [];
  compare(prev, next, '', out);
  return out;
}

function compare(prev: JsonSchema, next: JsonSchema, path: string, out: Incompatibility[]): void {
  if (prev === false || next === true) return; // nothing was valid before, or everything is valid now
  if (next === false) {
    out.push({ path, reason: 'the new version admits no value here' });
    return;
  }
  const p: SchemaObject = prev === true ? {} : prev;
  const n: SchemaObject = next;
  const reasons = (reason: string, at = path) => out.push({ path: at, reason });

  // keywords this checker does not reason about must be unchanged
  const keywords = new Set([...Object.keys(p), ...Object.keys(n)]);
  for (const k of keywords) {
    if (ANNOTATIONS.has(k) || HANDLED.has(k)) continue;
    if (!deepEqual(p[k], n[k])) reasons(`'${k}' changed; compatibility of that keyword cannot be proven`, join(path, k));
  }

  // type
  const pt = typesOf(p);
  const nt = typesOf(n);
  if (nt !== null) {
    const lost = (pt === null ? [...JSON_TYPES] : [...pt]).filter((t) => !admitsType(nt, t));
    if (lost.length) {
      const from = pt === null ? 'any type' : [...pt].join('|');
      reasons(`type narrowed from ${from} to ${[...nt].join('|')}`, join(path, 'type'));
    }
  }

  // enum / const
  const pv = valuesOf(p);
  const nv = valuesOf(n);
  if (nv !== null) {
    if (pv === null) reasons(`values limited to ${show(nv)} where any value was allowed`, join(path, 'const' in n ? 'const' : 'enum'));
    else {
      const removed = pv.filter((v) => !nv.some((w) => deepEqual(v, w)));
      if (removed.length) reasons(`value${removed.length > 1 ? 's' : ''} ${removed.map(show).join(', ')} removed`, join(path, 'const' in n ? 'const' : 'enum'));
    }
  }

  // numbers
  const pl = lowerBound(p);
  const nl = lowerBound(n);
  if (nl && (!pl || nl[0] > pl[0] || (nl[0] === pl[0] && nl[1] && !pl[1])))
    reasons(`lower bound raised to ${nl[1] ? '>' : '>='} ${nl[0]}${pl ? ` (was ${pl[1] ? '>' : '>='} ${pl[0]})` : ''}`, join(path, nl[1] ? 'exclusiveMinimum' : 'minimum'));
  const pu = upperBound(p);
  const nu = upperBound(n);
  if (nu && (!pu || nu[0] < pu[0] || (nu[0] === pu[0] && nu[1] && !pu[1])))
    reasons(`upper bound lowered to ${nu[1] ? '<' : '<='} ${nu[0]}${pu ? ` (was ${pu[1] ? '<' : '<='} ${pu[0]})` : ''}`, join(path, nu[1] ? 'exclusiveMaximum' : 'maximum'));
  const pm = num(p['multipleOf']);
  const nm = num(n['multipleOf']);
  if (nm !== undefined && (pm === undefined || !isMultiple(pm, nm)))
    reasons(`multipleOf ${nm} ${pm === undefined ? 'added' : `does not divide the previous ${pm}`}`, join(path, 'multipleOf'));

  // lengths and counts: a minimum may only fall, a maximum only rise
  for (const [min, max] of [['minLength', 'maxLength'], ['minItems', 'maxItems'], ['minProperties', 'maxProperties']] as const) {
    const pmin = num(p[min]) ?? 0;
    const nmin = num(n[min]) ?? 0;
    if (nmin > pmin) reasons(`${min} raised from ${pmin} to ${nmin}`, join(path, min));
    const pmax = num(p[max]) ?? Infinity;
    const nmax = num(n[max]) ?? Infinity;
    if (nmax < pmax) reasons(`${max} lowered ${pmax === Infinity ? '' : `from ${pmax} `}to ${nmax}`, join(path, max));
  }
  for (const k of ['pattern', 'format'] as const) {
    if (n[k] !== undefined && n[k] !== p[k]) reasons(`${k} ${p[k] === undefined ? 'added' : `changed from ${show(p[k])}`} to ${show(n[k])}`, join(path, k));
  }
  if (n['uniqueItems'] === true && p['uniqueItems'] !== true) reasons('uniqueItems added', join(path, 'uniqueItems'));

  // objects
  const preq = requiredOf(p);
  const nreq = requiredOf(n);
  for (const name of nreq) if (!preq.includes(name)) reasons(`property '${name}' is newly required`, join(join(path, 'properties'), name));
  for (const name of preq) if (!nreq.includes(name)) reasons(`property '${name}' was required and no longer is`, join(join(path, 'properties'), name));

  const pprops = propertiesOf(p);
  const nprops = propertiesOf(n);
  const padd = additionalOf(p);
  const nadd = additionalOf(n);
  for (const name of new Set([...Object.keys(pprops), ...Object.keys(nprops)])) {
    const at = join(join(path, 'properties'), name);
    const before = pprops[name] ?? padd; // an undeclared property was governed by additionalProperties
    const after = nprops[name];
    if (after === undefined) {
      if (nadd === false) reasons(`property '${name}' removed from a closed object (additionalProperties: false)`, at);
      else compare(before, nadd, at, out);
      continue;
    }
    if (pprops[name] === undefined && padd === true) continue; // a new optional property on an open object
    compare(before, after, at, out);
  }
  if (padd !== false) {
    if (nadd === false) reasons('additionalProperties closed (was open)', join(path, 'additionalProperties'));
    else compare(padd, nadd, join(path, 'additionalProperties'), out);
  }

  // arrays
  const pitems = p['items'];
  const nitems = n['items'];
  const pprefix = Array.isArray(p['prefixItems']) ? (p['prefixItems'] as JsonSchema[]) : [];
  const nprefix = Array.isArray(n['prefixItems']) ? (n['prefixItems'] as JsonSchema[]) : [];
  const itemsSchema = (v: unknown): JsonSchema => (v === undefined || Array.isArray(v) ? true : (v as JsonSchema));
  if (Array.isArray(pitems) || Array.isArray(nitems)) {
    if (!deepEqual(pitems, nitems)) reasons("tuple-form 'items' changed; compatibility cannot be proven", join(path, 'items'));
  } else {
    const len = Math.max(pprefix.length, nprefix.length);
    for (let i = 0; i < len; i++) {
      compare(pprefix[i] ?? itemsSchema(pitems), nprefix[i] ?? itemsSchema(nitems), `${join(path, 'prefixItems')}[${i}]`, out);
    }
    compare(itemsSchema(pitems), itemsSchema(nitems), join(path, 'items'), out);
  }
}
