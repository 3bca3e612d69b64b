/**
 * What a Kafka-triggered function receives, whatever hosts it: decoded CloudEvents with, where the host
 * knows it, the source position (topic, partition, offset) and the original record for dead-lettering.
 */
import type { CloudEventJson } from "./cloudevent.ts";

export interface RawRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
  timestamp?: string;
}

export interface SourcePosition {
  topic: string;
  partition: number;
  offset: string;
}

export interface InboundEvent {
  /** The decoded CloudEvent; absent when the record is not a CloudEvent (see `error`, `record`). */
  event?: CloudEventJson;
  /**
   * The event's structured JSON exactly as the record carried it, when it can be stored as it is: a structured
   * record that decoding left unchanged, on one line. Spares serialising it again and keeps its numbers exact.
   */
  json?: string;
  /** Why the record could not be decoded as a CloudEvent (absent for a plain non-CloudEvent record). */
  error?: string;
  /** The original record as read from Kafka, when the host had it. */
  record?: RawRecord;
  position?: SourcePosition;
}

/** Events of one source partition, in source order. */
export interface EventBatch {
  topic: string;
  partition: number;
  events: InboundEvent[];
}

export interface BatchResult {
  /** Ask the host to deliver this partition again from `rewindTo` (hosts that cannot seek log it). */
  rewindTo?: string;
}
