/**
 * CloudEvents 1.0 in structured JSON form, the one shape events have inside Pioneer (Redis Streams, SSE,
 * webhooks, exports). Validation is an ajv-compiled JSON Schema of the spec's attribute rules, so every
 * refusal names the attribute; `tenantid` is required on every source event.
 */
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';

export type CloudEventJson = {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject?: string;
  time?: string;
  datacontenttype?: string;
  dataschema?: string;
  data?: unknown;
  data_base64?: string;
  tenantid?: string;
  partitionkey?: string;
  [extension: string]: unknown;
};

export const CLOUDEVENT_SCHEMA = {
  type: 'object',
  required: ['specversion', 'id', 'source', 'type'],
  properties: {
    specversion: { const: '1.0' },
    id: { type: 'string', minLength: 1 },
    source: { type: 'string', minLength: 1, format: 'uri-reference' },
    type: { type: 'string', minLength: 1 },
    subject: { type: 'string', minLength: 1 },
    time: { type: 'string', format: 'date-time' },
    datacontenttype: { type: 'string', minLength: 1 },
    dataschema: { type: 'string', format: 'uri' },
    data: {},
    data_base64: { type: 'string', contentEncoding: 'base64' },
    tenantid: { type: 'string', minLength: 1, maxLength: 64 },
    partitionkey: { type: 'string', minLength: 1, maxLength: 512 },
  },
  propertyNames: { pattern: '^([a-z0-9]{1,20}|data|data_base64)$' },
  additionalProperties: { type: ['string', 'number', 'boolean'] },
  not: { required: ['data', 'data_base64'] },
} as const;

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = addFormats(new Ajv({ allErrors: false, strict: false }));
const validateSchema = ajv.compile(CLOUDEVENT_SCHEMA);

export class InvalidCloudEventError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'InvalidCloudEventError';
    this.field = field;
  }
}

function describe(error: ErrorObject): { field: string; message: string } {
  if (error.keyword === 'required') return { field: String(error.params['missingProperty']), message: 'is required' };
  if (error.propertyName !== undefined)
    return { field: error.propertyName, message: 'is not a valid attribute name (lowercase letters and digits, at most 20)' };
  if (error.keyword === 'not') return { field: 'data', message: 'data and data_base64 are mutually exclusive' };
  const field = error.instancePath.replace(/^\//, '').replace(/\//g, '.') || 'event';
  if (error.keyword === 'const') return { field, message: "must be '1.0'" };
  return { field, message: error.message ?? 'is invalid' };
}

const isUriReference = ajv.formats['uri-reference'] as RegExp;
const isDateTime = (ajv.formats['date-time'] as { validate: (s: string) => boolean }).validate;

/** Sources met lately that are URI references (few sources send most events): the format's regex is the costly check. */
const knownSources = new Set<string>();
const KNOWN_SOURCES_MAX = 1024;

/** A string of at least one character (as ajv counts them: code points, of which there is one when there is a code unit). */
const nonEmpty = (v: unknown): boolean => typeof v === 'string' && v.length > 0;

/** [a-z0-9]{1,20}, CLOUDEVENT_SCHEMA's attribute names, or data / data_base64 (which this check leaves to the schema). */
function isPlainAttributeName(name: string): boolean {
  const n = name.length;
  if (n === 0 || n > 20) return false;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39))) return false;
  }
  return true;
}

/**
 * True only for an event CLOUDEVENT_SCHEMA accepts, checked member by member without the compiled schema's
 * generic steps (a regex per member name, the uri-reference regex per source): the route checks every source
 * event. False says nothing: the schema then decides, and names the fault. Uncommon members (data_base64,
 * dataschema, long ids of tenants or keys as code points count them) are left to the schema.
 */
function plainlyValid(e: Record<string, unknown>): boolean {
  if (e['specversion'] !== '1.0' || !nonEmpty(e['id']) || !nonEmpty(e['type'])) return false;
  const source = e['source'];
  if (!nonEmpty(source)) return false;
  if (!knownSources.has(source as string)) {
    if (!isUriReference.test(source as string)) return false;
    if (knownSources.size >= KNOWN_SOURCES_MAX) knownSources.clear();
    knownSources.add(source as string);
  }
  for (const name in e) {
    const v = e[name];
    if (name === 'data') continue;
    if (!isPlainAttributeName(name)) return false;
    switch (name) {
      case 'specversion':
      case 'id':
      case 'source':
      case 'type':
        continue;
      case 'subject':
      case 'datacontenttype':
        if (!nonEmpty(v)) return false;
        continue;
      case 'time':
        if (typeof v !== 'string' || !isDateTime(v)) return false;
        continue;
      case 'tenantid':
        if (!nonEmpty(v) || (v as string).length > 64) return false;
        continue;
      case 'partitionkey':
        if (!nonEmpty(v) || (v as string).length > 512) return false;
        continue;
      case 'dataschema':
        return false;
      default:
        if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') return false;
    }
  }
  return true;
}

/** Checks `value` is a CloudEvent in structured JSON form; throws InvalidCloudEventError naming the field. */
export function assertCloudEvent(value: unknown, opts: { requireTenant?: boolean } = {}): asserts value is CloudEventJson {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidCloudEventError('event', 'must be a JSON object');
  if (!plainlyValid(value as Record<string, unknown>) && !validateSchema(value)) {
    const { field, message } = describe(validateSchema.errors![0]!);
    throw new InvalidCloudEventError(field, message);
  }
  if (opts.requireTenant && (value as CloudEventJson).tenantid === undefined) throw new InvalidCloudEventError('tenantid', 'is required');
}

/** True for JSON media types (`application/json`, `text/json`, `*+json`) and for an absent content type. */
export function isJsonContentType(ct: string | undefined): boolean {
  if (ct === undefined) return true;
  const base = ct.split(';')[0]!.trim().toLowerCase();
  return base === 'application/json' || base === 'text/json' || base.endsWith('+json');
}

/**
 * The `data` member for a payload: parsed JSON for JSON content types, a string for text, else `data_base64`.
 * Throws when a JSON content type carries bytes that are not JSON.
 */
export function dataMember(payload: Buffer | null, contentType: string | undefined): { data?: unknown; data_base64?: string } {
  if (payload === null || payload.length === 0) return {};
  if (isJsonContentType(contentType)) {
    try {
      return { data: JSON.parse(payload.toString('utf8')) };
    } catch {
      throw new InvalidCloudEventError('data', `is not valid JSON for content type ${contentType ?? 'application/json'}`);
    }
  }
  if (contentType!.toLowerCase().startsWith('text/')) return { data: payload.toString('utf8') };
  return { data_base64: payload.toString('base64') };
}
