/**
 * The schema registry API, served by the subscriptions function: a tenant registers a JSON Schema for the `data`
 * of a CloudEvent type; versions are kept (v1, v2, ...) and a new one must be backward compatible with the
 * latest (platform/schemas/compat.ts). The ingest function validates events against the latest version.
 *   PUT /v1/schemas/{type}                 body: the JSON Schema -> 201 (new version) or 200 (same as latest)
 *   GET /v1/schemas/{type}[?version=N]     versions and the latest schema, or one version
 */
import type { Context } from 'hono';
import { HttpError } from '../../platform/errors.ts';
import { readJson, type App, type AppEnv } from '../../platform/http/app.ts';
import { tenantOf } from '../../platform/auth/authenticate.ts';
import type { PioneerRedis } from '../../platform/redis/client.ts';
import { createSchemaRegistry, IncompatibleSchemaError, type SchemaVersion } from '../../platform/schemas/registry.ts';
import { InvalidSchemaError } from '../../platform/schemas/json-schema.ts';

/** A CloudEvent type as a path segment: 1-256 characters, no control characters or whitespace. */
function typeParam(c: Context<AppEnv>): string {
  const type = c.req.param('type') ?? '';
  if (!/^[^\s\u0000-\u001f\u007f]{1,256}$/.test(type))
    throw HttpError.badRequest('path:type', 'must be a CloudEvent type of 1-256 characters without whitespace');
  return type;
}

function versionBody(v: SchemaVersion) {
  return { type: v.type, version: v.version, created_at: v.created_at, schema: v.schema };
}

export function mountSchemas(app: App, redis: PioneerRedis, opts: { maxSchemaBytes?: number } = {}): void {
  const registry = createSchemaRegistry(redis);
  const maxSchemaBytes = opts.maxSchemaBytes ?? 256 * 1024;

  app.put('/v1/schemas/:type', async (c) => {
    const t = tenantOf(c.get('auth'), ['tenant']);
    const type = typeParam(c);
    const schema = await readJson(c, maxSchemaBytes);
    try {
      const { version, created } = await registry.register(t.tenantId, type, schema);
      return c.json(versionBody(version), created ? 201 : 200, { location: `/v1/schemas/${encodeURIComponent(type)}?version=${version.version}` });
    } catch (err) {
      if (err instanceof InvalidSchemaError)
        throw new HttpError(400, 'invalid_schema', `not a valid JSON Schema: ${err.message}`, { errors: err.errors });
      if (err instanceof IncompatibleSchemaError)
        throw new HttpError(409, 'incompatible_schema', `schema for ${type} ${err.message}`, {
          errors: err.incompatibilities.map((i) => ({ field: i.path || 'body', message: i.reason })),
          extra: { latest_version: err.previous },
        });
      throw err;
    }
  });

  app.get('/v1/schemas/:type', async (c) => {
    const t = tenantOf(c.get('auth'), ['tenant', 'consumer']);
    const type = typeParam(c);
    const raw = c.req.query('version');
    if (raw !== undefined) {
      if (!/^[1-9]\d{0,8}$/.test(raw)) throw HttpError.badRequest('query:version', 'must be a version number (1, 2, ...)');
      const version = await registry.get(t.tenantId, type, Number(raw));
      if (!version) throw HttpError.notFound(`version ${raw} of the schema of ${type}`);
      return c.json(versionBody(version));
    }
    const versions = await registry.list(t.tenantId, type);
    const latest = versions[versions.length - 1];
    if (!latest) throw HttpError.notFound(`schema of ${type}`);
    return c.json({
      type,
      latest_version: latest.version,
      versions: versions.map((v) => ({ version: v.version, created_at: v.created_at })),
      schema: latest.schema,
    });
  });
}
