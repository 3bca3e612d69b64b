/**
 * The platform's Kafka clients: kafkajs clients with the platform's logger, defaults and the default partitioner
 * (murmur2, as Java's), and the client interface of types.ts on kafkajs or @platformatic/kafka as
 * PIONEER_KAFKA_CLIENT says (createKafkaClient), with the TLS and SASL settings of PIONEER_KAFKA_*. The helpers
 * below (readiness probe, idempotent producer, topic creation) take either.
 */
import { Kafka, logLevel, type KafkaConfig, type LogEntry } from 'kafkajs';
import type { SASLOptions } from '@platformatic/kafka';
import type { Logger } from '../telemetry/logger.ts';
import { ConfigError, type CommonConfig } from '../config/env.ts';
import type { PartitionFetchOptions } from './partition-fetch.ts';
import { kafkajsClient } from './kafkajs-client.ts';
import { platformaticClient } from './platformatic-client.ts';
import type { KafkaAdmin, KafkaClient, RecordProducer } from './types.ts';

export type { Kafka };
export type { KafkaClient, RecordProducer as Producer };

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

/**
 * The same settings as @platformatic/kafka takes them: `tls` (the system's CA store, as kafkajs's `ssl: true`)
 * and `sasl` with the mechanism in Kafka's own spelling (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
 */
export function platformaticSecurity(cfg: KafkaSecurityConfig): { tls?: Record<string, never>; sasl?: SASLOptions } {
  const { ssl, sasl } = kafkaSecurity(cfg);
  const credentials = sasl as { mechanism: string; username: string; password: string } | undefined;
  return {
    ...(ssl ? { tls: {} } : {}),
    ...(credentials ? { sasl: { mechanism: credentials.mechanism.toUpperCase() as SASLOptions['mechanism'], username: credentials.username, password: credentials.password } } : {}),
  };
}

/** The brokers, client id and TLS/SASL settings of `cfg` for reading partitions straight from their leaders (partition-fetch.ts). */
export function fetchOptions(cfg: KafkaSecurityConfig & Pick<CommonConfig, 'PIONEER_KAFKA_BROKERS'>, clientId: string): PartitionFetchOptions {
  return { brokers: cfg.PIONEER_KAFKA_BROKERS, clientId, ...platformaticSecurity(cfg) };
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

/** The client PIONEER_KAFKA_CLIENT names, with the brokers, client id and TLS/SASL settings of `cfg`. */
export function createKafkaClient(
  cfg: KafkaSecurityConfig & Pick<CommonConfig, 'PIONEER_KAFKA_BROKERS' | 'PIONEER_KAFKA_CLIENT' | 'PIONEER_KAFKA_CLIENT_ID'>,
  opts: { log: Logger; clientId?: string },
): KafkaClient {
  const clientId = opts.clientId ?? cfg.PIONEER_KAFKA_CLIENT_ID;
  if (cfg.PIONEER_KAFKA_CLIENT === 'platformatic') return platformaticClient({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId, log: opts.log, ...platformaticSecurity(cfg) });
  return kafkajsClient(createKafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId, log: opts.log, ...kafkaSecurity(cfg) }));
}

/** The client interface over `kafka`; a kafkajs client is wrapped (for callers that still build one with createKafka). */
export function asKafkaClient(kafka: Kafka | KafkaClient): KafkaClient {
  return kafka instanceof Kafka ? kafkajsClient(kafka) : kafka;
}

export interface KafkaProbe {
  /** True when a broker answers a metadata request (for /readyz). */
  reachable(): Promise<boolean>;
  close(): Promise<void>;
}

/** How long /readyz waits for a broker's answer: past it Kafka counts as unreachable. */
export const KAFKA_READY_TIMEOUT_MS = 1500;

/**
 * The /readyz check of Kafka: one admin client kept connected between probes (a probe every few seconds would
 * otherwise open a connection each time), without retries so that an outage is answered at once rather than
 * after the client's back-off; after a failure the client is dropped and the next probe connects afresh.
 * A probe answers within `timeoutMs` even when the broker is silent (a network that drops packets, a stopped
 * broker), where a request would otherwise wait for the client's request timeout or its reconnection attempts.
 */
export function kafkaProbe(kafka: Kafka | KafkaClient, timeoutMs = KAFKA_READY_TIMEOUT_MS): KafkaProbe {
  const client = asKafkaClient(kafka);
  let admin: Promise<KafkaAdmin> | undefined;
  const drop = async () => {
    const current = admin;
    admin = undefined;
    await current?.then((a) => a.disconnect()).catch(() => {});
  };
  return {
    async reachable() {
      let timer: NodeJS.Timeout | undefined;
      try {
        admin ??= (async () => {
          const a = client.admin({ retries: 0 });
          await a.connect();
          return a;
        })();
        const current = admin;
        const silent = new Promise<false>((resolve) => (timer = setTimeout(resolve, timeoutMs, false)));
        const answered = await Promise.race([current.then((a) => a.brokerCount()).then(() => true), silent]);
        // no answer in time: let this client go (without waiting: its requests may hang), the next probe connects afresh
        if (!answered && admin === current) void drop();
        return answered;
      } catch {
        await drop();
        return false;
      } finally {
        clearTimeout(timer);
      }
    },
    close: drop,
  };
}

/** An idempotent producer (acks from all in-sync replicas, no duplicates on retry). */
export function createProducer(kafka: Kafka | KafkaClient): RecordProducer {
  return asKafkaClient(kafka).producer({ idempotent: true });
}

/**
 * Creates `topics` if missing (partitions and retention as given); existing topics are left as they are.
 * Each partition gets min(3, brokers) replicas, and on three brokers or more `min.insync.replicas=2`, so that a
 * write acknowledged by all in-sync replicas (the producer's acks) survives the loss of any one broker.
 */
export async function ensureTopics(
  kafka: Kafka | KafkaClient,
  topics: { topic: string; numPartitions?: number; retentionMs?: number; cleanupPolicy?: 'delete' | 'compact' }[],
): Promise<void> {
  const admin = asKafkaClient(kafka).admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t.topic));
    if (missing.length === 0) return;
    const replicationFactor = Math.max(1, Math.min(3, await admin.brokerCount()));
    // a broker other than the one that created the topics may not have their metadata yet: the wait below retries
    await admin.createTopics(
      missing.map((t) => ({
        topic: t.topic,
        numPartitions: t.numPartitions ?? 4,
        replicationFactor,
        configEntries: [
          ...(t.retentionMs ? [{ name: 'retention.ms', value: String(t.retentionMs) }] : []),
          ...(t.cleanupPolicy ? [{ name: 'cleanup.policy', value: t.cleanupPolicy }] : []),
          ...(replicationFactor >= 3 ? [{ name: 'min.insync.replicas', value: '2' }] : []),
        ],
      })),
    );
    await waitForLeaders(admin, missing.map((t) => t.topic));
  } finally {
    await admin.disconnect();
  }
}

/** Waits until every partition of `topics` has a leader, as the brokers' metadata says. */
async function waitForLeaders(admin: KafkaAdmin, topics: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await admin.partitionLeaders(topics);
    if (topics.every((t) => (found.get(t)?.length ?? 0) > 0 && found.get(t)!.every((leader) => leader >= 0))) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for the leaders of ${topics.join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
