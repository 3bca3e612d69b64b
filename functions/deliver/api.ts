/**
 * The deliver function's API, under /v1 (authenticated): a subscription's delivery attempts and dead letters,
 * dead-letter replay, and its webhook endpoint (state, enable/disable, signing secret and its rotation).
 * A tenant key may change things; a consumer key may read attempts, dead letters and the endpoint's state.
 * Another tenant's subscription (and any malformed id) answers 404.
 */
import type { Context } from 'hono';
import type { App, AppEnv } from '../../platform/http/app.ts';
import { HttpError } from '../../platform/errors.ts';
import { isId } from '../../platform/ids.ts';
import { tenantOf, type TenantContext } from '../../platform/auth/authenticate.ts';
import type { Subscription, SubscriptionStore } from '../../platform/store/subscriptions.ts';
import { endpointView, type EndpointRecord, type EndpointStore } from '../../platform/webhooks/endpoints.ts';

const READ = ['tenant', 'consumer'] as const;
const WRITE = ['tenant'] as const;

export function mountDeliverApi(app: App, deps: { subs: SubscriptionStore; endpoints: EndpointStore; attemptsKept: number; secretOverlapMs: number; replayMax: number }): void {
  const { subs, endpoints, attemptsKept, secretOverlapMs, replayMax } = deps;

  async function subscriptionOf(t: TenantContext, id: string): Promise<Subscription> {
    const sub = isId('sub', id) ? await subs.get(t.tenantId, id) : null;
    if (!sub) throw HttpError.notFound('subscription');
    return sub;
  }

  async function endpointOf(t: TenantContext, id: string): Promise<{ sub: Subscription; ep: EndpointRecord }> {
    const sub = await subscriptionOf(t, id);
    const ep = sub.sink ? await endpoints.get(t.tenantId, sub.id) : null;
    if (!ep) throw new HttpError(404, 'not_found', 'this subscription has no webhook endpoint: set its sink (PATCH /v1/subscriptions/{id})');
    return { sub, ep };
  }

  function limitOf(c: Context<AppEnv>, max: number): number {
    const raw = c.req.query('limit') ?? String(Math.min(100, max));
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < 1 || n > max) throw HttpError.badRequest('query:limit', `must be an integer from 1 to ${max}`);
    return n;
  }

  app.get('/v1/subscriptions/:id/deliveries', async (c) => {
    const t = tenantOf(c.get('auth'), READ);
    const sub = await subscriptionOf(t, c.req.param('id'));
    return c.json({ data: await endpoints.attempts(t.tenantId, sub.id, limitOf(c, attemptsKept)) });
  });

  app.get('/v1/subscriptions/:id/dead-letters', async (c) => {
    const t = tenantOf(c.get('auth'), READ);
    const sub = await subscriptionOf(t, c.req.param('id'));
    const after = c.req.query('after');
    if (after !== undefined && !/^\d{1,20}-\d{1,20}$/.test(after)) throw HttpError.badRequest('query:after', 'not a dead-letter id (expected <ms>-<seq>)');
    const limit = limitOf(c, 1000);
    const data = await endpoints.deadLetters(t.tenantId, sub.id, limit, after);
    return c.json({ data, next_after: data.length ? data[data.length - 1]!.id : (after ?? null), has_more: data.length === limit });
  });

  app.post('/v1/subscriptions/:id/dead-letters/replay', async (c) => {
    const t = tenantOf(c.get('auth'), WRITE);
    const { sub } = await endpointOf(t, c.req.param('id'));
    const queued = await endpoints.replay(t.tenantId, sub.id, replayMax);
    if (queued === null) throw HttpError.notFound('endpoint');
    return c.json({ queued, endpoint_state: 'enabled' }, 202);
  });

  app.get('/v1/subscriptions/:id/endpoint', async (c) => {
    const t = tenantOf(c.get('auth'), READ);
    const { sub, ep } = await endpointOf(t, c.req.param('id'));
    return c.json(endpointView(ep, sub.sink));
  });

  for (const action of ['enable', 'disable'] as const) {
    app.post(`/v1/subscriptions/:id/endpoint/${action}`, async (c) => {
      const t = tenantOf(c.get('auth'), WRITE);
      const { sub } = await endpointOf(t, c.req.param('id'));
      await endpoints.setState(t.tenantId, sub.id, action === 'enable' ? 'enabled' : 'disabled');
      const ep = await endpoints.get(t.tenantId, sub.id);
      if (!ep) throw HttpError.notFound('endpoint');
      return c.json(endpointView(ep, sub.sink));
    });
  }

  app.get('/v1/subscriptions/:id/endpoint/secret', async (c) => {
    const t = tenantOf(c.get('auth'), WRITE);
    const { ep } = await endpointOf(t, c.req.param('id'));
    return c.json({
      secret: ep.secret,
      ...(ep.secret_previous && (ep.secret_previous_until ?? 0) > Date.now()
        ? { previous_secret_expires_at: new Date(ep.secret_previous_until!).toISOString() }
        : {}),
    });
  });

  app.post('/v1/subscriptions/:id/endpoint/rotate-secret', async (c) => {
    const t = tenantOf(c.get('auth'), WRITE);
    const { sub } = await endpointOf(t, c.req.param('id'));
    const rotated = await endpoints.rotate(t.tenantId, sub.id, secretOverlapMs);
    if (!rotated) throw HttpError.notFound('endpoint');
    return c.json({ secret: rotated.secret, previous_secret_expires_at: new Date(rotated.previousUntil).toISOString() });
  });
}
