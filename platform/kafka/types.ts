/**
 * The platform's Kafka client: the few calls its Kafka trigger, producers and admin callers make, behind one small
 * interface with two implementations, kafkajs (kafkajs-client.ts) and @platformatic/kafka (platformatic-client.ts),
 * chosen by PIONEER_KAFKA_CLIENT (client.ts). Offsets are decimal strings, as Kafka's 64-bit offsets do not fit a
 * JavaScript number; keys and values are Buffers, headers a name → value record.
 */

export type KafkaClientKind = 'kafkajs' | 'platformatic';

/** One record as a consumer hands it over. */
export interface ConsumedRecord {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer | string | undefined>;
  /** milliseconds since the epoch, as text */
  timestamp: string;
}

/** Records of one partition, in offset order. */
export interface RecordBatch {
  topic: string;
  partition: number;
  records: ConsumedRecord[];
}

/** What a batch handler may do with its partition. */
export interface BatchControl {
  /** False once the consumer stops or the partition went to another member: the batch is not committed then. */
  isActive(): boolean;
  /** Commits `next` (the offset of the next record to read) as the group's position on the partition. */
  commit(next: string): Promise<void>;
  /** The partition's next batch starts at `offset` (nothing of this batch is committed). */
  seek(offset: string): void;
  /** Tells the group coordinator the member is alive (during a long batch). */
  heartbeat(): Promise<void>;
}

export interface GroupConsumerOptions {
  groupId: string;
  topics: readonly string[];
  /** where a partition without a committed offset starts: its first record, or its end */
  fromBeginning: boolean;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  rebalanceTimeoutMs: number;
  maxBytesPerPartition: number;
  /** partitions whose batches are handled at once (each partition's batches one after another, in order) */
  partitionsConsumedConcurrently: number;
}

/** A member of a consumer group handing over batches of its partitions' records. */
export interface GroupConsumer {
  /**
   * Joins the group and hands each assigned partition's records to `eachBatch`, one batch of a partition at a
   * time; resolves once consuming started. A batch the handler neither committed nor seeked past comes again
   * after a rebalance or a restart (at least once).
   */
  run(eachBatch: (batch: RecordBatch, control: BatchControl) => Promise<void>): Promise<void>;
  /** Finishes the batches in hand, leaves the group, closes the connections. */
  stop(): Promise<void>;
}

export interface RecordToProduce {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: Record<string, Buffer | string>;
  /** the partition; by default the key's murmur2 hash, as Java's client does (unkeyed records spread) */
  partition?: number;
}

export interface ProducedPosition {
  partition: number;
  /** the offset of the first record of the send on that partition */
  baseOffset: string;
}

/** An idempotent producer: acks from all in-sync replicas by default, no duplicates on its own retries. */
export interface RecordProducer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  /** Resolves once Kafka acknowledged every record, with each partition's base offset. */
  send(request: { topic: string; messages: RecordToProduce[]; acks?: -1 | 1; timeout?: number }): Promise<ProducedPosition[]>;
}

export interface TopicToCreate {
  topic: string;
  numPartitions: number;
  replicationFactor: number;
  configEntries: { name: string; value: string }[];
}

export interface PartitionOffsets {
  partition: number;
  /** the partition's first offset still held */
  low: string;
  /** the offset the next record will get */
  high: string;
}

export interface KafkaAdmin {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  listTopics(): Promise<string[]>;
  /** How many brokers the cluster has (a metadata request: also the readiness probe). */
  brokerCount(): Promise<number>;
  createTopics(topics: TopicToCreate[]): Promise<void>;
  /** Each topic's partitions' leaders (-1: none yet) of those of `topics` the answering broker knows. */
  partitionLeaders(topics: readonly string[]): Promise<Map<string, number[]>>;
  fetchTopicOffsets(topic: string): Promise<PartitionOffsets[]>;
  /** Per partition, the first offset whose record's timestamp is at or after `timestamp` (-1: none). */
  fetchTopicOffsetsByTimestamp(topic: string, timestamp: number): Promise<{ partition: number; offset: string }[]>;
}

export interface KafkaClient {
  readonly kind: KafkaClientKind;
  consumer(opts: GroupConsumerOptions): GroupConsumer;
  producer(opts?: { idempotent?: boolean }): RecordProducer;
  /** An admin client; `retries: 0` answers an outage at once (readiness). */
  admin(opts?: { retries?: number }): KafkaAdmin;
}
