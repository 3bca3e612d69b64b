/**
 * From a record of a reference topic to what the table keeps (platform/reference/store.ts describes the design):
 * whose record it is, its lookup key, and its data as JSON text, or null for a delete. A record that cannot be
 * kept throws RefusedRecordError with the reason, which the reference function dead-letters.
 *
 *   key      the Kafka record key (as the host gives it; a host that forwards the CloudEvent alone gives it as
 *            `partitionkey`, the Kafka binding's name for it): `<tenantid>/<lookup key>`
 *   delete   a tombstone (a record without a value), or a CloudEvent whose `data` is null or absent
 *   put      a CloudEvent (or a record a PIONEER_TOPIC_MAPPINGS mapping adapts) whose `tenantid` is the key's
 *            tenant, with JSON `data` of at most `maxDataBytes` bytes as JSON text
 */
import { MalformedRecordError } from '../errors.ts';
import type { InboundEvent } from '../events/inbound.ts';
import { sourceEventOf, type SourceDecoding } from '../events/route-decoding.ts';
import { MAX_REFERENCE_KEY_LENGTH, parseReferenceKey } from './names.ts';

export type RefusalReason = 'malformed' | 'tooLarge' | 'unknownTenant' | 'tableFull';

export class RefusedRecordError extends Error {
  constructor(readonly reason: RefusalReason, message: string) {
    super(message);
    this.name = 'RefusedRecordError';
  }
}

export interface ReferenceRecord {
  tenantId: string;
  key: string;
  /** the data as JSON text; null: delete the key's record */
  data: string | null;
}

export function referenceRecordOf(item: InboundEvent, topic: string, opts: SourceDecoding & { maxDataBytes: number }): ReferenceRecord {
  const kafkaKey = item.record?.key?.toString('utf8') ?? (typeof item.event?.partitionkey === 'string' ? item.event.partitionkey : undefined);
  if (kafkaKey === undefined || kafkaKey === '') throw new RefusedRecordError('malformed', 'a reference record needs a Kafka key "<tenantid>/<lookup key>"');
  const named = parseReferenceKey(kafkaKey);
  if (!named) throw new RefusedRecordError('malformed', `key: not "<tenantid>/<lookup key>" with a lookup key of 1 to ${MAX_REFERENCE_KEY_LENGTH} characters`);
  if (item.record && item.record.value === null) return { ...named, data: null };
  let event;
  try {
    event = sourceEventOf(item, topic, opts);
  } catch (err) {
    if (err instanceof MalformedRecordError) throw new RefusedRecordError('malformed', err.message);
    throw err;
  }
  if (event.tenantid !== named.tenantId) throw new RefusedRecordError('malformed', `tenantid: '${String(event.tenantid).slice(0, 200)}' is not the tenant the key names`);
  if (event.data_base64 !== undefined) throw new RefusedRecordError('malformed', 'data: a reference record carries JSON data, not data_base64');
  if (event.data === undefined || event.data === null) return { ...named, data: null };
  const data = JSON.stringify(event.data);
  const bytes = Buffer.byteLength(data);
  if (bytes > opts.maxDataBytes) throw new RefusedRecordError('tooLarge', `data: ${bytes} bytes as JSON, more than ${opts.maxDataBytes}`);
  return { ...named, data };
}
