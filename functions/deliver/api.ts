/**
 * The deliver function's API, under /v1 (authenticated): a subscription's delivery attempts and dead letters,
 * dead-letter replay, and its webhook endpoint (state, enable/disable, signing secret and its rotation).
 * A tenant key may change things; a consumer key may read attempts, dead letters and the endpoint's state.
 * Another tenant's subscription (and any malformed id) answers 404.
 */
import type { Context } from 'hono';
import type { App } from '../../platform/http/app.ts';
import { HttpError } from '../../platform/errors.ts';
import { isCursor } from '../../platform/redis/streams.ts';
import type { TenantContext } from '../../platform/auth/authenticate.ts';
import { loadSubscription, READ_ROLES, WRITE_ROLES } from '../../platform/http/tenant-scope.ts';
import type { Subscription, SubscriptionStore } from '../../platform/store/subscriptions.ts';
import { currentSecret, endpointView, type EndpointRecord, type EndpointStore } from '../../platform/webhooks/endpoints.ts';

export function mountDeliverApi(app: App, deps: { subs: SubscriptionStore; endpoints: EndpointStore; attemptsKept: number; secretOverlapMs: number; replayMax: number }): void {
  const { subs, endpoints, attemptsKept, secretOverlapMs, replayMax } = deps;
  const read = loadSubscription(subs, READ_ROLES);
  const write = loadSubscription(subs, WRITE_ROLES);

  async function endpointOf(t: TenantContext, sub: Subscription): Promise<EndpointRecord> {
    const ep = sub.sink ? await endpoints.get(t.tenantId, sub.id) : null;
    if (!ep) throw new HttpError(404, 'not_found', 'this subscription has no webhook endpoint: set its sink (PATCH /v1/subscriptions/{id})');
    return ep;
  }

  function limitOf(c: Context, max: number): number {
    const raw = c.req.query('limit') ?? String(Math.min(100, max));
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < 1 || n > max) throw HttpError.badRequest('query:limit', `must be an integer from 1 to ${max}`);
    return n;
  }

  app.get('/v1/subscriptions/:id/deliveries', read, async (c) => {
    const { tenant: t, subscription: sub } = c.var;
    return c.json({ data: await endpoints.attempts(t.tenantId, sub.id, limitOf(c, attemptsKept)) });
  });

  app.get('/v1/subscriptions/:id/dead-letters', read, async (c) => {
    const { tenant: t, subscription: sub } = c.var;
    const after = c.req.query('after');
    if (after !== undefined && !isCursor(after)) throw HttpError.badRequest('query:after', 'not a dead-letter id (expected <ms>-<seq>, each part at most 2^64-1)');
    const limit = limitOf(c, 1000);
    const data = await endpoints.deadLetters(t.tenantId, sub.id, limit, after);
    return c.json({ data, next_after: data.length ? data[data.length - 1]!.id : (after ?? null), has_more: data.length === limit });
  });

  app.post('/v1/subscriptions/:id/dead-letters/replay', write, async (c) => {
    const { tenant: t, subscription: sub } = c.var;
    await endpointOf(t, sub);
    const queued = await endpoints.replay(t.tenantId, sub.id, replayMax);
    if (queued === null) throw HttpError.notFound('endpoint');
    return c.json({ queued, endpoint_state: 'enabled' }, 202);
  });

  app.get('/v1/subscriptions/:id/endpoint', read, async (c) => {
    const { tenant: t, subscription: sub } = c.var;
    return c.json(endpointView(await endpointOf(t, sub), sub.sink));
  });

  for (const action of ['enable', 'disable'] as const) {
    app.post(`/v1/subscriptions/:id/endpoint/${action}`, write, async (c) => {
      const { tenant: t, subscription: sub } = c.var;
      await endpointOf(t, sub);
      await endpoints.setState(t.tenantId, sub.id, action === 'enable' ? 'enabled' : 'disabled');
      const ep = await endpoints.get(t.tenantId, sub.id);
      if (!ep) throw HttpError.notFound('endpoint');
      return c.json(endpointView(ep, sub.sink));
    });
  }

  app.get('/v1/subscriptions/:id/endpoint/secret', write, async (c) => {
    const { tenant: t, subscription: sub } = c.var;
    const ep = await endpointOf(t, sub);
    return c.json({
      secret: currentSecret(ep),
      ...(ep.secret_previous && (ep.secret_previous_until ?? 0) > Date.now()
        ? { previous_secret_expires_at: new Date(ep.secret_previous_until!).toISOString() }
        : {}),
    });
  });

  app.post('/v1/subscriptions/:id/endpoint/rotate-secret', write, async (c) => {
    const { tenant: t, subscription: sub } = c.var;
    await endpointOf(t, sub);
    const rotated = await endpoints.rotate(t.tenantId, sub.id, secretOverlapMs);
    if (!rotated) throw HttpError.notFound('endpoint');
    return c.json({ secret: rotated.secret, previous_secret_expires_at: new Date(rotated.previousUntil).toISOString() });
  });
}
