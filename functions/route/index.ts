/**
 * The route function (Kafka-triggered). For each source event: decode (CloudEvent, or a per-topic mapping),
 * find its tenant's matching subscriptions, and append it once to each subscription's Redis Stream.
 * Records that can never be routed go to the dead-letter topic with the reason in a header.
 *
 * Once-only: each subscription remembers the last source offset it appended per source partition
 * (append-events-n.lua, one call per tenant and batch), so a re-delivered record is skipped. The route's own position per partition is kept in
 * Redis beside the streams (pioneer:route:pos): when Redis lost its last second (AOF everysec) that position is
 * behind Kafka's committed offset, and the route rewinds the partition to it and derives the lost appends again.
 */
import { z } from 'zod';
import { commonSchema, env } from '../../platform/config/env.ts';
import { defineFunction } from '../../platform/runtime/contract.ts';
import { createApp } from '../../platform/http/app.ts';
import { createRedis, scriptPipeline, redisReachable, appendEventsCalls, appendKeys, type StreamBatch } from '../../platform/redis/client.ts';
import { keys, positionField } from '../../platform/redis/keys.ts';
import { createKafka, kafkaProbe, createProducer, ensureTopics, kafkaSecurity } from '../../platform/kafka/client.ts';
import { createSubscriptionStore } from '../../platform/store/subscriptions.ts';
import { createSubscriptionIndex } from '../../platform/store/subscription-index.ts';
import { MalformedRecordError } from '../../platform/errors.ts';
import { counter, histogram } from '../../platform/telemetry/metrics.ts';
import type { CloudEventJson } from '../../platform/events/cloudevent.ts';
import type { BatchResult, EventBatch, InboundEvent } from '../../platform/events/inbound.ts';
import { topicMappingsEnv } from '../../platform/events/topic-mapping.ts';
import { sourceEventOf } from '../../platform/events/route-decoding.ts';

const config = commonSchema.extend({
  PIONEER_SOURCE_TOPICS: env.list().default(['pioneer.events']),
  PIONEER_ROUTE_GROUP: z.string().min(1).default('pioneer-route'),
  PIONEER_DEAD_LETTER_TOPIC: z.string().min(1).default('pioneer.dead-letter'),
  PIONEER_TOPIC_MAPPINGS: topicMappingsEnv(),
  PIONEER_STREAM_RETENTION_HOURS: env.int(1, 24 * 365).default(72),
  PIONEER_STREAM_MAX_LENGTH: env.int(1, 1_000_000_000).default(5_000_000),
  PIONEER_MAX_RECORD_BYTES: env.int(1024, 16 * 1024 * 1024).default(1024 * 1024),
  PIONEER_SUBSCRIPTION_POLL_MS: env.int(10, 60000).default(250),
  /** how far back to re-derive when Redis comes back without the route's position (it loses at most ~1 s) */
  PIONEER_ROUTE_REDERIVE_SECONDS: env.int(1, 7 * 86400).default(60),
});
export type RouteConfig = z.infer<typeof config>;

export default defineFunction({
  name: 'route',
  config,
  defaultPort: 8082,
  async create(cfg, { log, metrics }) {
    const redis = createRedis(cfg.PIONEER_REDIS_URL, { name: 'route' });
    const kafka = createKafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId: `${cfg.PIONEER_KAFKA_CLIENT_ID}-route`, log, ...kafkaSecurity(cfg) });
    const producer = createProducer(kafka);
    // topics missing on the broker are created (a fresh local stack); existing ones are left as they are
    const topicRetentionMs = 7 * 86_400_000; // the 72 h outage plus the replay window
    await ensureTopics(kafka, [...cfg.PIONEER_SOURCE_TOPICS, cfg.PIONEER_DEAD_LETTER_TOPIC].map((topic) => ({ topic, retentionMs: topicRetentionMs })));
    await producer.connect();
    const index = createSubscriptionIndex({ store: createSubscriptionStore(redis), log, pollMs: cfg.PIONEER_SUBSCRIPTION_POLL_MS });
    await index.start();

    const received = counter(metrics, 'pioneer_route_events_total', 'Source events read', ['topic']);
    const appended = counter(metrics, 'pioneer_route_appends_total', 'Events appended to subscription streams');
    const duplicates = counter(metrics, 'pioneer_route_duplicates_total', 'Re-delivered events skipped as already appended');
    const deadLettered = counter(metrics, 'pioneer_route_dead_letters_total', 'Source records sent to the dead-letter topic', ['topic']);
    const batchSeconds = histogram(metrics, 'pioneer_route_batch_seconds', 'Time to route one partition batch');
    const retentionMs = cfg.PIONEER_STREAM_RETENTION_HOURS * 3600_000;
    const maxLen = String(cfg.PIONEER_STREAM_MAX_LENGTH);

    const decoding = { maxRecordBytes: cfg.PIONEER_MAX_RECORD_BYTES, mappings: cfg.PIONEER_TOPIC_MAPPINGS };
    const eventOf = (item: InboundEvent, topic: string): CloudEventJson => sourceEventOf(item, topic, decoding);

    /**
     * Kafka hands over `first` but Redis has no position for the partition although the partition has records
     * before it: Redis lost the position (a restart without its last writes, or a new Redis). Appends made since
     * may be lost too, so re-derive the last PIONEER_ROUTE_REDERIVE_SECONDS; the subscriptions' own positions skip
     * whatever survived. Null when `first` is the partition's first record (a fresh start: nothing to re-derive).
     */
    async function rederiveFrom(topic: string, partition: number, first: string): Promise<string | null> {
      const admin = kafka.admin();
      await admin.connect();
      try {
        const low = (await admin.fetchTopicOffsets(topic)).find((o) => o.partition === partition)?.low ?? '0';
        if (BigInt(first) <= BigInt(low)) return null;
        const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, Date.now() - cfg.PIONEER_ROUTE_REDERIVE_SECONDS * 1000);
        const at = byTime.find((o) => o.partition === partition)?.offset ?? low;
        const target = BigInt(at) < 0n ? BigInt(first) : BigInt(at) < BigInt(low) ? BigInt(low) : BigInt(at);
        if (target >= BigInt(first)) return null;
        log.warn({ topic, partition, from: first, to: String(target) }, 'no route position in Redis for a partition already consumed: re-deriving recent events');
        return String(target);
      } finally {
        await admin.disconnect();
      }
    }

    async function handle(batch: EventBatch): Promise<BatchResult | void> {
      const timer = batchSeconds.startTimer();
      const field = positionField(batch.topic, batch.partition);
      const first = batch.events[0]?.position?.offset;
      const checkpoint = first === undefined ? null : await redis.hget(keys.routePositions(), field);
      if (checkpoint !== null && first !== undefined && BigInt(checkpoint) < BigInt(first)) return { rewindTo: checkpoint };
      if (checkpoint === null && first !== undefined) {
        const target = await rederiveFrom(batch.topic, batch.partition, first);
        if (target !== null) {
          await redis.hset(keys.routePositions(), field, target);
          return { rewindTo: target };
        }
      }

      const deadLetters: { item: InboundEvent; reason: string }[] = [];
      // the batch's matches per tenant and subscription, in source order: one append call per tenant
      const perTenant = new Map<string, Map<string, StreamBatch>>();
      const hour = Math.floor(Date.now() / 3600_000);
      // records before the checkpoint were routed already (a re-delivery after a crash): compare only then
      const skipBefore = checkpoint !== null && first !== undefined && BigInt(first) < BigInt(checkpoint) ? BigInt(checkpoint) : null;
      for (const item of batch.events) {
        const offset = item.position?.offset;
        if (skipBefore !== null && offset !== undefined && BigInt(offset) < skipBefore) continue;
        let event: CloudEventJson;
        try {
          event = eventOf(item, batch.topic);
        } catch (err) {
          if (!(err instanceof MalformedRecordError)) throw err;
          deadLetters.push({ item, reason: err.message });
          continue;
        }
        const matches = index.match(event.tenantid!, event);
        if (matches.length === 0) continue;
        const json = item.json ?? JSON.stringify(event);
        const dedupId = `${event.source} ${event.id}`;
        for (const { sub } of matches) {
          const t = sub.tenant_id;
          let subs = perTenant.get(t);
          if (!subs) perTenant.set(t, (subs = new Map()));
          let entry = subs.get(sub.id);
          if (!entry) subs.set(sub.id, (entry = { keys: appendKeys(t, sub.id, hour), events: [] }));
          entry.events.push(offset ?? '', dedupId, event.type, json);
        }
      }
      if (perTenant.size > 0) {
        // one position field per batch: every record of a batch comes from the same partition, or none has one
        const posField = first === undefined ? '' : field;
        const retainFrom = String(Date.now() - retentionMs);
        const pipeline = scriptPipeline(redis);
        for (const subs of perTenant.values()) for (const args of appendEventsCalls(posField, maxLen, retainFrom, subs.values())) pipeline.appendEvents(...args);
        let added = 0;
        let skipped = 0;
        for (const [err, res] of (await pipeline.exec()) ?? []) {
          if (err) throw err; // retriable: the host retries the batch, appends already made are skipped then
          const counts = res as number[];
          for (let i = 0; i < counts.length; i += 2) {
            if (counts[i]! < 0) continue; // the subscription was deleted meanwhile
            added += counts[i]!;
            skipped += counts[i + 1]!;
          }
        }
        appended.inc(added);
        duplicates.inc(skipped);
      }
      if (deadLetters.length > 0) {
        await producer.send({
          topic: cfg.PIONEER_DEAD_LETTER_TOPIC,
          acks: -1,
          messages: deadLetters.map(({ item, reason }) => ({
            key: item.record?.key ?? null,
            value: item.record?.value ?? null,
            headers: {
              ...(item.record?.headers ?? {}),
              'pioneer-error': reason,
              'pioneer-source-topic': batch.topic,
              'pioneer-source-partition': String(batch.partition),
              ...(item.position ? { 'pioneer-source-offset': item.position.offset } : {}),
            },
          })),
        });
        deadLettered.inc({ topic: batch.topic }, deadLetters.length);
        for (const { item, reason } of deadLetters) log.warn({ topic: batch.topic, partition: batch.partition, offset: item.position?.offset, reason }, 'dead-lettered');
      }
      const last = batch.events[batch.events.length - 1]?.position?.offset;
      if (last !== undefined) await redis.hset(keys.routePositions(), field, String(BigInt(last) + 1n));
      received.inc({ topic: batch.topic }, batch.events.length);
      timer();
    }

    const probe = kafkaProbe(kafka);
    const app = createApp({
      name: 'route',
      log,
      metrics,
      ready: async () => {
        const [r, kafkaUp] = await Promise.all([redisReachable(redis), probe.reachable()]);
        return { redis: r, kafka: kafkaUp, subscriptions: true };
      },
    });

    return {
      name: 'route',
      app,
      trigger: { topics: cfg.PIONEER_SOURCE_TOPICS, groupId: cfg.PIONEER_ROUTE_GROUP, handle },
      async close() {
        index.stop();
        await probe.close();
        await producer.disconnect().catch(() => {});
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  },
});
