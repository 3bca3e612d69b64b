/**
 * The deliver function: pushes each subscription's events to its webhook `sink`, signed (Standard Webhooks),
 * in order, one at a time per endpoint and many endpoints at once, retrying on a schedule that spans more
 * than 72 h, then dead-lettering (docs/webhooks.md). Its API shows attempts and dead letters, replays dead
 * letters, and manages the endpoint (api.ts). Several instances share the endpoints through leases (lanes.ts).
 */
import { createFlowCounter } from '../../platform/insights/flow.ts';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import { commonSchema, env, requireRedis } from '../../platform/config/env.ts';
import { coldReadsSchema, sourceSchema } from '../../platform/config/source.ts';
import { tieredStreamsFor } from '../../platform/tiers/cold-reader.ts';
import { defineFunction } from '../../platform/runtime/contract.ts';
import { createApp } from '../../platform/http/app.ts';
import { createRedis, redisReachable } from '../../platform/redis/client.ts';
import { createTenantStore } from '../../platform/store/tenants.ts';
import { createSubscriptionStore } from '../../platform/store/subscriptions.ts';
import { authenticate } from '../../platform/auth/authenticate.ts';
import { counter, gauge, histogram } from '../../platform/telemetry/metrics.ts';
import { createSecretBox, secretKeysEnv } from '../../platform/crypto/secret-box.ts';
import { createEndpointStore } from '../../platform/webhooks/endpoints.ts';
import { DEFAULT_RETRY_SCHEDULE, retryScheduleEnv } from '../../platform/webhooks/retry-delay.ts';
import { urlPolicyEnv, urlPolicyOf } from '../../platform/webhooks/url-policy.ts';
import { createSender } from './send.ts';
import { createDeliveryPipeline } from './pipeline.ts';
import { createLaneScheduler } from './lanes.ts';
import { mountDeliverApi } from './api.ts';

const config = commonSchema.extend({
  // an endpoint far behind gets events older than the hot window derived again from the source topics
  ...sourceSchema.shape,
  ...coldReadsSchema.shape,
  ...urlPolicyEnv,
  // the keys endpoint secrets are sealed with: deliver opens them to sign (platform/crypto/secret-box.ts)
  ...secretKeysEnv,
  PIONEER_DELIVER_RETRY_SCHEDULE: retryScheduleEnv(DEFAULT_RETRY_SCHEDULE),
  PIONEER_DELIVER_RETRY_JITTER: z.coerce.number().min(0).max(1).default(0.2),
  PIONEER_DELIVER_MAX_RETRY_AFTER_MS: env.int(0, 7 * 86_400_000).default(86_400_000),
  PIONEER_DELIVER_TIMEOUT_MS: env.int(100, 300_000).default(15_000),
  // requests in flight at once to one host (its endpoints share the connections; each endpoint has one at most)
  PIONEER_DELIVER_CONNECTIONS_PER_HOST: env.int(1, 10_000).default(32),
  PIONEER_DELIVER_POLL_MS: env.int(5, 60_000).default(100),
  PIONEER_DELIVER_IDLE_POLL_MAX_MS: env.int(5, 60_000).default(500),
  PIONEER_DELIVER_RECHECK_MS: env.int(10, 60_000).default(1000),
  PIONEER_DELIVER_LEASE_MS: env.int(300, 600_000).default(30_000),
  PIONEER_DELIVER_CLAIM_MS: env.int(10, 600_000).default(2000),
  PIONEER_DELIVER_MAX_ENDPOINTS: env.int(1, 1_000_000).default(10_000),
  // an endpoint's next events read at once and held until sent: fewer reads; a lane holds at most 64 KiB of them (or one)
  PIONEER_DELIVER_READ_AHEAD: env.int(1, 1000).default(8),
  PIONEER_DELIVER_ATTEMPTS_KEPT: env.int(1, 10_000).default(100),
  PIONEER_DELIVER_DEAD_LETTERS_MAX: env.int(100, 10_000_000).default(100_000),
  PIONEER_DELIVER_REPLAY_MAX: env.int(1, 1_000_000).default(10_000),
  PIONEER_WEBHOOK_SECRET_OVERLAP_MS: env.int(0, 30 * 86_400_000).default(86_400_000),
  PIONEER_SUBSCRIPTION_POLL_MS: env.int(10, 60000).default(250),
}).refine(...requireRedis);
export type DeliverConfig = z.infer<typeof config>;

export default defineFunction({
  name: 'deliver',
  config,
  defaultPort: 8084,
  async create(cfg, { log, metrics }) {
    // many lanes call Redis at once: the client sends what they ask in one tick as one write
    const redis = createRedis(cfg, { name: 'deliver', enableAutoPipelining: true });
    const tenants = createTenantStore(redis);
    const subs = createSubscriptionStore(redis);
    // each endpoint's secrets are read on every poll: remember the opened ones of every endpoint it may work
    const box = createSecretBox(cfg.PIONEER_SECRET_KEYS, { memo: 2 * cfg.PIONEER_DELIVER_MAX_ENDPOINTS + 1000 });
    const endpoints = createEndpointStore(redis, box);
    const owner = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
    const sender = createSender({ policy: urlPolicyOf(cfg), timeoutMs: cfg.PIONEER_DELIVER_TIMEOUT_MS, connectionsPerHost: cfg.PIONEER_DELIVER_CONNECTIONS_PER_HOST });
    const flow = createFlowCounter(redis, 'delivered');
    const pipeline = createDeliveryPipeline({
      endpoints,
      sender,
      flow,
      log: log.child({ component: 'delivery' }),
      cfg: {
        schedule: cfg.PIONEER_DELIVER_RETRY_SCHEDULE,
        jitter: cfg.PIONEER_DELIVER_RETRY_JITTER,
        maxRetryAfterMs: cfg.PIONEER_DELIVER_MAX_RETRY_AFTER_MS,
        attemptsKept: cfg.PIONEER_DELIVER_ATTEMPTS_KEPT,
        deadLettersMax: cfg.PIONEER_DELIVER_DEAD_LETTERS_MAX,
      },
      metrics: {
        attempts: counter(metrics, 'pioneer_deliver_attempts_total', 'Webhook delivery attempts by outcome', ['outcome']),
        latency: histogram(metrics, 'pioneer_deliver_latency_seconds', 'Webhook request duration, by outcome', ['outcome'], [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30]),
        deadLetters: counter(metrics, 'pioneer_deliver_dead_letters_total', 'Events moved to dead letters after their retry schedule'),
      },
    });
    const tiered = tieredStreamsFor(cfg, { redis, store: subs, log, metrics, user: 'deliver' });
    const scheduler = createLaneScheduler({
      tiered,
      store: subs,
      endpoints,
      pipeline,
      owner,
      log: log.child({ component: 'lanes' }),
      timings: {
        subscriptionPollMs: cfg.PIONEER_SUBSCRIPTION_POLL_MS,
        pollMs: cfg.PIONEER_DELIVER_POLL_MS,
        idlePollMaxMs: cfg.PIONEER_DELIVER_IDLE_POLL_MAX_MS,
        recheckMs: cfg.PIONEER_DELIVER_RECHECK_MS,
        leaseMs: cfg.PIONEER_DELIVER_LEASE_MS,
        claimMs: cfg.PIONEER_DELIVER_CLAIM_MS,
        maxEndpoints: cfg.PIONEER_DELIVER_MAX_ENDPOINTS,
        errorBackoffMs: cfg.PIONEER_DELIVER_RECHECK_MS,
        readAhead: cfg.PIONEER_DELIVER_READ_AHEAD,
      },
    });
    const held = gauge(metrics, 'pioneer_deliver_endpoints_held', 'Webhook endpoints this instance works');
    const disabled = gauge(metrics, 'pioneer_deliver_endpoints_disabled', 'Disabled webhook endpoints among those this instance works');
    const gauges = setInterval(() => {
      held.set(scheduler.held());
      disabled.set(scheduler.disabled());
    }, 1000);
    gauges.unref();

    const app = createApp({ name: 'deliver', log, metrics, ready: async () => ({ redis: await redisReachable(redis) }) });
    app.use('/v1/*', authenticate(tenants));
    mountDeliverApi(app, {
      subs,
      endpoints,
      attemptsKept: cfg.PIONEER_DELIVER_ATTEMPTS_KEPT,
      secretOverlapMs: cfg.PIONEER_WEBHOOK_SECRET_OVERLAP_MS,
      replayMax: cfg.PIONEER_DELIVER_REPLAY_MAX,
    });

    await scheduler.start();
    log.info({ owner }, 'deliver started');

    return {
      name: 'deliver',
      app,
      async close() {
        clearInterval(gauges);
        await scheduler.stop();
        await tiered.close();
        sender.close();
        await flow.close();
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  },
});
