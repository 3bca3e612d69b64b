/**
 * The ingest function: CloudEvents over HTTP (structured, binary and batch modes) into the source topic.
 *
 *   POST /v1/events        tenant keys only; 202 once Kafka acknowledged every new event (acks from all in-sync
 *                          replicas, idempotent producer), binary mode, keyed by `partitionkey`
 *   GET  /v1/events/{id}   what is known of an ingested event id of the caller's tenant (dedup window)
 *
 * Steps of a POST: read and validate the events, keeping each one's JSON text (received.ts) -> tenant (added at the
 * end of the text when absent, 403 when another)
 * -> rate limit (token bucket per tenant, platform/ingest/rate-limit.ts) -> `data` against the type's latest registered
 * JSON Schema -> reserve each (source, id) once in the dedup window (platform/ingest/dedup.ts) -> produce the new
 * ones, each as the text it arrived as (numbers exact, members in their order) -> record topic/partition/offset for
 * GET and for later duplicates. The parsed events (JSON.parse: numbers as doubles) serve the checks only.
 * A batch is all-or-nothing up to Kafka: one invalid event refuses the batch and nothing is produced (docs/ingest.md).
 * Redis or Kafka away: 503 `redis_unavailable` / `kafka_unavailable` with Retry-After, Kafka's within
 * PIONEER_INGEST_PRODUCE_TIMEOUT_MS; a retry with the same events produces each once (docs/disaster-recovery.md).
 */
import { z } from 'zod';
import type { Message } from 'kafkajs';
import { commonSchema, env, requireRedis } from '../../platform/config/env.ts';
import { defineFunction } from '../../platform/runtime/contract.ts';
import { createApp } from '../../platform/http/app.ts';
import { asDependencyUnavailable, DependencyUnavailableError, HttpError, PioneerError, type ProblemField } from '../../platform/errors.ts';
import { createRedis, type PioneerRedis, redisReachable } from '../../platform/redis/client.ts';
import { lookupEvent, recordEvents, releaseEvents, reserveEvents, type EventRef, type IngestRecord } from '../../platform/ingest/dedup.ts';
import { takeTokens as takeBucketTokens } from '../../platform/ingest/rate-limit.ts';
import { createKafka, ensureTopics, kafkaProbe, kafkaSecurity } from '../../platform/kafka/client.ts';
import { encodeStructured } from '../../platform/events/kafka-binding.ts';
import type { CloudEventJson } from '../../platform/events/cloudevent.ts';
import { createTenantStore } from '../../platform/store/tenants.ts';
import { authenticate, tenantOf, type TenantContext } from '../../platform/auth/authenticate.ts';
import { READ_ROLES, requireTenant } from '../../platform/http/tenant-scope.ts';
import { createSchemaRegistry, createValidatorCache } from '../../platform/schemas/registry.ts';
import { describeErrors } from '../../platform/schemas/json-schema.ts';
import { counter, histogram } from '../../platform/telemetry/metrics.ts';
import { fieldOf, type CloudEventsMode as IngestMode } from '../../platform/http/cloudevents-request.ts';
import { withMember } from '../../platform/events/event-text.ts';
import { readReceivedEvents } from './received.ts';
import { createIngestProducer, ingestKafkaSettings, ProduceTimeoutError, type Position } from './producer.ts';

const config = commonSchema
  .extend({
    PIONEER_INGEST_TOPIC: z.string().min(1).default('pioneer.events'),
    PIONEER_INGEST_TOPIC_PARTITIONS: env.int(1, 10000).default(4),
    PIONEER_INGEST_MAX_BODY_BYTES: env.int(256, 64 * 1024 * 1024).default(1024 * 1024),
    PIONEER_INGEST_MAX_BATCH: env.int(1, 100000).default(500),
    PIONEER_INGEST_RATE_PER_SECOND: env.int(1, 100_000_000).default(5000),
    PIONEER_INGEST_RATE_BURST: env.int(1, 100_000_000).default(10000),
    PIONEER_INGEST_DEDUP_WINDOW_SECONDS: env.int(1, 90 * 86400).default(86400),
    PIONEER_INGEST_PRODUCE_TIMEOUT_MS: env.int(100, 300000).default(10000),
    PIONEER_INGEST_PRODUCE_MAX_BYTES: env.int(1024, 64 * 1024 * 1024).default(1024 * 1024),
    PIONEER_INGEST_SCHEMA_CACHE_SIZE: env.int(1, 1_000_000).default(1000),
  })
  .superRefine((cfg, ctx) => {
    if (cfg.PIONEER_INGEST_RATE_BURST < cfg.PIONEER_INGEST_MAX_BATCH)
      ctx.addIssue({ code: 'custom', path: ['PIONEER_INGEST_RATE_BURST'], message: 'must be at least PIONEER_INGEST_MAX_BATCH, or a full batch could never pass' });
  })
  .refine(...requireRedis);
export type IngestConfig = z.infer<typeof config>;

export interface IngestResult {
  id: string;
  source: string;
  /** True when this (source, id) was ingested before within the dedup window: nothing was produced again. */
  duplicate: boolean;
  topic: string;
  partition: number;
  offset: string;
  accepted_at: string;
}

export default defineFunction({
  name: 'ingest',
  config,
  defaultPort: 8086,
  async create(cfg, { log, metrics }) {
    const redis: PioneerRedis = createRedis(cfg, { name: 'ingest' });
    const tenants = createTenantStore(redis);
    const schemas = createSchemaRegistry(redis);
    const validators = createValidatorCache(schemas, cfg.PIONEER_INGEST_SCHEMA_CACHE_SIZE);
    const kafkaSettings = ingestKafkaSettings(cfg.PIONEER_INGEST_PRODUCE_TIMEOUT_MS);
    const kafka = createKafka({ brokers: cfg.PIONEER_KAFKA_BROKERS, clientId: `${cfg.PIONEER_KAFKA_CLIENT_ID}-ingest`, log, ...kafkaSecurity(cfg), ...kafkaSettings.client });
    const topic = cfg.PIONEER_INGEST_TOPIC;
    await ensureTopics(kafka, [{ topic, numPartitions: cfg.PIONEER_INGEST_TOPIC_PARTITIONS }]);
    const producer = createIngestProducer(kafka, {
      topic, timeoutMs: cfg.PIONEER_INGEST_PRODUCE_TIMEOUT_MS, maxBytes: cfg.PIONEER_INGEST_PRODUCE_MAX_BYTES, retry: kafkaSettings.retry,
    });
    await producer.connect();

    const eventsTotal = counter(metrics, 'pioneer_ingest_events_total', 'Events accepted by ingest (result: accepted | duplicate)', ['result']);
    const refusedTotal = counter(metrics, 'pioneer_ingest_refused_events_total', 'Events refused by ingest, by reason (the problem code)', ['reason']);
    const produceSeconds = histogram(metrics, 'pioneer_ingest_produce_seconds', 'Time from produce to Kafka acknowledgement, per request');
    // a reservation holds while its events may wait for a send (up to the timeout) and the send goes on (its bound)
    const leaseMs = cfg.PIONEER_INGEST_PRODUCE_TIMEOUT_MS + kafkaSettings.sendBoundMs;
    const windowSeconds = cfg.PIONEER_INGEST_DEDUP_WINDOW_SECONDS;

    const probe = kafkaProbe(kafka);
    const app = createApp({
      name: 'ingest',
      log,
      metrics,
      // the producer's own state says connected while the brokers are gone: a metadata request answers for them
      ready: async () => {
        const [r, kafkaUp] = await Promise.all([redisReachable(redis), probe.reachable()]);
        return { redis: r, kafka: producer.connected && kafkaUp };
      },
    });
    app.use('/v1/*', authenticate(tenants));

    /**
     * Sets the caller's tenant on events without one (the last member of their text; the rest of it untouched);
     * 403 naming `tenantid` for an event of another tenant.
     */
    function claimTenant(t: TenantContext, events: CloudEventJson[], texts: string[], mode: IngestMode): void {
      const errors: ProblemField[] = [];
      events.forEach((e, i) => {
        if (e.tenantid === undefined) {
          e.tenantid = t.tenantId;
          texts[i] = withMember(texts[i]!, 'tenantid', t.tenantId);
        }
        else if (e.tenantid !== t.tenantId) errors.push({ field: fieldOf(mode, i, 'tenantid'), message: "names another tenant than the API key's" });
      });
      if (errors.length)
        throw new HttpError(403, 'tenant_mismatch', `${errors[0]!.field}: an event may only name the API key's own tenant (or leave tenantid out)`, { errors });
    }

    async function takeTokens(t: TenantContext, n: number): Promise<void> {
      const took = await takeBucketTokens(redis, { tenantId: t.tenantId, ratePerSecond: cfg.PIONEER_INGEST_RATE_PER_SECOND, burst: cfg.PIONEER_INGEST_RATE_BURST, wanted: n });
      if (took.taken) return;
      const value = took.retryAfterMs;
      const seconds = Math.max(1, Math.ceil(value / 1000));
      throw new HttpError(429, 'rate_limited', `this tenant may ingest ${cfg.PIONEER_INGEST_RATE_PER_SECOND} events/s (bursts of ${cfg.PIONEER_INGEST_RATE_BURST}); retry after ${seconds} s`, {
        headers: { 'retry-after': String(seconds) },
        extra: { retry_after_ms: value },
      });
    }

    /** Validates each event's data against the latest registered schema of its type (when there is one). */
    async function checkSchemas(t: TenantContext, events: CloudEventJson[], mode: IngestMode): Promise<void> {
      const latest = await schemas.latestVersions(t.tenantId, [...new Set(events.map((e) => e.type))]);
      if (latest.size === 0) return;
      const errors: ProblemField[] = [];
      for (const [i, e] of events.entries()) {
        const version = latest.get(e.type);
        if (version === undefined) continue;
        const validate = await validators.get(t.tenantId, e.type, version);
        if (!validate) continue;
        const at = (field: string) => fieldOf(mode, i, field);
        if (e.data_base64 !== undefined) {
          errors.push({ field: at('data_base64'), message: `type ${e.type} has a JSON Schema (v${version}): send JSON data` });
        } else if (e.data === undefined) {
          errors.push({ field: at('data'), message: `is required: type ${e.type} has a JSON Schema (v${version})` });
        } else if (!validate(e.data)) {
          // `data.amount` (the body's `amount` in binary mode), `[3].data.amount` in a batch
          const root = mode === 'batch' ? at('data') : 'data';
          for (const f of describeErrors(validate.errors ?? [], root)) errors.push({ field: f.field, message: `${f.message} (schema of ${e.type} v${version})` });
        }
        if (errors.length >= 20) break;
      }
      if (errors.length) throw new HttpError(400, 'schema_violation', `${errors[0]!.field}: ${errors[0]!.message}`, { errors });
    }

    /** Reserves, produces and records the events; duplicates within the window are answered from their record. */
    async function ingest(t: TenantContext, events: CloudEventJson[], texts: string[], mode: IngestMode): Promise<IngestResult[]> {
      // the first occurrence of each (source, id) in the request is the one that may be produced
      const first = new Map<string, number>();
      events.forEach((e, i) => {
        const k = `${e.source}\u0000${e.id}`;
        if (!first.has(k)) first.set(k, i);
      });
      const unique = [...first.values()];
      const refOf = (i: number): EventRef => ({ id: events[i]!.id, source: events[i]!.source });
      // Redis going away in the middle of the reservations throws (the ones made are given back): retried whole
      const reservations = await reserveEvents(redis, { tenantId: t.tenantId, events: unique.map(refOf), leaseMs, windowSeconds });
      const existing = new Map<number, IngestRecord>();
      const reserved: number[] = [];
      const inFlight: ProblemField[] = [];
      unique.forEach((i, n) => {
        const r = reservations[n]!;
        if (r.status === 'reserved') reserved.push(i);
        else if (r.status === 'pending') inFlight.push({ field: fieldOf(mode, i, 'id'), message: 'this (source, id) is being ingested by another request right now' });
        else existing.set(i, r.record);
      });
      const release = async () => {
        await releaseEvents(redis, { tenantId: t.tenantId, events: reserved.map(refOf) }).catch((err) =>
          log.warn({ err }, 'releasing ingest reservations failed; they lapse after their lease'),
        );
      };
      if (inFlight.length) {
        await release();
        throw new HttpError(409, 'duplicate_in_flight', `${inFlight[0]!.field}: ${inFlight[0]!.message}; retry shortly to learn its outcome`, {
          errors: inFlight,
          headers: { 'retry-after': '1' },
        });
      }

      /** Replaces the reservations with the records of where Kafka put the events. */
      const recordPositions = async (positions: Position[]): Promise<Map<number, IngestRecord>> => {
        const acceptedAt = new Date().toISOString();
        const out = new Map<number, IngestRecord>();
        reserved.forEach((i, n) => {
          const { partition, offset } = positions[n]!;
          const e = events[i]!;
          out.set(i, { id: e.id, source: e.source, type: e.type, accepted_at: acceptedAt, topic, partition, offset });
        });
        await recordEvents(redis, { tenantId: t.tenantId, records: [...out.values()] }).catch((err) =>
          log.warn({ err }, 'recording ingested events failed; their dedup entries lapse after the lease'),
        );
        return out;
      };

      let records = new Map<number, IngestRecord>();
      if (reserved.length) {
        const messages = reserved.map((i) => encodeStructured(events[i]!, texts[i]) as Message);
        const timer = produceSeconds.startTimer();
        let positions: Position[];
        try {
          positions = await producer.send(messages);
        } catch (err) {
          if (err instanceof ProduceTimeoutError && err.outcome) {
            // The send is in flight and Kafka may still take the events: releasing now would let a retry write them
            // a second time. The reservations stay (a retry meanwhile answers 409 duplicate_in_flight) until the
            // send ends, well within their lease: then they become records (a retry is answered as a duplicate)
            // or are released (a retry produces the events).
            log.warn({ topic, events: messages.length }, 'produce past its deadline; the reservations wait for its outcome');
            void err.outcome.then(recordPositions, async (cause: unknown) => {
              log.warn({ err: cause, topic, events: messages.length }, 'produce failed after its deadline; releasing the reservations');
              await release();
            });
            throw err;
          }
          await release();
          const outage = asDependencyUnavailable(err);
          if (!outage) log.error({ err, topic, events: messages.length }, 'produce failed');
          throw (
            outage ??
            new DependencyUnavailableError('kafka', 'the events could not be written to Kafka; retry the same request (nothing was recorded as ingested)', { cause: err })
          );
        } finally {
          timer();
        }
        records = await recordPositions(positions);
      }

      return events.map((e, i) => {
        const firstIndex = first.get(`${e.source}\u0000${e.id}`)!;
        const own = firstIndex === i ? records.get(i) : undefined;
        const record = own ?? records.get(firstIndex) ?? existing.get(firstIndex)!;
        return {
          id: e.id,
          source: e.source,
          duplicate: own === undefined,
          topic: record.topic,
          partition: record.partition,
          offset: record.offset,
          accepted_at: record.accepted_at,
        };
      });
    }

    app.post('/v1/events', async (c) => {
      const seen = { count: 1 };
      try {
        const t = tenantOf(c.get('auth'), ['tenant']);
        const limits = { maxBodyBytes: cfg.PIONEER_INGEST_MAX_BODY_BYTES, maxBatch: cfg.PIONEER_INGEST_MAX_BATCH };
        const { mode, events, texts } = await readReceivedEvents(c, limits, seen);
        claimTenant(t, events, texts, mode);
        await takeTokens(t, events.length);
        await checkSchemas(t, events, mode);
        const results = await ingest(t, events, texts, mode);
        const duplicates = results.filter((r) => r.duplicate).length;
        eventsTotal.inc({ result: 'accepted' }, results.length - duplicates);
        if (duplicates) eventsTotal.inc({ result: 'duplicate' }, duplicates);
        return c.json({ accepted: results.length - duplicates, duplicates, events: results }, 202);
      } catch (err) {
        refusedTotal.inc({ reason: err instanceof PioneerError ? err.code : (asDependencyUnavailable(err)?.code ?? 'internal') }, seen.count);
        throw err;
      }
    });

    app.get('/v1/events/:id', requireTenant(READ_ROLES), async (c) => {
      const t = c.var.tenant;
      const id = c.req.param('id') ?? '';
      const source = c.req.query('source');
      const { entries: data, rememberedUntilMs } = await lookupEvent(redis, { tenantId: t.tenantId, id, source });
      if (data.length === 0) throw HttpError.notFound('ingested event');
      return c.json({ id, data, ...(rememberedUntilMs !== null ? { remembered_until: new Date(rememberedUntilMs).toISOString() } : {}) });
    });

    return {
      name: 'ingest',
      app,
      async close() {
        await probe.close();
        await producer.disconnect().catch(() => {});
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  },
});
