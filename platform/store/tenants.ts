/**
 * Tenants and their API keys, in Redis (keys in platform/redis/keys.ts).
 * A key record: pioneer:apikey:<sha256> hash { id, tenant ("" for an admin key), role, created };
 * pioneer:keyid:<id> -> the sha256, so a key can be revoked by id.
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

export interface CreatedKey extends ApiKeyRecord {
  /** The secret, returned once and never stored. */
  key: string;
}

export function createTenantStore(redis: Redis) {
  async function saveKey(secret: string, id: string, tenantId: string | null, role: Role): Promise<ApiKeyRecord> {
    const hash = hashApiKey(secret);
    const created_at = new Date().toISOString();
    await redis
      .multi()
      .hset(keys.apiKey(hash), { id, tenant: tenantId ?? '', role, created: created_at })
      .set(keys.apiKeyId(id), hash)
      .exec();
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
      return { id: rec['id'], tenant_id: rec['tenant'] || null, role: rec['role'] as Role, created_at: rec['created'] ?? '' };
    },

    async getKey(id: string): Promise<ApiKeyRecord | null> {
      const hash = await redis.get(keys.apiKeyId(id));
      if (!hash) return null;
      const rec = await redis.hgetall(keys.apiKey(hash));
      if (!rec['id']) return null;
      return { id: rec['id'], tenant_id: rec['tenant'] || null, role: rec['role'] as Role, created_at: rec['created'] ?? '' };
    },

    async deleteKey(id: string): Promise<boolean> {
      const hash = await redis.get(keys.apiKeyId(id));
      if (!hash) return false;
      await redis.multi().del(keys.apiKey(hash)).del(keys.apiKeyId(id)).exec();
      return true;
    },
  };
}

export type TenantStore = ReturnType<typeof createTenantStore>;
