/**
 * Authentication middleware: `Authorization: Bearer <api key>` -> the caller's tenant and role.
 * Handlers read `c.get('auth')`; there is no other source of the tenant.
 */
import type { MiddlewareHandler } from 'hono';
import { HttpError } from '../errors.ts';
import type { TenantStore } from '../store/tenants.ts';
import { looksLikeApiKey, type Role } from './api-keys.ts';

export interface AuthContext {
  keyId: string;
  role: Role;
  /** null only for the platform team's admin keys */
  tenantId: string | null;
}

/** A tenant-scoped caller: what every tenant data handler works with. */
export interface TenantContext extends AuthContext {
  tenantId: string;
}

const unauthorized = (message: string) =>
  new HttpError(401, 'unauthorized', message, {
    errors: [{ field: 'header:authorization', message }],
    headers: { 'www-authenticate': 'Bearer' },
  });

export function authenticate(tenants: TenantStore): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header('authorization');
    if (!header) throw unauthorized('missing Authorization: Bearer <api key>');
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m || !looksLikeApiKey(m[1]!)) throw unauthorized('malformed Authorization header: expected Bearer pk_...');
    const rec = await tenants.lookup(m[1]!);
    if (!rec) throw unauthorized('unknown or revoked API key');
    c.set('auth', { keyId: rec.id, role: rec.role, tenantId: rec.tenant_id } satisfies AuthContext);
    await next();
  };
}

/** The caller as a tenant with one of `roles`; admin keys have no tenant and get 403 on tenant data. */
export function tenantOf(auth: AuthContext | undefined, roles: readonly Role[]): TenantContext {
  if (!auth) throw unauthorized('missing Authorization: Bearer <api key>');
  if (auth.tenantId === null || !roles.includes(auth.role))
    throw new HttpError(403, 'forbidden', `this API key's role (${auth.role}) may not do this; needs ${roles.join(' or ')}`);
  return auth as TenantContext;
}

export function requireAdmin(auth: AuthContext | undefined): AuthContext {
  if (!auth) throw unauthorized('missing Authorization: Bearer <api key>');
  if (auth.role !== 'admin') throw new HttpError(403, 'forbidden', 'needs an admin API key');
  return auth;
}
