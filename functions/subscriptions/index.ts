/**
 * The subscriptions function: tenants and API keys (admin), and each tenant's subscriptions.
 * The platform team's first admin key is the PIONEER_ADMIN_KEY secret, registered at start-up (docs/api-keys.md).
 */
import { z } from 'zod';
import { commonSchema } from '../../platform/config/env.ts';
import { defineFunction } from '../../platform/runtime/contract.ts';
import { createApp, readJson } from '../../platform/http/app.ts';
import { parseOrThrow } from '../../platform/http/problem.ts';
import { HttpError } from '../../platform/errors.ts';
import { createRedis, redisReachable } from '../../platform/redis/client.ts';
import { createTenantStore } from '../../platform/store/tenants.ts';
import { createSubscriptionStore, type SubscriptionInput } from '../../platform/store/subscriptions.ts';
import { authenticate, requireAdmin, tenantOf } from '../../platform/auth/authenticate.ts';
import { looksLikeApiKey } from '../../platform/auth/api-keys.ts';
import { isId } from '../../platform/ids.ts';
import { createEndpointStore, endpointKeys } from '../../platform/webhooks/endpoints.ts';
import { assertSinkAllowed, urlPolicyEnv, urlPolicyOf } from '../../platform/webhooks/url-policy.ts';
import { keyCreateSchema, subscriptionCreateSchema, subscriptionPatchSchema, tenantCreateSchema } from './schema.ts';
import { mountSchemas } from './schemas.ts';

const config = commonSchema.pick({ PIONEER_REDIS_URL: true }).extend({
  PIONEER_ADMIN_KEY: z
    .string()
    .refine(looksLikeApiKey, 'expected pk_ followed by 20-128 letters, digits, - or _ (npm run admin-key prints one)')
    .optional(),
  PIONEER_MAX_SUBSCRIPTIONS_PER_TENANT: z.coerce.number().int().min(1).max(100000).default(1000),
  // which webhook sinks are accepted (docs/webhooks.md)
  ...urlPolicyEnv,
});

export default defineFunction({
  name: 'subscriptions',
  config,
  defaultPort: 8081,
  async create(cfg, { log, metrics }) {
    const redis = createRedis(cfg.PIONEER_REDIS_URL, { name: 'subscriptions' });
    const tenants = createTenantStore(redis);
    const subs = createSubscriptionStore(redis);
    const endpoints = createEndpointStore(redis);
    const sinkPolicy = urlPolicyOf(cfg);
    if (cfg.PIONEER_ADMIN_KEY) {
      const rec = await tenants.ensureAdminKey(cfg.PIONEER_ADMIN_KEY);
      log.info({ keyId: rec.id }, 'admin key registered');
    }

    const app = createApp({ name: 'subscriptions', log, metrics, ready: async () => ({ redis: await redisReachable(redis) }) });
    app.use('/v1/*', authenticate(tenants));
    mountSchemas(app, redis);

    app.post('/v1/tenants', async (c) => {
      requireAdmin(c.get('auth'));
      const body = parseOrThrow(tenantCreateSchema, await readJson(c));
      const { tenant, key } = await tenants.createTenant(body.name);
      return c.json({ ...tenant, key }, 201);
    });

    app.get('/v1/tenants', async (c) => {
      requireAdmin(c.get('auth'));
      return c.json({ data: await tenants.listTenants() });
    });

    app.post('/v1/tenants/:id/keys', async (c) => {
      const auth = c.get('auth');
      const id = c.req.param('id');
      // an admin may add keys to any tenant; a tenant administrator to its own; anybody else sees 404
      if (auth.role !== 'admin' && !(auth.role === 'tenant' && auth.tenantId === id)) throw HttpError.notFound('tenant');
      if (!isId('ten', id) || !(await tenants.getTenant(id))) throw HttpError.notFound('tenant');
      const body = parseOrThrow(keyCreateSchema, await readJson(c));
      return c.json(await tenants.createKey(id, body.role), 201);
    });

    app.delete('/v1/keys/:id', async (c) => {
      const auth = c.get('auth');
      const id = c.req.param('id');
      const key = isId('key', id) ? await tenants.getKey(id) : null;
      const allowed = key && (auth.role === 'admin' || (auth.role === 'tenant' && key.tenant_id === auth.tenantId));
      if (!key || !allowed) throw HttpError.notFound('key');
      await tenants.deleteKey(id);
      return c.body(null, 204);
    });

    app.post('/v1/subscriptions', async (c) => {
      const t = tenantOf(c.get('auth'), ['tenant']);
      const input = parseOrThrow(subscriptionCreateSchema, await readJson(c)) as SubscriptionInput;
      if (input.sink) await assertSinkAllowed(input.sink, sinkPolicy);
      const existing = await subs.list(t.tenantId);
      if (existing.length >= cfg.PIONEER_MAX_SUBSCRIPTIONS_PER_TENANT)
        throw new HttpError(409, 'too_many_subscriptions', `a tenant may have at most ${cfg.PIONEER_MAX_SUBSCRIPTIONS_PER_TENANT} subscriptions`);
      const sub = await subs.create(t.tenantId, input);
      // the webhook endpoint (its signing secret: GET /v1/subscriptions/{id}/endpoint/secret) delivers from the start
      if (sub.sink) await endpoints.ensure(t.tenantId, sub.id, 'start');
      return c.json(sub, 201, { location: `/v1/subscriptions/${sub.id}` });
    });

    app.get('/v1/subscriptions', async (c) => {
      const t = tenantOf(c.get('auth'), ['tenant', 'consumer']);
      return c.json({ data: await subs.list(t.tenantId) });
    });

    app.get('/v1/subscriptions/:id', async (c) => {
      const t = tenantOf(c.get('auth'), ['tenant', 'consumer']);
      const id = c.req.param('id');
      const sub = isId('sub', id) ? await subs.get(t.tenantId, id) : null;
      if (!sub) throw HttpError.notFound('subscription');
      return c.json(sub);
    });

    app.patch('/v1/subscriptions/:id', async (c) => {
      const t = tenantOf(c.get('auth'), ['tenant']);
      const id = c.req.param('id');
      if (!isId('sub', id) || !(await subs.get(t.tenantId, id))) throw HttpError.notFound('subscription');
      const patch = parseOrThrow(subscriptionPatchSchema, await readJson(c));
      if (patch.sink) {
        await assertSinkAllowed(patch.sink, sinkPolicy);
        // before the sink is visible: a sink set later delivers the events that come after it
        await endpoints.ensure(t.tenantId, id, 'end');
      }
      const set: Partial<SubscriptionInput> = {};
      const unset: (keyof SubscriptionInput)[] = [];
      for (const [k, v] of Object.entries(patch) as [keyof SubscriptionInput, unknown][]) {
        if (v === null) unset.push(k);
        else (set as Record<string, unknown>)[k] = v;
      }
      const sub = await subs.update(t.tenantId, id, set, unset);
      if (!sub) throw HttpError.notFound('subscription');
      if (patch.sink === null) await endpoints.removeEndpoint(t.tenantId, id);
      return c.json(sub);
    });

    app.delete('/v1/subscriptions/:id', async (c) => {
      const t = tenantOf(c.get('auth'), ['tenant']);
      const id = c.req.param('id');
      // the endpoint goes in the same transaction: a crash cannot leave its keys behind
      if (!isId('sub', id) || !(await subs.delete(t.tenantId, id, endpointKeys(t.tenantId, id)))) throw HttpError.notFound('subscription');
      return c.body(null, 204);
    });

    return {
      name: 'subscriptions',
      app,
      async close() {
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  },
});
