/**
 * CloudEvents' Kafka protocol binding, both modes: binary (attributes in `ce_` headers, data in the value) and
 * structured (the whole event as JSON, `content-type: application/cloudevents+json`). Written here rather than
 * taken from the CloudEvents SDK because the SDK's binding turns the record key into a Buffer `partitionkey`
 * and rejects structured events without `time`; validation is platform/events/cloudevent.ts.
 */
import { isUtf8 } from 'node:buffer';
import type { IHeaders } from 'kafkajs';
import { assertCloudEvent, dataMember, InvalidCloudEventError, isJsonContentType, type CloudEventJson } from './cloudevent.ts';
import { oneLine, withJsonData, withMember } from './event-text.ts';
import type { InboundEvent, RawRecord, SourcePosition } from './inbound.ts';

export function headersToStrings(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    const v = Array.isArray(value) ? value[value.length - 1] : value;
    if (v !== undefined) out[name.toLowerCase()] = typeof v === 'string' ? v : v.toString('utf8');
  }
  return out;
}

function isStructured(record: RawRecord): boolean {
  const ct = record.headers['content-type'];
  if (ct) return ct.toLowerCase().startsWith('application/cloudevents');
  // a JSON object that carries specversion is taken as a structured CloudEvent without its content-type header
  return record.value?.[0] === 0x7b && record.value.includes('"specversion"');
}

function isCloudEventRecord(record: RawRecord): boolean {
  return record.headers['ce_specversion'] !== undefined || isStructured(record);
}

/** Decodes a record; a record that is no CloudEvent at all comes back with neither `event` nor `error`. */
export function decodeKafkaRecord(record: RawRecord, position?: SourcePosition): InboundEvent {
  let out: InboundEvent;
  if (!isCloudEventRecord(record)) out = { record };
  else {
    try {
      out = (record.headers['ce_specversion'] === undefined && structuredAsWritten(record)) || (toCloudEvent(record) as InboundEvent);
    } catch (err) {
      const reason = err instanceof InvalidCloudEventError ? err.message : `not valid JSON (${(err as Error).message})`;
      out = { error: `invalid CloudEvent: ${reason}` };
    }
    out.record = record;
  }
  if (position) out.position = position;
  return out;
}

/**
 * A structured record stored as it came: its value is the stored text (`bytes`), and the text `json` is made
 * from it only when something asks (a replay's mark, a transform). The route appends the bytes of most events.
 */
class StructuredRecord implements InboundEvent {
  #json: string | undefined;
  record?: RawRecord;
  position?: SourcePosition;
  constructor(
    readonly event: CloudEventJson,
    readonly bytes: Buffer,
  ) {}
  get json(): string {
    return (this.#json ??= this.bytes.toString('utf8'));
  }
}

/**
 * The common structured record: valid UTF-8 holding a JSON object on one line, without outer whitespace, whose
 * key (if any) adds no `partitionkey`, so that its bytes are the stored text as they are. Null for any other
 * record (toCloudEvent decodes those). Its text is not kept: a source batch holds a thousand or more decoded
 * records until it is appended, and their texts, kept that long, were copied and promoted by the collector.
 */
function structuredAsWritten(record: RawRecord): InboundEvent | null {
  const value = record.value;
  if (value === null || value.length < 2 || value[0] !== 0x7b || value[value.length - 1] !== 0x7d) return null;
  // a line break in the text is one in the bytes (UTF-8 writes CR and LF as themselves only): found there by memchr
  if (value.indexOf(0x0a) >= 0 || value.indexOf(0x0d) >= 0 || !isUtf8(value)) return null;
  const event: unknown = JSON.parse(value.toString('utf8'));
  if (typeof event !== 'object' || event === null || ((event as CloudEventJson).partitionkey === undefined && record.key !== null && record.key.length > 0)) return null;
  assertCloudEvent(event);
  return new StructuredRecord(event, value);
}

/**
 * The event and, when it can be stored as text, its structured JSON: a structured record's own text (on one line,
 * with `partitionkey` added at the end when the key supplies it), or a binary record's attributes followed by
 * its JSON value's own text. Numbers in that text stay as the producer wrote them (platform/events/event-text.ts).
 * When that text is the record's value as it is, `bytes` is the value.
 */
function toCloudEvent(record: RawRecord): { event: CloudEventJson; json?: string; bytes?: Buffer } {
  let event: Record<string, unknown>;
  let text: string | undefined;
  let bytes: Buffer | undefined;
  if (record.headers['ce_specversion'] !== undefined) {
    event = {};
    for (const [name, value] of Object.entries(record.headers)) if (name.startsWith('ce_')) event[name.slice(3)] = value;
    const ct = record.headers['content-type'];
    if (ct) event['datacontenttype'] = ct;
    Object.assign(event, dataMember(record.value, ct));
    if (event['data'] !== undefined && isJsonContentType(ct)) text = withJsonData(event, record.value!.toString('utf8'));
  } else {
    const value = record.value!;
    const whole = value.toString('utf8');
    event = JSON.parse(whole) as Record<string, unknown>;
    // a line break in the text is one in the bytes (UTF-8 writes CR and LF as themselves only): found there by memchr
    text = value.indexOf(0x0a) < 0 && value.indexOf(0x0d) < 0 ? whole.trim() : oneLine(whole);
    // the same bytes as the text: nothing trimmed or compacted, and no invalid UTF-8 that decoding replaced
    if (text === whole && isUtf8(value)) bytes = value;
  }
  if (event['partitionkey'] === undefined && record.key !== null && record.key.length > 0) {
    event['partitionkey'] = record.key.toString('utf8');
    if (text !== undefined) text = withMember(text, 'partitionkey', event['partitionkey']); // the stored event must carry it
    bytes = undefined;
  }
  assertCloudEvent(event);
  return text === undefined ? { event } : bytes === undefined ? { event, json: text } : { event, json: text, bytes };
}

/** Encodes a CloudEvent as a binary-mode Kafka record keyed by its `partitionkey`. */
export function encodeBinary(event: CloudEventJson): { key: string | null; value: Buffer | null; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  let value: Buffer | null = null;
  for (const [name, v] of Object.entries(event)) {
    if (name === 'data' || name === 'data_base64' || v === undefined) continue;
    if (name === 'datacontenttype') headers['content-type'] = String(v);
    else headers[`ce_${name}`] = String(v);
  }
  if (event.data_base64 !== undefined) value = Buffer.from(event.data_base64, 'base64');
  else if (event.data !== undefined) {
    const json = event.datacontenttype === undefined || /json/i.test(event.datacontenttype);
    value = Buffer.from(json ? JSON.stringify(event.data) : String(event.data));
    if (event.datacontenttype === undefined) headers['content-type'] = 'application/json';
  }
  return { key: event.partitionkey ?? null, value, headers };
}

/**
 * Encodes a CloudEvent as a structured-mode Kafka record: `json` (the event's own text, as ingest received it)
 * when given, else the event serialised.
 */
export function encodeStructured(event: CloudEventJson, json?: string): { key: string | null; value: Buffer; headers: Record<string, string> } {
  return {
    key: event.partitionkey ?? null,
    value: Buffer.from(json ?? JSON.stringify(event)),
    headers: { 'content-type': 'application/cloudevents+json; charset=utf-8' },
  };
}
