/** kafkajs clients with the platform's logger, defaults and the default partitioner (murmur2, as Java's). */
import { Kafka, logLevel, Partitioners, type Admin, type KafkaConfig, type LogEntry, type Producer } from 'kafkajs';
import type { Logger } from '../telemetry/logger.ts';
import { ConfigError, type CommonConfig } from '../config/env.ts';

export type { Kafka, Producer };

function logCreator(log: Logger) {
  return () =>
    ({ level, log: entry }: LogEntry) => {
      const { message, ...rest } = entry;
      const fields = { ...rest, timestamp: undefined, logger: undefined };
      if (level === logLevel.ERROR) log.error(fields, message);
      else if (level === logLevel.WARN) log.warn(fields, message);
      else if (level === logLevel.INFO) log.debug(fields, message);
    };
}

type KafkaSecurityConfig = Pick<CommonConfig, 'PIONEER_KAFKA_SSL' | 'PIONEER_KAFKA_SASL_MECHANISM' | 'PIONEER_KAFKA_SASL_USERNAME' | 'PIONEER_KAFKA_SASL_PASSWORD'>;

/** TLS and SASL options from the PIONEER_KAFKA_* variables; a mechanism without its credentials is a ConfigError. */
export function kafkaSecurity(cfg: KafkaSecurityConfig): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  const mechanism = cfg.PIONEER_KAFKA_SASL_MECHANISM;
  if (!mechanism) return cfg.PIONEER_KAFKA_SSL ? { ssl: true } : {};
  const username = cfg.PIONEER_KAFKA_SASL_USERNAME;
  const password = cfg.PIONEER_KAFKA_SASL_PASSWORD;
  if (!username) throw new ConfigError('invalid configuration: PIONEER_KAFKA_SASL_USERNAME is required with PIONEER_KAFKA_SASL_MECHANISM');
  if (!password) throw new ConfigError('invalid configuration: PIONEER_KAFKA_SASL_PASSWORD is required with PIONEER_KAFKA_SASL_MECHANISM');
  return { ssl: cfg.PIONEER_KAFKA_SSL, sasl: { mechanism, username, password } as KafkaConfig['sasl'] };
}

export function createKafka(opts: { brokers: string[]; clientId: string; log: Logger } & Partial<KafkaConfig>): Kafka {
  const { brokers, clientId, log, ...rest } = opts;
  return new Kafka({
    brokers,
    clientId,
    logLevel: logLevel.WARN,
    logCreator: logCreator(log.child({ component: 'kafkajs' })),
    connectionTimeout: 3000,
    retry: { initialRetryTime: 100, retries: 8, maxRetryTime: 5000 },
    ...rest,
  });
}

export interface KafkaProbe {
  /** True when a broker answers a metadata request (for /readyz). */
  reachable(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * The /readyz check of Kafka: one admin client kept connected between probes (a probe every few seconds would
 * otherwise open a connection each time), without retries so that an outage is answered at once rather than
 * after the client's back-off; after a failure the client is dropped and the next probe connects afresh.
 */
export function kafkaProbe(kafka: Kafka): KafkaProbe {
  let admin: Promise<Admin> | undefined;
  const drop = async () => {
    const current = admin;
    admin = undefined;
    await current?.then((a) => a.disconnect()).catch(() => {});
  };
  return {
    async reachable() {
      try {
        admin ??= (async () => {
          const a = kafka.admin({ retry: { retries: 0 } });
          await a.connect();
          return a;
        })();
        await (await admin).describeCluster();
        return true;
      } catch {
        await drop();
        return false;
      }
    },
    close: drop,
  };
}

/** An idempotent producer (acks from all in-sync replicas, no duplicates on retry). */
export function createProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 5,
    allowAutoTopicCreation: true,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
}

/** Creates `topics` if missing (partitions and retention as given); existing topics are left as they are. */
export async function ensureTopics(
  kafka: Kafka,
  topics: { topic: string; numPartitions?: number; retentionMs?: number; cleanupPolicy?: 'delete' | 'compact' }[],
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t.topic));
    if (missing.length === 0) return;
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((t) => ({
        topic: t.topic,
        numPartitions: t.numPartitions ?? 4,
        configEntries: [
          ...(t.retentionMs ? [{ name: 'retention.ms', value: String(t.retentionMs) }] : []),
          ...(t.cleanupPolicy ? [{ name: 'cleanup.policy', value: t.cleanupPolicy }] : []),
        ],
      })),
    });
  } finally {
    await admin.disconnect();
  }
}
