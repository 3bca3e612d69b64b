/**
 * Tenant scope as middleware, so that no handler of tenant data runs without it:
 *   requireTenant(roles)            the caller as a tenant with one of `roles` (403 otherwise), in c.var.tenant
 *   loadSubscription(subs, roles)   also the tenant's subscription named by the path's :id, loaded once by
 *                                   (tenant, id), in c.var.subscription; 404 when the tenant has none with that id
 * The order of the answers is the isolation rule: another tenant's id (or a malformed one) answers 404 whatever the
 * caller's role, so a 403 only ever speaks of the caller's own resources.
 */
import type { MiddlewareHandler } from 'hono';
import { HttpError } from '../errors.ts';
import { isId } from '../ids.ts';
import { tenantOf, type TenantContext } from '../auth/authenticate.ts';
import type { Role } from '../auth/api-keys.ts';
import type { Subscription } from '../store/subscriptions.ts';
import type { AppEnv } from './app.ts';

export type TenantEnv = { Variables: AppEnv['Variables'] & { tenant: TenantContext } };
export type SubscriptionEnv = { Variables: TenantEnv['Variables'] & { subscription: Subscription } };

export const READ_ROLES = ['tenant', 'consumer'] as const satisfies readonly Role[];
export const WRITE_ROLES = ['tenant'] as const satisfies readonly Role[];

export function requireTenant(roles: readonly Role[]): MiddlewareHandler<TenantEnv> {
  return async (c, next) => {
    c.set('tenant', tenantOf(c.get('auth'), roles));
    await next();
  };
}

type SubscriptionReader = { get(tenantId: string, id: string): Promise<Subscription | null> };

/** The tenant's subscription `id` (any string a caller sent), or null when the tenant has none with that id. */
export async function findSubscription(subs: SubscriptionReader, tenantId: string, id: string): Promise<Subscription | null> {
  return isId('sub', id) ? subs.get(tenantId, id) : null;
}

/** Loads the caller's subscription named by the path parameter `param`: 404 first, then 403 for the role. */
export function loadSubscription(
  subs: SubscriptionReader,
  roles: readonly Role[],
  param = 'id',
): MiddlewareHandler<SubscriptionEnv> {
  return async (c, next) => {
    const caller = tenantOf(c.get('auth'), READ_ROLES);
    const sub = await findSubscription(subs, caller.tenantId, c.req.param(param) ?? '');
    if (!sub) throw HttpError.notFound('subscription');
    c.set('tenant', tenantOf(caller, roles));
    c.set('subscription', sub);
    await next();
  };
}
