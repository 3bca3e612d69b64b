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
  /**
   * The record's value when `json` is exactly its text (valid UTF-8, on one line, nothing added): what is appended
   * to Redis, as it came, rather than the text encoded again.
   */
  bytes?: Buffer;
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
  /**
   * False when the host cannot deliver the partition again from an earlier offset: an HTTP trigger (Knative
   * KafkaSource, OpenFaaS kafka-connector) posts one record per request and commits it once answered 2xx, and
   * a retry brings back only that record. The handler then must not answer `rewindTo`: it reads what it needs
   * from Kafka itself before it resolves. Absent or true: the host seeks (the local host's consumer).
   */
  seekable?: boolean;
}

export interface BatchResult {
  /**
   * Ask the host to deliver this partition again from `rewindTo`; the batch is not done. Only for a seekable
   * batch: a host that cannot seek and gets it anyway answers so that its trigger retries, never as done.
   */
  rewindTo?: string;
}
