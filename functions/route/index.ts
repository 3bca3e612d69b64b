/**
 * The route function (Kafka-triggered). For each source event: decode (CloudEvent, or a per-topic mapping),
 * find its tenant's matching subscriptions, and append it once to each subscription's Redis Stream.
 * Records that can never be routed go to the dead-letter topic with the reason in a header.
 *
 * Decoding, matching and appending are platform/routing/route-core.ts, which replays share.
 *
 * Once-only: each subscription remembers the last source offset it appended per source partition
 * (append-events-n.lua, one call per tenant and batch), so a re-delivered record is skipped. The route's own position per partition is kept in
 * Redis beside the streams (pioneer:route:pos): when Redis lost its last second (AOF everysec) that position is
 * behind Kafka's committed offset, and the route rewinds the partition to it and derives the lost appends again.
 *
 * How the rewind happens depends on the host. The local host's consumer seeks: the route answers `{ rewindTo }` and
 * gets the partition again from there. An HTTP trigger (Knative KafkaSource, OpenFaaS kafka-connector) cannot: it
 * posts one record per request, commits it once answered 2xx, and a non-2xx answer only brings the same record
 * back, so asking it to redeliver would never reach the records before it. Its batches are marked not seekable,
 * and for those the route restores the interval itself before it routes the record in hand: it reads the
 * partition from the rewind point up to that record from Kafka (platform/tiers/cold-source.ts, fetched straight
 * from the leader: no group, nothing committed) and routes it through the same path, RESTORE_CHUNK records at a
 * time. Appends are once-only per subscription and source offset, so whatever survived in Redis is skipped; the
 * route's position moves with each chunk, so a restore cut short (the trigger's timeout) goes on from there when
 * the trigger retries the record.
 */
import { z } from 'zod';
import { commonSchema, env, requireRedis } from '../../platform/config/env.ts';
import { defineFunction } from '../../platform/runtime/contract.ts';
import { createApp } from '../../platform/http/app.ts';
import { createRedis, redisReachable } from '../../platform/redis/client.ts';
import { readRoutePosition, writeRoutePosition } from '../../platform/routing/positions.ts';
import { createKafka, fetchOptions, kafkaProbe, createProducer, ensureTopics, kafkaSecurity } from '../../platform/kafka/client.ts';
import { createSubscriptionStore } from '../../platform/store/subscriptions.ts';
import { createSubscriptionIndex } from '../../platform/store/subscription-index.ts';
import { counter, histogram } from '../../platform/telemetry/metrics.ts';
import type { BatchResult, EventBatch, InboundEvent } from '../../platform/events/inbound.ts';
import { createColdSource, decodeRangeRecord } from '../../platform/tiers/cold-source.ts';
import { bufferLimitsOf, bufferSchema, decodingOf, sourceSchema } from '../../platform/config/source.ts';
import { createRouteCore } from '../../platform/routing/route-core.ts';
import { createFlowCounter } from '../../platform/insights/flow.ts';
import { createReferenceLookups, REFERENCE_CACHE_MS } from '../../platform/reference/lookups.ts';

/** records a restore routes at a time: the route's position moves after each chunk */
const RESTORE_CHUNK = 1000n;

const config = commonSchema.extend({
  ...sourceSchema.shape,
  ...bufferSchema.shape,
  PIONEER_ROUTE_GROUP: z.string().min(1).default('pioneer-route'),
  PIONEER_DEAD_LETTER_TOPIC: z.string().min(1).default('pioneer.dead-letter'),
  PIONEER_SUBSCRIPTION_POLL_MS: env.int(10, 60000).default(250),
  /** how far back to re-derive when Redis comes back without the route's position (it loses at most ~1 s) */
  PIONEER_ROUTE_REDERIVE_SECONDS: env.int(1, 7 * 86400).default(60),
  /** how long a reference record a transform looked up is kept in memory: updates reach lookups within it (0: never kept) */
  PIONEER_REFERENCE_CACHE_MS: env.int(0, 60_000).default(REFERENCE_CACHE_MS),
}).refine(...requireRedis);
export type RouteConfig = z.infer<typeof config>;

export default defineFunction({
  name: 'route',
  config,
  defaultPort: 8082,
  async create(cfg, { log, metrics }) {
    const redis = createRedis(cfg, { name: 'route' });
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
    const budgetExceeded = counter(metrics, 'pioneer_route_filter_budget_exceeded_total', "Events a subscription's filters could not judge within their work budget (dead-lettered for it)");
    const transformFailed = counter(metrics, 'pioneer_route_transform_failed_total', "Events a subscription's transform failed on (set aside in its dead letters)");
    const batchSeconds = histogram(metrics, 'pioneer_route_batch_seconds', 'Time to route one partition batch');
    const lookedUp = counter(metrics, 'pioneer_route_lookups_total', "Reference lookups of subscriptions' transforms, by what answered them (cache or redis)", ['from']);
    const lookups = createReferenceLookups({ redis, ttlMs: cfg.PIONEER_REFERENCE_CACHE_MS, counted: (from) => lookedUp.inc({ from }) });
    const flow = createFlowCounter(redis, 'routed');
    const core = createRouteCore({ redis, decoding: decodingOf(cfg), lookups, flow, ...bufferLimitsOf(cfg) });

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

    /**
     * For a host that cannot seek: reads the partition's records [from, until) from Kafka and routes them, in
     * order, before the record at `until` (see the top of this file).
     */
    async function restore(topic: string, partition: number, from: string, until: string): Promise<void> {
      log.warn({ topic, partition, from, until }, 'the trigger cannot rewind: reading the interval from Kafka and routing it again');
      const source = await createColdSource({
        kafka: { ...fetchOptions(cfg, `${cfg.PIONEER_KAFKA_CLIENT_ID}-route-restore`), onRetry: (r) => log.warn(r, 'a restore fetch failed and is tried again (a broker away, a leader moving)') },
      });
      try {
        const last = BigInt(until) - 1n;
        for (let start = BigInt(from); start <= last; start += RESTORE_CHUNK) {
          const to = start + RESTORE_CHUNK - 1n < last ? start + RESTORE_CHUNK - 1n : last;
          const events: InboundEvent[] = [];
          let through = '';
          await source.read([{ topic, partition, from: start, to }], (range, m, offset) => {
            through = String(offset);
            events.push(decodeRangeRecord(range, m, offset));
          });
          if (events.length === 0) continue; // compacted or deleted away
          await routeRecords(topic, partition, events, through);
          received.inc({ topic }, events.length);
        }
      } finally {
        await source.close();
      }
    }

    async function handle(batch: EventBatch): Promise<BatchResult | void> {
      const timer = batchSeconds.startTimer();
      const at = { topic: batch.topic, partition: batch.partition };
      const first = batch.events[0]?.position?.offset;
      // the index catches up with every subscription change made before this batch was fetched, while the
      // position is read: an event that reached the topic after a subscription's creation was answered matches it
      let [checkpoint] = await Promise.all([first === undefined ? null : readRoutePosition(redis, at), index.current()]);
      let rewindTo: string | null = null;
      if (checkpoint !== null && first !== undefined && BigInt(checkpoint) < BigInt(first)) rewindTo = checkpoint;
      if (checkpoint === null && first !== undefined) {
        rewindTo = await rederiveFrom(batch.topic, batch.partition, first);
        if (rewindTo !== null) await writeRoutePosition(redis, { ...at, next: rewindTo });
      }
      if (rewindTo !== null && first !== undefined) {
        if (batch.seekable !== false) return { rewindTo };
        await restore(batch.topic, batch.partition, rewindTo, first);
        checkpoint = first;
      }

      // records before the checkpoint were routed already (a re-delivery after a crash): compare only then
      const skipBefore = checkpoint !== null && first !== undefined && BigInt(first) < BigInt(checkpoint) ? BigInt(checkpoint) : null;
      const records = skipBefore === null ? batch.events : batch.events.filter((item) => item.position === undefined || BigInt(item.position.offset) >= skipBefore);
      await routeRecords(batch.topic, batch.partition, records, batch.events[batch.events.length - 1]?.position?.offset);
      received.inc({ topic: batch.topic }, batch.events.length);
      timer();
    }

    /** Routes records of one partition, in offset order, dead-letters what cannot be routed, and moves the route's position past `last`. */
    async function routeRecords(topic: string, partition: number, records: readonly InboundEvent[], last: string | undefined): Promise<void> {
      const { deadLetters, added, skipped, budgetExceeded: exceeded, transformFailed: failed, unreplicated } = await core.route({ topic, partition, records, matcher: index });
      transformFailed.inc(failed);
      if (unreplicated > 0) log.warn({ topic, partition, masters: unreplicated }, 'appends not yet on a replica of every Redis master written to: a failover now could lose them');
      budgetExceeded.inc(exceeded);
      appended.inc(added);
      duplicates.inc(skipped);
      if (deadLetters.length > 0) {
        await producer.send({
          topic: cfg.PIONEER_DEAD_LETTER_TOPIC,
          acks: -1,
          messages: deadLetters.map(({ item, reason, subscription }) => ({
            key: item.record?.key ?? null,
            value: item.record?.value ?? null,
            headers: {
              ...(item.record?.headers ?? {}),
              'pioneer-error': reason,
              'pioneer-source-topic': topic,
              'pioneer-source-partition': String(partition),
              ...(item.position ? { 'pioneer-source-offset': item.position.offset } : {}),
              ...(subscription ? { 'pioneer-subscription': subscription } : {}),
            },
          })),
        });
        deadLettered.inc({ topic }, deadLetters.length);
        for (const { item, reason } of deadLetters) log.warn({ topic, partition, offset: item.position?.offset, reason }, 'dead-lettered');
      }
      if (last !== undefined) await writeRoutePosition(redis, { topic, partition, next: String(BigInt(last) + 1n) });
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
        await flow.close();
        await producer.disconnect().catch(() => {});
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  },
});
