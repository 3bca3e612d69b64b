/**
 * The schema registry: per tenant, per CloudEvent type, a list of JSON Schema versions v1, v2, ... in Redis.
 *   {t:T}:schemas          hash  type -> latest version number (one HMGET tells ingest every type's latest)
 *   {t:T}:schema:<type>    hash  version -> { type, version, schema, created_at } JSON
 * A version is only added when it compiles and is backward compatible with the latest (platform/schemas/compat.ts);
 * registering the same schema as the latest again changes nothing. Versions are never rewritten or deleted.
 */
import type { ValidateFunction } from 'ajv';
import type { PioneerRedis } from '../redis/client.ts';
import { ingestKeys } from '../redis/keys.ts';
import { checkBackwardCompatible, deepEqual, type Incompatibility, type JsonSchema } from './compat.ts';
import { compileSchema } from './json-schema.ts';

export interface SchemaVersion {
  type: string;
  version: number;
  schema: JsonSchema;
  created_at: string;
}

export class IncompatibleSchemaError extends Error {
  readonly previous: number;
  readonly incompatibilities: Incompatibility[];
  constructor(previous: number, incompatibilities: Incompatibility[]) {
    super(`not backward compatible with version ${previous}: ${incompatibilities.map((i) => `${i.path || '(root)'}: ${i.reason}`).join('; ')}`);
    this.name = 'IncompatibleSchemaError';
    this.previous = previous;
    this.incompatibilities = incompatibilities;
  }
}

export function createSchemaRegistry(redis: PioneerRedis) {
  const parse = (json: string | null): SchemaVersion | null => (json ? (JSON.parse(json) as SchemaVersion) : null);

  return {
    /** The latest version number of each of `types` (absent when the type has no schema). */
    async latestVersions(tenantId: string, types: string[]): Promise<Map<string, number>> {
      const out = new Map<string, number>();
      if (types.length === 0) return out;
      const values = await redis.hmget(ingestKeys.schemaLatest(tenantId), ...types);
      types.forEach((type, i) => {
        const v = values[i];
        if (v) out.set(type, Number(v));
      });
      return out;
    },

    async get(tenantId: string, type: string, version: number): Promise<SchemaVersion | null> {
      return parse(await redis.hget(ingestKeys.schemaVersions(tenantId, type), String(version)));
    },

    async latest(tenantId: string, type: string): Promise<SchemaVersion | null> {
      const v = await redis.hget(ingestKeys.schemaLatest(tenantId), type);
      return v ? this.get(tenantId, type, Number(v)) : null;
    },

    /** Every version of the type, oldest first. */
    async list(tenantId: string, type: string): Promise<SchemaVersion[]> {
      const all = await redis.hvals(ingestKeys.schemaVersions(tenantId, type));
      return all.map((j) => JSON.parse(j) as SchemaVersion).sort((a, b) => a.version - b.version);
    },

    /**
     * Registers `schema` as the type's next version. Throws InvalidSchemaError (not a valid JSON Schema) or
     * IncompatibleSchemaError (not backward compatible with the latest version). `created` is false when the
     * schema equals the latest version, which is returned as it is.
     */
    async register(tenantId: string, type: string, schema: unknown): Promise<{ version: SchemaVersion; created: boolean }> {
      compileSchema(schema);
      for (;;) {
        const latest = await this.latest(tenantId, type);
        if (latest && deepEqual(latest.schema, schema)) return { version: latest, created: false };
        if (latest) {
          const problems = checkBackwardCompatible(latest.schema, schema as JsonSchema);
          if (problems.length) throw new IncompatibleSchemaError(latest.version, problems);
        }
        const previous = latest?.version ?? 0;
        const version: SchemaVersion = { type, version: previous + 1, schema: schema as JsonSchema, created_at: new Date().toISOString() };
        const written = await redis.registerSchema(
          ingestKeys.schemaLatest(tenantId), ingestKeys.schemaVersions(tenantId, type), type, String(previous), JSON.stringify(version),
        );
        if (written === version.version) return { version, created: true };
        // another registration won the race: check against the version it wrote
      }
    },
  };
}

export type SchemaRegistry = ReturnType<typeof createSchemaRegistry>;

/**
 * Compiled validators of registered schemas, by tenant, type and version (a version never changes, so an entry
 * is never stale). Least recently used entries leave once there are more than `max`.
 */
export function createValidatorCache(registry: SchemaRegistry, max = 1000) {
  const cache = new Map<string, ValidateFunction>();
  return {
    async get(tenantId: string, type: string, version: number): Promise<ValidateFunction | null> {
      const key = `${tenantId}\u0000${type}\u0000${version}`;
      const hit = cache.get(key);
      if (hit) {
        cache.delete(key);
        cache.set(key, hit);
        return hit;
      }
      const stored = await registry.get(tenantId, type, version);
      if (!stored) return null;
      const validate = compileSchema(stored.schema);
      cache.set(key, validate);
      if (cache.size > max) cache.delete(cache.keys().next().value!);
      return validate;
    },
    get size() {
      return cache.size;
    },
  };
}
