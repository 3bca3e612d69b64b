/**
 * From a source record, as the Kafka binding decoded it, to the CloudEvent the platform routes: the size limit,
 * the per-topic mapping for records that are not CloudEvents, and the required `tenantid`. The route (live)
 * and the export function (replays re-deriving a past interval) share it, so a replay derives exactly what
 * the route derived. A record that can never be routed throws MalformedRecordError with the reason.
 */
import { MalformedRecordError } from '../errors.ts';
import type { CloudEventJson } from './cloudevent.ts';
import type { InboundEvent } from './inbound.ts';
import { applyMapping, type TopicMappings } from './topic-mapping.ts';

export interface SourceDecoding {
  /** records larger than this are malformed (PIONEER_MAX_RECORD_BYTES) */
  maxRecordBytes: number;
  /** per-topic mappings (PIONEER_TOPIC_MAPPINGS) */
  mappings: TopicMappings;
}

export function sourceEventOf(item: InboundEvent, topic: string, opts: SourceDecoding): CloudEventJson {
  const size = item.record?.value?.length ?? 0;
  if (size > opts.maxRecordBytes) throw new MalformedRecordError(`record of ${size} bytes is larger than ${opts.maxRecordBytes}`);
  if (item.error) throw new MalformedRecordError(item.error);
  let event = item.event;
  if (!event) {
    const mapping = opts.mappings[topic];
    if (!mapping || !item.record) throw new MalformedRecordError(`not a CloudEvent, and topic ${topic} has no mapping`);
    event = applyMapping(mapping, item.record, item.position, topic);
  }
  if (typeof event.tenantid !== 'string' || event.tenantid === '') throw new MalformedRecordError('tenantid: is required on every source event');
  return event;
}
