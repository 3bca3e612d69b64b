/**
 * The reference function (Kafka-triggered, its own consumer group): keeps the reference tables that transforms
 * look records up in (`$lookup('accounts', accountId)`), from compacted topics, in Redis. No API of its own: it
 * serves /healthz, /readyz and /metrics. platform/reference/store.ts holds the design; docs/transforms.md the use.
 *
 * For each partition batch of a table's topic: each record to a put or a delete (platform/reference/records.ts),
 * records of tenants that do not exist refused, then each tenant's records in one script call per chunk
 * (put-references-1.lua), in source order, within the table's bound of records. A record refused goes to the
 * dead-letter topic with the reason (headers `pioneer-error`, `pioneer-error-kind`) and counts in
 * pioneer_reference_refused_total{reason}. The batch resolves once Redis has every record: the host commits then,
 * and a batch retried after a crash writes the same values again.
 */
import { z } from 'zod';
import { commonSchema, env, requireRedis } from '../../platform/config/env.ts';
import { decodingOf, sourceSchema } from '../../platform/config/source.ts';
import { defineFunction } from '../../platform/runtime/contract.ts';
import { createApp } from '../../platform/http/app.ts';
import { createRedis, redisReachable } from '../../platform/redis/client.ts';
import { createKafka, kafkaProbe, createProducer, ensureTopics, kafkaSecurity } from '../../platform/kafka/client.ts';
import { createSubscriptionStore } from '../../platform/store/subscriptions.ts';
import { counter, gauge, histogram } from '../../platform/telemetry/metrics.ts';
import type { EventBatch, InboundEvent } from '../../platform/events/inbound.ts';
import { isReferenceTable, REFERENCE_TABLE_RULE } from '../../platform/reference/names.ts';
import { referenceRecordOf, RefusedRecordError, type ReferenceRecord, type RefusalReason } from '../../platform/reference/records.ts';
import { putReferences } from '../../platform/reference/store.ts';

/** `table=topic` pairs: each table is one compacted topic. */
const tablesSchema = env.list().transform((pairs, ctx) => {
  const byTopic = new Map<string, string>();
  const tables = new Set<string>();
  for (const pair of pairs) {
    const [table, topic, ...rest] = pair.split('=');
    if (!table || !topic || rest.length > 0 || !/^[a-zA-Z0-9._-]{1,249}$/.test(topic)) {
      ctx.addIssue({ code: 'custom', message: `'${pair}' is not table=topic` });
      return z.NEVER;
    }
    if (!isReferenceTable(table)) {
      ctx.addIssue({ code: 'custom', message: `table '${table}': ${REFERENCE_TABLE_RULE}` });
      return z.NEVER;
    }
    if (tables.has(table) || byTopic.has(topic)) {
      ctx.addIssue({ code: 'custom', message: `table '${table}' or topic '${topic}' named twice` });
      return z.NEVER;
    }
    tables.add(table);
    byTopic.set(topic, table);
  }
  if (byTopic.size === 0) {
    ctx.addIssue({ code: 'custom', message: 'at least one table=topic' });
    return z.NEVER;
  }
  return byTopic;
});

const config = commonSchema.extend({
  PIONEER_TOPIC_MAPPINGS: sourceSchema.shape.PIONEER_TOPIC_MAPPINGS,
  PIONEER_MAX_RECORD_BYTES: sourceSchema.shape.PIONEER_MAX_RECORD_BYTES,
  /** the reference tables, `table=topic,...`: each a compacted topic of records keyed `<tenantid>/<lookup key>` */
  PIONEER_REFERENCE_TOPICS: tablesSchema.prefault('accounts=pioneer.reference.accounts'),
  PIONEER_REFERENCE_GROUP: z.string().min(1).default('pioneer-reference'),
  PIONEER_DEAD_LETTER_TOPIC: z.string().min(1).default('pioneer.dead-letter'),
  /** the most records one tenant keeps in one table; records of new keys beyond it are dead-lettered */
  PIONEER_REFERENCE_MAX_RECORDS: env.int(1, 10_000_000).default(100_000),
  /** the largest `data` of a reference record, as JSON (bytes); larger records are dead-lettered */
  PIONEER_REFERENCE_MAX_RECORD_BYTES: env.int(2, 1024 * 1024).default(16 * 1024),
}).refine(...requireRedis);
export type ReferenceConfig = z.infer<typeof config>;

export default defineFunction({
  name: 'reference',
  config,
  defaultPort: 8088,
  async create(cfg, { log, metrics }) {
    const redis = createRedis(cfg, { name: 'reference' });
    const kafka = createKafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId: `${cfg.PIONEER_KAFKA_CLIENT_ID}-reference`, log, ...kafkaSecurity(cfg) });
    const producer = createProducer(kafka);
    const tables = cfg.PIONEER_REFERENCE_TOPICS;
    // compacted: each key's latest record stays, so reading a topic from its start rebuilds its table
    await ensureTopics(kafka, [
      ...[...tables.keys()].map((topic) => ({ topic, cleanupPolicy: 'compact' as const })),
      { topic: cfg.PIONEER_DEAD_LETTER_TOPIC, retentionMs: 7 * 86_400_000 },
    ]);
    await producer.connect();
    const subscriptions = createSubscriptionStore(redis);
    const decoding = { ...decodingOf({ ...cfg, PIONEER_SOURCE_TOPICS: [] }), maxDataBytes: cfg.PIONEER_REFERENCE_MAX_RECORD_BYTES };

    const applied = counter(metrics, 'pioneer_reference_records_total', 'Reference records written to (or deleted from) their table', ['table', 'op']);
    const refusedTotal = counter(metrics, 'pioneer_reference_refused_total', 'Reference records refused and dead-lettered', ['table', 'reason']);
    const lag = gauge(metrics, 'pioneer_reference_lag_seconds', 'Age of the newest reference record applied (now minus its Kafka timestamp)', ['topic', 'partition']);
    const batchSeconds = histogram(metrics, 'pioneer_reference_batch_seconds', 'Time to apply one partition batch of reference records');

    interface Refused {
      item: InboundEvent;
      reason: RefusalReason;
      message: string;
    }

    async function deadLetter(topic: string, partition: number, table: string, refused: readonly Refused[]): Promise<void> {
      if (refused.length === 0) return;
      await producer.send({
        topic: cfg.PIONEER_DEAD_LETTER_TOPIC,
        acks: -1,
        messages: refused.map(({ item, message, reason }) => ({
          key: item.record?.key ?? null,
          value: item.record?.value ?? (item.event ? JSON.stringify(item.event) : null),
          headers: {
            ...(item.record?.headers ?? {}),
            'pioneer-error': message,
            'pioneer-error-kind': reason,
            'pioneer-dead-lettered-by': 'reference',
            'pioneer-source-topic': topic,
            'pioneer-source-partition': String(partition),
            ...(item.position ? { 'pioneer-source-offset': item.position.offset } : {}),
          },
        })),
      });
      for (const { reason } of refused) refusedTotal.inc({ table, reason });
      for (const { item, message } of refused) log.warn({ topic, partition, offset: item.position?.offset, reason: message }, 'reference record dead-lettered');
    }

    async function handle(batch: EventBatch): Promise<void> {
      const table = tables.get(batch.topic);
      if (table === undefined) return; // not a table's topic: nothing of ours
      const timer = batchSeconds.startTimer();
      const refused: Refused[] = [];
      const records: { item: InboundEvent; record: ReferenceRecord }[] = [];
      for (const item of batch.events) {
        try {
          records.push({ item, record: referenceRecordOf(item, batch.topic, decoding) });
        } catch (err) {
          if (!(err instanceof RefusedRecordError)) throw err;
          refused.push({ item, reason: err.reason, message: err.message });
        }
      }
      const existing = new Set(await subscriptions.existingTenants([...new Set(records.map((r) => r.record.tenantId))]));
      const byTenant = new Map<string, { item: InboundEvent; record: ReferenceRecord }[]>();
      for (const r of records) {
        if (!existing.has(r.record.tenantId)) {
          refused.push({ item: r.item, reason: 'unknownTenant', message: `tenantid: no tenant '${r.record.tenantId.slice(0, 200)}'` });
          continue;
        }
        let list = byTenant.get(r.record.tenantId);
        if (!list) byTenant.set(r.record.tenantId, (list = []));
        list.push(r);
      }
      await Promise.all(
        [...byTenant].map(async ([tenantId, list]) => {
          const outcome = await putReferences(redis, tenantId, table, list.map((r) => ({ key: r.record.key, data: r.record.data })), cfg.PIONEER_REFERENCE_MAX_RECORDS);
          applied.inc({ table, op: 'put' }, outcome.written);
          applied.inc({ table, op: 'delete' }, outcome.deleted);
          for (const i of outcome.refused)
            refused.push({ item: list[i]!.item, reason: 'tableFull', message: `table ${table} of tenant ${tenantId} holds ${cfg.PIONEER_REFERENCE_MAX_RECORDS} records already (PIONEER_REFERENCE_MAX_RECORDS)` });
        }),
      );
      await deadLetter(batch.topic, batch.partition, table, refused);
      const stamp = Number(batch.events[batch.events.length - 1]?.record?.timestamp);
      if (Number.isFinite(stamp) && stamp > 0) lag.set({ topic: batch.topic, partition: String(batch.partition) }, Math.max(0, (Date.now() - stamp) / 1000));
      timer();
    }

    const probe = kafkaProbe(kafka);
    const app = createApp({
      name: 'reference',
      log,
      metrics,
      ready: async () => {
        const [r, kafkaUp] = await Promise.all([redisReachable(redis), probe.reachable()]);
        return { redis: r, kafka: kafkaUp };
      },
    });

    return {
      name: 'reference',
      app,
      trigger: { topics: [...tables.keys()], groupId: cfg.PIONEER_REFERENCE_GROUP, handle },
      async close() {
        await probe.close();
        await producer.disconnect().catch(() => {});
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  },
});
