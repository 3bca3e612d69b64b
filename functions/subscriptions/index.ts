/**
 * The subscriptions function: tenants and API keys (admin), and each tenant's subscriptions; and the customer
 * portal at /portal, the page that calls this API on the same origin (./portal.ts, docs/portal.md).
 * The platform team's first admin key is the PIONEER_ADMIN_KEY secret, registered at start-up (docs/api-keys.md).
 */
import { z } from 'zod';
import { commonSchema, REDIS_VARIABLES, requireRedis } from '../../platform/config/env.ts';
import { defineFunction } from '../../platform/runtime/contract.ts';
import { createApp, readJson } from '../../platform/http/app.ts';
import { parseOrThrow } from '../../platform/http/problem.ts';
import { HttpError } from '../../platform/errors.ts';
import { createRedis, redisReachable } from '../../platform/redis/client.ts';
import { createTenantStore } from '../../platform/store/tenants.ts';
import { createSubscriptionStore, type SubscriptionInput } from '../../platform/store/subscriptions.ts';
import { authenticate, requireAdmin, tenantOf } from '../../platform/auth/authenticate.ts';
import { loadSubscription, READ_ROLES, requireTenant, WRITE_ROLES } from '../../platform/http/tenant-scope.ts';
import { looksLikeApiKey } from '../../platform/auth/api-keys.ts';
import { isId } from '../../platform/ids.ts';
import { createSecretBox, secretKeysEnv } from '../../platform/crypto/secret-box.ts';
import { createEndpointStore, endpointKeys } from '../../platform/webhooks/endpoints.ts';
import { assertSinkAllowed, urlPolicyEnv, urlPolicyOf } from '../../platform/webhooks/url-policy.ts';
import { keyCreateSchema, subscriptionCreateSchema, subscriptionPatchSchema, tenantCreateSchema } from './schema.ts';
import { mountSchemas } from './schemas.ts';
import { mountPortal } from './portal.ts';

const config = commonSchema.pick(REDIS_VARIABLES).extend({
  PIONEER_ADMIN_KEY: z
    .string()
    .refine(looksLikeApiKey, 'expected pk_ followed by 20-128 letters, digits, - or _ (npm run admin-key prints one)')
    .optional(),
  PIONEER_MAX_SUBSCRIPTIONS_PER_TENANT: z.coerce.number().int().min(1).max(100000).default(1000),
  // which webhook sinks are accepted (docs/webhooks.md)
  ...urlPolicyEnv,
  // the keys a new endpoint's secret is sealed with (platform/crypto/secret-box.ts)
  ...secretKeysEnv,
}).refine(...requireRedis);

export default defineFunction({
  name: 'subscriptions',
  config,
  defaultPort: 8081,
  async create(cfg, { log, metrics }) {
    const redis = createRedis(cfg, { name: 'subscriptions' });
    const tenants = createTenantStore(redis);
    const subs = createSubscriptionStore(redis);
    const endpoints = createEndpointStore(redis, createSecretBox(cfg.PIONEER_SECRET_KEYS));
    const sinkPolicy = urlPolicyOf(cfg);
    if (cfg.PIONEER_ADMIN_KEY) {
      const rec = await tenants.ensureAdminKey(cfg.PIONEER_ADMIN_KEY);
      log.info({ keyId: rec.id }, 'admin key registered');
    }

    const app = createApp({ name: 'subscriptions', log, metrics, ready: async () => ({ redis: await redisReachable(redis) }) });
    app.use('/v1/*', authenticate(tenants));
    mountSchemas(app, redis);
    mountPortal(app, log);

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
      // an admin may add keys to any tenant and a tenant administrator to its own; a consumer key of the tenant is
      // refused (403); any other tenant's id answers 404
      if (auth.role !== 'admin' && auth.tenantId !== id) throw HttpError.notFound('tenant');
      if (!isId('ten', id) || !(await tenants.getTenant(id))) throw HttpError.notFound('tenant');
      if (auth.role !== 'admin') tenantOf(auth, WRITE_ROLES);
      const body = parseOrThrow(keyCreateSchema, await readJson(c));
      return c.json(await tenants.createKey(id, body.role), 201);
    });

    // the calling key itself: what a client (the portal) shows and offers for it, without guessing from refusals
    app.get('/v1/keys/current', (c) => {
      const auth = c.get('auth');
      return c.json({ id: auth.keyId, role: auth.role, tenant_id: auth.tenantId });
    });

    app.delete('/v1/keys/:id', async (c) => {
      const auth = c.get('auth');
      const id = c.req.param('id');
      const key = isId('key', id) ? await tenants.ownedKey(id, { tenantId: auth.role === 'admin' ? null : auth.tenantId }) : null;
      if (!key) throw HttpError.notFound('key');
      if (auth.role !== 'admin') tenantOf(auth, WRITE_ROLES);
      if (!(await tenants.revokeKey(key))) throw HttpError.notFound('key');
      return c.body(null, 204);
    });

    app.post('/v1/subscriptions', requireTenant(WRITE_ROLES), async (c) => {
      const t = c.var.tenant;
      const input = parseOrThrow(subscriptionCreateSchema, await readJson(c)) as SubscriptionInput;
      if (input.sink) await assertSinkAllowed(input.sink, sinkPolicy);
      const result = await subs.create(t.tenantId, input, cfg.PIONEER_MAX_SUBSCRIPTIONS_PER_TENANT);
      if ('limitReached' in result)
        throw new HttpError(409, 'too_many_subscriptions', `a tenant may have at most ${result.limitReached} subscriptions`);
      const sub = result.created;
      // the webhook endpoint (its signing secret: GET /v1/subscriptions/{id}/endpoint/secret) delivers from the start
      if (sub.sink) await endpoints.ensure(t.tenantId, sub.id, 'start');
      return c.json(sub, 201, { location: `/v1/subscriptions/${sub.id}` });
    });

    app.get('/v1/subscriptions', requireTenant(READ_ROLES), async (c) => {
      return c.json({ data: await subs.list(c.var.tenant.tenantId) });
    });

    app.get('/v1/subscriptions/:id', loadSubscription(subs, READ_ROLES), (c) => c.json(c.var.subscription));

    app.patch('/v1/subscriptions/:id', loadSubscription(subs, WRITE_ROLES), async (c) => {
      const { tenant: t, subscription: current } = c.var;
      const patch = parseOrThrow(subscriptionPatchSchema, await readJson(c));
      if (patch.sink) {
        await assertSinkAllowed(patch.sink, sinkPolicy);
        // before the sink is visible: a sink set later delivers the events that come after it
        await endpoints.ensure(t.tenantId, current.id, 'end');
      }
      const set: Partial<SubscriptionInput> = {};
      const unset: (keyof SubscriptionInput)[] = [];
      for (const [k, v] of Object.entries(patch) as [keyof SubscriptionInput, unknown][]) {
        if (v === null) unset.push(k);
        else (set as Record<string, unknown>)[k] = v;
      }
      const sub = await subs.update(t.tenantId, current.id, set, unset);
      if (!sub) {
        // deleted while this change was on its way: nothing of it may outlive the subscription
        if (patch.sink) await endpoints.removeEndpoint(t.tenantId, current.id);
        throw HttpError.notFound('subscription');
      }
      if (patch.sink === null) await endpoints.removeEndpoint(t.tenantId, current.id);
      return c.json(sub);
    });

    app.delete('/v1/subscriptions/:id', loadSubscription(subs, WRITE_ROLES), async (c) => {
      const { tenant: t, subscription: sub } = c.var;
      // the endpoint goes in the same transaction: a crash cannot leave its keys behind
      if (!(await subs.delete(t.tenantId, sub.id, endpointKeys(t.tenantId, sub.id)))) throw HttpError.notFound('subscription');
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
