/**
 * Tenant JSON Schemas for CloudEvent `data`: checked against their dialect's meta-schema (draft-07 by default,
 * 2019-09 and 2020-12 when `$schema` names them), compiled with ajv (+ formats), and validation failures turned
 * into field paths a client can act on (`data.items[0].amount`).
 *
 * Schemas come from tenants, so compiled schemas are never registered by `$id` on the shared ajv instances
 * (two tenants may use the same `$id`), and remote `$ref`s are not fetched: a reference must resolve inside the
 * schema itself.
 *
 * Validation sees `data` as JSON.parse made it, numbers as doubles: a 20-digit integer is checked as its nearest
 * double (`minimum`, `multipleOf` and `maximum` near 2^53 and beyond are approximate). What ingest writes is the
 * event's own text, never this parsed value (functions/ingest/received.ts).
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { ProblemField } from '../errors.ts';
import type { JsonSchema } from './compat.ts';

const addFormats = addFormatsModule as unknown as <T>(ajv: T) => T;
const options = { strict: false, allErrors: true, addUsedSchema: false, logger: false as const };

const DIALECTS = {
  'http://json-schema.org/draft-07/schema': () => addFormats(new Ajv(options)),
  'https://json-schema.org/draft/2019-09/schema': () => addFormats(new Ajv2019(options)),
  'https://json-schema.org/draft/2020-12/schema': () => addFormats(new Ajv2020(options)),
} as const;
type Dialect = keyof typeof DIALECTS;
const instances = new Map<Dialect, Ajv>();

function ajvFor(dialect: Dialect): Ajv {
  let ajv = instances.get(dialect);
  if (!ajv) instances.set(dialect, (ajv = DIALECTS[dialect]() as Ajv));
  return ajv;
}

export class InvalidSchemaError extends Error {
  readonly errors: ProblemField[];
  constructor(errors: ProblemField[]) {
    super(`${errors[0]!.field}: ${errors[0]!.message}`);
    this.name = 'InvalidSchemaError';
    this.errors = errors;
  }
}

/** `/properties/items/0/x` -> `properties.items[0].x` under `root`. */
export function pointerToPath(pointer: string, root = ''): string {
  let out = root;
  if (pointer === '') return out;
  for (const raw of pointer.slice(1).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(part) ? `[${part}]` : out ? `.${part}` : part;
  }
  return out;
}

function dialectOf(schema: JsonSchema): Dialect {
  if (typeof schema === 'boolean' || schema['$schema'] === undefined) return 'http://json-schema.org/draft-07/schema';
  const declared = String(schema['$schema']).replace(/#$/, '');
  if (declared in DIALECTS) return declared as Dialect;
  throw new InvalidSchemaError([{ field: '$schema', message: `unsupported dialect; use one of ${Object.keys(DIALECTS).join(', ')} (or leave it out for draft-07)` }]);
}

/** Describes ajv errors as fields under `root` (at most `max`). */
export function describeErrors(errors: ErrorObject[], root: string, max = 10): ProblemField[] {
  const out: ProblemField[] = [];
  for (const e of errors) {
    let path = pointerToPath(e.instancePath, root);
    let message = e.message ?? 'is invalid';
    if (e.keyword === 'required') {
      path = pointerToPath(`${e.instancePath}/${String(e.params['missingProperty'])}`, root);
      message = 'is required';
    } else if (e.keyword === 'additionalProperties') {
      path = pointerToPath(`${e.instancePath}/${String(e.params['additionalProperty'])}`, root);
      message = 'is not allowed (additionalProperties: false)';
    } else if (e.keyword === 'enum') {
      message = `must be one of ${JSON.stringify(e.params['allowedValues'])}`;
    }
    if (out.some((f) => f.field === (path || root || 'body') && f.message === message)) continue;
    out.push({ field: path || root || 'body', message });
    if (out.length >= max) break;
  }
  return out;
}

/**
 * Checks `value` is a JSON Schema of a supported dialect and compiles it. Throws InvalidSchemaError naming the
 * offending keyword path (`properties.amount.type`).
 */
export function compileSchema(value: unknown): ValidateFunction {
  if (typeof value !== 'boolean' && (typeof value !== 'object' || value === null || Array.isArray(value)))
    throw new InvalidSchemaError([{ field: 'body', message: 'a JSON Schema must be an object or a boolean' }]);
  const schema = value as JsonSchema;
  const ajv = ajvFor(dialectOf(schema));
  if (!ajv.validateSchema(schema)) throw new InvalidSchemaError(describeErrors(ajv.errors ?? [], ''));
  try {
    return ajv.compile(schema);
  } catch (err) {
    throw new InvalidSchemaError([{ field: 'body', message: `does not compile: ${(err as Error).message}` }]);
  } finally {
    // ajv caches compiled object schemas by identity; a boolean schema is not cached (and removeSchema refuses it)
    if (typeof schema === 'object') ajv.removeSchema(schema as object);
  }
}
