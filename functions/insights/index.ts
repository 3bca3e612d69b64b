/**
 * The insights function: ad-campaign figures and flow statistics over event time, from the same source topics as
 * the route (Kafka-triggered, its own consumer group), with a read-only API (api.ts; docs/insights.md for users).
 *
 * For each partition batch: decode each record as the route does (records the route cannot decode are the
 * route's to dead-letter, and are passed over here), group them by tenant, judge each tenant's records against
 * its position and watermark on the partition (judge.ts), write the dead letters (insights events missing a field,
 * later than the allowed lateness, beyond the clock-skew bound), then apply each tenant's records in one script
 * call that also moves its position (platform/insights/store.ts): an event counts once across kill -9, rebalances
 * and redelivery. When another consumer moved the position meanwhile (a rebalance), the call is refused and the
 * tenant's records are judged again against what is there now.
 *
 * Counting: distinct customers per campaign and metric in minute, hour and day buckets (HyperLogLog: an estimate,
 * stated with its bound), exact event counts beside them, and clickToBasket: a cart.add counts for campaign C
 * when the customer clicked an ad of C within the attribution window before it, in event time, whichever of the
 * two was processed first.
 */
import { z } from 'zod';
import { commonSchema, env, requireRedis } from '../../platform/config/env.ts';
import { defineFunction } from '../../platform/runtime/contract.ts';
import { createApp } from '../../platform/http/app.ts';
import { createRedis, redisReachable } from '../../platform/redis/client.ts';
import { createKafka, kafkaProbe, createProducer, ensureTopics, kafkaSecurity } from '../../platform/kafka/client.ts';
import { createTenantStore } from '../../platform/store/tenants.ts';
import { authenticate } from '../../platform/auth/authenticate.ts';
import { counter, gauge, histogram } from '../../platform/telemetry/metrics.ts';
import type { EventBatch } from '../../platform/events/inbound.ts';
import type { CloudEventJson } from '../../platform/events/cloudevent.ts';
import { sourceEventOf } from '../../platform/events/route-decoding.ts';
import { decodingOf, sourceSchema } from '../../platform/config/source.ts';
import { MalformedRecordError } from '../../platform/errors.ts';
import { applyTenantRecords, knownCampaigns, readTenantPosition, type ApplySettings } from '../../platform/insights/store.ts';
import { insightsEventOf } from '../../platform/insights/events.ts';
import { judgeTenantRecords, type DeadLetter, type JudgeLimits, type TenantItem } from './judge.ts';
import { registerInsightsApi } from './api.ts';

const config = commonSchema.extend({
  ...sourceSchema.shape,
  PIONEER_INSIGHTS_GROUP: z.string().min(1).default('pioneer-insights'),
  PIONEER_DEAD_LETTER_TOPIC: z.string().min(1).default('pioneer.dead-letter'),
  /** a click attributes a cart.add of the same customer this long after it (event time) */
  PIONEER_INSIGHTS_ATTRIBUTION_SECONDS: env.int(1, 30 * 86400).default(86400),
  /** events later than this behind the tenant's watermark on their partition are dead-lettered */
  PIONEER_INSIGHTS_LATENESS_SECONDS: env.int(0, 30 * 86400).default(7 * 86400),
  /** events further ahead of the clock than this are dead-lettered */
  PIONEER_INSIGHTS_FUTURE_SKEW_SECONDS: env.int(0, 86400).default(300),
  /** how long minute, hour and day buckets are kept after they end */
  PIONEER_INSIGHTS_MINUTE_RETENTION_HOURS: env.int(1, 24 * 31).default(48),
  PIONEER_INSIGHTS_HOUR_RETENTION_DAYS: env.int(1, 3 * 366).default(90),
  PIONEER_INSIGHTS_DAY_RETENTION_DAYS: env.int(1, 20 * 366).default(730),
  /** the most points a series (hours, days, or minutes of the flow) answers */
  PIONEER_INSIGHTS_MAX_SERIES_POINTS: env.int(10, 100_000).default(2400),
  /** the most campaigns a tenant may have; events naming more are dead-lettered */
  PIONEER_INSIGHTS_MAX_CAMPAIGNS: env.int(1, 10_000_000).default(100_000),
  /** a bucket counts its distinct customers exactly up to this many (a set), past it by HyperLogLog (an estimate) */
  PIONEER_INSIGHTS_EXACT_UP_TO: env.int(0, 100_000).default(1000),
  /** the most clicks, and carts, kept per customer for attribution (the oldest go first) */
  PIONEER_INSIGHTS_MAX_PER_CUSTOMER: env.int(1, 100_000).default(1000),
}).refine(...requireRedis);
export type InsightsConfig = z.infer<typeof config>;

export default defineFunction({
  name: 'insights',
  config,
  defaultPort: 8087,
  async create(cfg, { log, metrics }) {
    const redis = createRedis(cfg, { name: 'insights' });
    const kafka = createKafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId: `${cfg.PIONEER_KAFKA_CLIENT_ID}-insights`, log, ...kafkaSecurity(cfg) });
    const producer = createProducer(kafka);
    const topicRetentionMs = 7 * 86_400_000;
    await ensureTopics(kafka, [...cfg.PIONEER_SOURCE_TOPICS, cfg.PIONEER_DEAD_LETTER_TOPIC].map((topic) => ({ topic, retentionMs: topicRetentionMs })));
    await producer.connect();
    const tenants = createTenantStore(redis);
    const decoding = decodingOf(cfg);

    const retention = {
      m: cfg.PIONEER_INSIGHTS_MINUTE_RETENTION_HOURS * 3_600_000,
      h: cfg.PIONEER_INSIGHTS_HOUR_RETENTION_DAYS * 86_400_000,
      d: cfg.PIONEER_INSIGHTS_DAY_RETENTION_DAYS * 86_400_000,
    };
    const windowMs = cfg.PIONEER_INSIGHTS_ATTRIBUTION_SECONDS * 1000;
    const limits: JudgeLimits = {
      latenessMs: cfg.PIONEER_INSIGHTS_LATENESS_SECONDS * 1000,
      futureSkewMs: cfg.PIONEER_INSIGHTS_FUTURE_SKEW_SECONDS * 1000,
      maxCampaigns: cfg.PIONEER_INSIGHTS_MAX_CAMPAIGNS,
    };
    const settings: ApplySettings = { windowMs, retention, customerKeepMs: limits.latenessMs + windowMs, maxPerCustomer: cfg.PIONEER_INSIGHTS_MAX_PER_CUSTOMER, exactMax: cfg.PIONEER_INSIGHTS_EXACT_UP_TO };

    const counted = counter(metrics, 'pioneer_insights_events_total', 'Insights events counted', ['kind']);
    const duplicates = counter(metrics, 'pioneer_insights_duplicates_total', 'Re-delivered records skipped as already counted');
    const deadLettered = counter(metrics, 'pioneer_insights_dead_letters_total', 'Insights events sent to the dead-letter topic', ['reason']);
    const attributions = counter(metrics, 'pioneer_insights_attributions_total', 'cart.add events attributed to a clicked campaign');
    const lag = gauge(metrics, 'pioneer_insights_lag_seconds', "Age of the newest record the insights consumer applied (now minus its Kafka timestamp)", ['topic', 'partition']);
    const batchSeconds = histogram(metrics, 'pioneer_insights_batch_seconds', 'Time to apply one partition batch');

    async function deadLetter(topic: string, partition: number, letters: readonly DeadLetter[]): Promise<void> {
      if (letters.length === 0) return;
      await producer.send({
        topic: cfg.PIONEER_DEAD_LETTER_TOPIC,
        acks: -1,
        messages: letters.map(({ item, message, reason }) => ({
          key: item.record?.key ?? null,
          value: item.record?.value ?? null,
          headers: {
            ...(item.record?.headers ?? {}),
            'pioneer-error': message,
            'pioneer-error-kind': reason,
            'pioneer-dead-lettered-by': 'insights',
            'pioneer-source-topic': topic,
            'pioneer-source-partition': String(partition),
            ...(item.position ? { 'pioneer-source-offset': item.position.offset } : {}),
          },
        })),
      });
      for (const { reason } of letters) deadLettered.inc({ reason });
      for (const { item, message } of letters) log.warn({ topic, partition, offset: item.position?.offset, reason: message }, 'dead-lettered');
    }

    /** Judges and applies one tenant's records of the batch; judged again when another consumer moved its position. */
    async function applyTenant(topic: string, partition: number, tenantId: string, items: TenantItem[]): Promise<void> {
      const campaignIds = new Set<string>();
      for (const { insights } of items) if (insights !== null && !(insights instanceof Error) && insights.campaignId !== undefined) campaignIds.add(insights.campaignId);
      for (let attempt = 1; ; attempt++) {
        const [position, campaigns] = await Promise.all([readTenantPosition(redis, tenantId, { topic, partition }), knownCampaigns(redis, tenantId, [...campaignIds])]);
        const judged = judgeTenantRecords({ topic, partition, items, position, campaigns, limits, nowMs: Date.now() });
        duplicates.inc(judged.skipped);
        if (judged.records.length === 0) return;
        await deadLetter(topic, partition, judged.deadLetters);
        const outcome = await applyTenantRecords(redis, tenantId, { topic, partition }, position.next, judged.records, settings);
        if (outcome.applied) {
          for (const [kind, n] of Object.entries(judged.accepted)) counted.inc({ kind }, n);
          attributions.inc(outcome.attributed);
          return;
        }
        if (attempt >= 5) throw new Error(`insights: the position of tenant ${tenantId} on ${topic}/${partition} keeps moving under this consumer`);
        log.warn({ topic, partition, tenantId }, 'another consumer applied this partition meanwhile: judging the records again');
      }
    }

    async function handle(batch: EventBatch): Promise<void> {
      const timer = batchSeconds.startTimer();
      const byTenant = new Map<string, TenantItem[]>();
      for (const item of batch.events) {
        if (!item.position) continue; // every host gives positions; without one a record could not count once
        let event: CloudEventJson;
        try {
          event = sourceEventOf(item, batch.topic, decoding);
        } catch (err) {
          if (err instanceof MalformedRecordError) continue; // the route dead-letters what cannot be decoded
          throw err;
        }
        const tenantId = event.tenantid!;
        let list = byTenant.get(tenantId);
        if (!list) byTenant.set(tenantId, (list = []));
        // each record is read once: a batch judged again (another consumer moved the position) reuses it
        let insights: TenantItem['insights'];
        try {
          insights = insightsEventOf(event);
        } catch (err) {
          if (!(err instanceof MalformedRecordError)) throw err;
          insights = err;
        }
        list.push({ item, offset: BigInt(item.position.offset), type: event.type, time: event.time, insights });
      }
      await Promise.all([...byTenant].map(([tenantId, items]) => applyTenant(batch.topic, batch.partition, tenantId, items)));
      const stamp = Number(batch.events[batch.events.length - 1]?.record?.timestamp);
      if (Number.isFinite(stamp) && stamp > 0) lag.set({ topic: batch.topic, partition: String(batch.partition) }, Math.max(0, (Date.now() - stamp) / 1000));
      timer();
    }

    const probe = kafkaProbe(kafka);
    const app = createApp({
      name: 'insights',
      log,
      metrics,
      ready: async () => {
        const [r, kafkaUp] = await Promise.all([redisReachable(redis), probe.reachable()]);
        return { redis: r, kafka: kafkaUp };
      },
    });
    app.use('/v1/*', authenticate(tenants));
    registerInsightsApi(app, { redis, retention, maxSeriesPoints: cfg.PIONEER_INSIGHTS_MAX_SERIES_POINTS });

    return {
      name: 'insights',
      app,
      trigger: { topics: cfg.PIONEER_SOURCE_TOPICS, groupId: cfg.PIONEER_INSIGHTS_GROUP, handle },
      async close() {
        await probe.close();
        await producer.disconnect().catch(() => {});
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  },
});
