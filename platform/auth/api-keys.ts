/**
 * API keys: `pk_<43 url-safe characters>`, shown once at creation, stored only as their SHA-256.
 * The key decides the tenant and the role; nothing in a request can override either.
 */
import { createHash, randomBytes } from 'node:crypto';

export const ROLES = ['admin', 'tenant', 'consumer'] as const;
export type Role = (typeof ROLES)[number];

export function generateApiKey(): string {
  return `pk_${randomBytes(32).toString('base64url')}`;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function looksLikeApiKey(value: string): boolean {
  return /^pk_[A-Za-z0-9_-]{20,128}$/.test(value);
}
