/**
 * Per-topic mappings that adapt JSON source records which are not CloudEvents. Configured as JSON in
 * PIONEER_TOPIC_MAPPINGS: { "<topic>": { "tenant": "$.account.tenant", "type": "payment.legacy", ... } }.
 * A value starting with `$.` is a path into the record's JSON; anything else is a literal.
 * Shared by every function that derives subscription events from source records (route, export's replays).
 */
import { z } from 'zod';
import type { CloudEventJson } from './cloudevent.ts';
import type { RawRecord, SourcePosition } from './inbound.ts';
import { MalformedRecordError } from '../errors.ts';

const field = z.string().min(1);
export const topicMappingSchema = z.strictObject({
  tenant: field,
  type: field,
  id: field.optional(),
  source: field.optional(),
  subject: field.optional(),
  time: field.optional(),
  partitionkey: field.optional(),
});
export const topicMappingsSchema = z.record(z.string().min(1), topicMappingSchema);
export type TopicMapping = z.infer<typeof topicMappingSchema>;
export type TopicMappings = z.infer<typeof topicMappingsSchema>;

/** The PIONEER_TOPIC_MAPPINGS variable: JSON text parsed and checked against topicMappingsSchema. */
export function topicMappingsEnv() {
  return z
    .string()
    .default('{}')
    .transform((v, ctx) => {
      try {
        return JSON.parse(v) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'not valid JSON' });
        return z.NEVER;
      }
    })
    .pipe(topicMappingsSchema);
}

function resolve(spec: string, doc: unknown): unknown {
  if (!spec.startsWith('$.')) return spec;
  let cur: unknown = doc;
  for (const part of spec.slice(2).split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function str(spec: string | undefined, doc: unknown, name: string, required: boolean): string | undefined {
  if (spec === undefined) return undefined;
  const v = resolve(spec, doc);
  if (v === undefined || v === null || v === '') {
    if (required) throw new MalformedRecordError(`mapping: ${name} (${spec}) is missing in the record`);
    return undefined;
  }
  if (typeof v === 'object') throw new MalformedRecordError(`mapping: ${name} (${spec}) is not a scalar`);
  return String(v);
}

export function applyMapping(mapping: TopicMapping, record: RawRecord, position: SourcePosition | undefined, topic: string): CloudEventJson {
  let doc: unknown;
  try {
    doc = JSON.parse(record.value?.toString('utf8') ?? '');
  } catch {
    throw new MalformedRecordError('not a CloudEvent, and not JSON that the topic mapping could adapt');
  }
  const event: CloudEventJson = {
    specversion: '1.0',
    id: str(mapping.id, doc, 'id', true) ?? `${topic}-${position?.partition ?? 'x'}-${position?.offset ?? Date.now()}`,
    source: str(mapping.source, doc, 'source', true) ?? `kafka:${topic}`,
    type: str(mapping.type, doc, 'type', true)!,
    tenantid: str(mapping.tenant, doc, 'tenant', true)!,
    datacontenttype: 'application/json',
    data: doc,
  };
  const subject = str(mapping.subject, doc, 'subject', false);
  if (subject) event.subject = subject;
  const time = str(mapping.time, doc, 'time', false);
  if (time) {
    const d = new Date(/^\d+$/.test(time) ? Number(time) : time);
    if (Number.isNaN(d.getTime())) throw new MalformedRecordError(`mapping: time (${mapping.time}) is not a time: ${time}`);
    event.time = d.toISOString();
  }
  const key = str(mapping.partitionkey, doc, 'partitionkey', false) ?? record.key?.toString('utf8');
  if (key) event.partitionkey = key;
  return event;
}
