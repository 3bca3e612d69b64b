/**
 * Tenants and their API keys, in Redis (keys in platform/redis/keys.ts).
 * A key record: pioneer:apikey:<sha256> hash { id, tenant ("" for an admin key), role, created };
 * pioneer:keyid:<id> -> the sha256, so a key can be revoked by id.
 *
 * The two keys of a key record lie in different Redis Cluster slots, so they are written one after the other, in
 * the order that keeps a half-done write harmless: the id's pointer first, then the record that authenticates
 * (a pointer without a record names no key); on revocation the record first, then the pointer.
 */
import { HttpError } from '../errors.ts';
import { newId } from '../ids.ts';
import { keys } from '../redis/keys.ts';
import type { Redis } from '../redis/client.ts';
import { generateApiKey, hashApiKey, type Role } from '../auth/api-keys.ts';

export interface Tenant {
  id: string;
  name: string;
  created_at: string;
}

export interface ApiKeyRecord {
  id: string;
  tenant_id: string | null;
  role: Role;
  created_at: string;
}

/** A key as its owner found it, with where its record is. */
export interface OwnedKey extends ApiKeyRecord {
  hash: string;
}

export interface CreatedKey extends ApiKeyRecord {
  /** The secret, returned once and never stored. */
  key: string;
}

/** A key record as stored (pioneer:apikey:<sha256>) to what the API shows. */
function keyRecord(rec: Record<string, string>): ApiKeyRecord {
  return { id: rec['id']!, tenant_id: rec['tenant'] || null, role: rec['role'] as Role, created_at: rec['created'] ?? '' };
}

export function createTenantStore(redis: Redis) {
  async function saveKey(secret: string, id: string, tenantId: string | null, role: Role): Promise<ApiKeyRecord> {
    const hash = hashApiKey(secret);
    const created_at = new Date().toISOString();
    await redis.set(keys.apiKeyId(id), hash);
    await redis.hset(keys.apiKey(hash), { id, tenant: tenantId ?? '', role, created: created_at });
    return { id, tenant_id: tenantId, role, created_at };
  }

  return {
    async createTenant(name: string): Promise<{ tenant: Tenant; key: CreatedKey }> {
      const tenant: Tenant = { id: newId('ten'), name, created_at: new Date().toISOString() };
      await redis.hset(keys.tenants(), tenant.id, JSON.stringify(tenant));
      const key = await this.createKey(tenant.id, 'tenant');
      return { tenant, key };
    },

    async getTenant(id: string): Promise<Tenant | null> {
      const json = await redis.hget(keys.tenants(), id);
      return json ? (JSON.parse(json) as Tenant) : null;
    },

    async listTenants(): Promise<Tenant[]> {
      const all = await redis.hvals(keys.tenants());
      return all.map((j) => JSON.parse(j) as Tenant).sort((a, b) => a.id.localeCompare(b.id));
    },

    async createKey(tenantId: string, role: Exclude<Role, 'admin'>): Promise<CreatedKey> {
      const secret = generateApiKey();
      const record = await saveKey(secret, newId('key'), tenantId, role);
      return { ...record, key: secret };
    },

    /** Registers an operator-provided admin secret (idempotent: the same secret keeps the same id). */
    async ensureAdminKey(secret: string): Promise<ApiKeyRecord> {
      const existing = await this.lookup(secret);
      if (existing) {
        if (existing.role !== 'admin') throw new HttpError(409, 'conflict', 'the admin key is already registered with another role');
        return existing;
      }
      return saveKey(secret, newId('key'), null, 'admin');
    },

    async lookup(secret: string): Promise<ApiKeyRecord | null> {
      const rec = await redis.hgetall(keys.apiKey(hashApiKey(secret)));
      if (!rec['id']) return null;
      return keyRecord(rec);
    },

    /**
     * The key `id` if `owner` may see it: the platform team (owner null) any key, a tenant only its own; null when
     * there is no such key for this owner (another tenant's key is not told apart from a missing one).
     */
    async ownedKey(id: string, owner: { tenantId: string | null }): Promise<OwnedKey | null> {
      const hash = await redis.get(keys.apiKeyId(id));
      if (!hash) return null;
      const rec = await redis.hgetall(keys.apiKey(hash));
      if (!rec['id'] || (owner.tenantId !== null && rec['tenant'] !== owner.tenantId)) return null;
      return { ...keyRecord(rec), hash };
    },

    /** Revokes a key found by `ownedKey`; false when it was revoked meanwhile. */
    async revokeKey(key: OwnedKey): Promise<boolean> {
      const removed = await redis.del(keys.apiKey(key.hash));
      await redis.del(keys.apiKeyId(key.id));
      return removed === 1;
    },
  };
}

export type TenantStore = ReturnType<typeof createTenantStore>;
