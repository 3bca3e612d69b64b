/**
 * Turns the CloudEvents a Kafka trigger (Knative KafkaSource, OpenFaaS kafka-connector) posts into the batch a
 * Kafka-triggered function handles. A KafkaSource forwards records that are CloudEvents as they are; other
 * records arrive wrapped as `dev.knative.kafka.event` (id `partition:<p>/offset:<o>`, source ending `#<topic>`,
 * data = the record value, extension `key`): those are unwrapped back into the record, so both hosts hand the
 * function exactly what the local host would.
 */
import type { CloudEventJson } from '../../platform/events/cloudevent.ts';
import { decodeKafkaRecord } from '../../platform/events/kafka-binding.ts';
import type { EventBatch, InboundEvent } from '../../platform/events/inbound.ts';

export const KNATIVE_KAFKA_EVENT = 'dev.knative.kafka.event';

function unwrapKnativeRecord(event: CloudEventJson): InboundEvent {
  const m = /^partition:(\d+)\/offset:(\d+)$/.exec(event.id);
  const topic = /#([^#]+)$/.exec(event.source)?.[1] ?? 'unknown';
  let value: Buffer | null = null;
  if (event.data_base64 !== undefined) value = Buffer.from(event.data_base64, 'base64');
  else if (event.data !== undefined) value = Buffer.from(typeof event.data === 'string' ? event.data : JSON.stringify(event.data));
  const key = typeof event['key'] === 'string' ? Buffer.from(event['key'] as string) : null;
  return decodeKafkaRecord({ key, value, headers: {} }, m ? { topic, partition: Number(m[1]), offset: m[2]! } : undefined);
}

/** The batch for the events of one trigger request. */
export function batchFromTriggerEvents(events: CloudEventJson[]): EventBatch {
  const inbound = events.map((event) => (event.type === KNATIVE_KAFKA_EVENT ? unwrapKnativeRecord(event) : { event }));
  const pos = inbound[0]?.position;
  return { topic: pos?.topic ?? 'http', partition: pos?.partition ?? 0, events: inbound };
}
