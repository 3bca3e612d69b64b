/**
 * Turns the CloudEvents a Kafka trigger (Knative KafkaSource, OpenFaaS kafka-connector) posts into the batch a
 * Kafka-triggered function handles. A KafkaSource forwards records that are CloudEvents as they are; other
 * records arrive wrapped as `dev.knative.kafka.event` (id `partition:<p>/offset:<o>`, source ending `#<topic>`,
 * data = the record value, extension `key`): those are unwrapped back into the record, so both hosts hand the
 * function exactly what the local host would. The kafka-connector posts one record per request with its
 * position in `X-Topic`, `X-Kafka-Partition` and `X-Kafka-Offset`: the event gets that position.
 * Every batch is marked not seekable: an HTTP trigger delivers one record per request and cannot rewind.
 */
import type { CloudEventJson } from '../../platform/events/cloudevent.ts';
import { decodeKafkaRecord } from '../../platform/events/kafka-binding.ts';
import type { EventBatch, InboundEvent, SourcePosition } from '../../platform/events/inbound.ts';

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

/** The record's position from the kafka-connector's headers (lower-case names), when all three are there. */
function connectorPosition(headers: Record<string, string>): SourcePosition | undefined {
  const topic = headers['x-topic'];
  const partition = headers['x-kafka-partition'];
  const offset = headers['x-kafka-offset'];
  if (!topic || !partition || !offset || !/^\d+$/.test(partition) || !/^\d+$/.test(offset)) return undefined;
  return { topic, partition: Number(partition), offset };
}

/** The batch for the events of one trigger request (`headers`: the request's, lower-case names). */
export function batchFromTriggerEvents(events: CloudEventJson[], headers: Record<string, string> = {}): EventBatch {
  const connector = events.length === 1 ? connectorPosition(headers) : undefined;
  const inbound = events.map((event): InboundEvent =>
    event.type === KNATIVE_KAFKA_EVENT ? unwrapKnativeRecord(event) : connector ? { event, position: connector } : { event },
  );
  const pos = inbound[0]?.position;
  return { topic: pos?.topic ?? 'http', partition: pos?.partition ?? 0, events: inbound, seekable: false };
}
