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

/** Checks `value` is a CloudEvent in structured JSON form; throws InvalidCloudEventError naming the field. */
export function assertCloudEvent(value: unknown, opts: { requireTenant?: boolean } = {}): asserts value is CloudEventJson {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidCloudEventError('event', 'must be a JSON object');
  if (!validateSchema(value)) {
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
