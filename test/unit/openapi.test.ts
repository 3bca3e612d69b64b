/**
 * openapi.yaml against the code: every route a registered function serves is described, and every described
 * path and method is served. Each function is created for real (against the run's Redis and Kafka) to read its
 * hono routes, so the test fails when either side drifts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { FUNCTIONS } from '../../functions/registry.ts';
import { loadConfig } from '../../platform/config/env.ts';
import { createMetrics } from '../../platform/telemetry/metrics.ts';
import { createLogger } from '../../platform/telemetry/logger.ts';
import { platformEnv, randomName, ROOT } from '../support/helpers.ts';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'] as const;
const UNDOCUMENTED = new Set(['/healthz', '/readyz', '/metrics']);
/** The customer portal's page and files (functions/subscriptions/portal.ts): served beside the API, not part of it. */
const isPortal = (path: string) => path === '/portal' || path.startsWith('/portal/');

const doc = parse(readFileSync(join(ROOT, 'openapi.yaml'), 'utf8')) as any;

/** `/v1/subscriptions/:id{[a-z_0-9]+}/events` -> `/v1/subscriptions/{id}/events` */
function normalizePath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, '{$1}');
}

function documented(): Set<string> {
  const out = new Set<string>();
  for (const [path, item] of Object.entries<any>(doc.paths)) for (const m of METHODS) if (item[m]) out.add(`${m.toUpperCase()} ${path}`);
  return out;
}

async function served(): Promise<Map<string, string>> {
  const env = platformEnv({
    // Kafka-facing names of the run's own, so nothing here touches another test's topics or groups
    PIONEER_SOURCE_TOPICS: randomName('openapi'),
    PIONEER_INGEST_TOPIC: randomName('openapi'),
    PIONEER_ROUTE_GROUP: randomName('openapi'),
    PIONEER_DEAD_LETTER_TOPIC: randomName('openapi'),
  });
  const log = createLogger({ level: 'silent' });
  const routes = new Map<string, string>(); // "METHOD /path" -> function
  for (const [name, def] of Object.entries(FUNCTIONS)) {
    const fn = await def.create(loadConfig(def.config, env), { log, metrics: createMetrics() });
    try {
      for (const r of fn.app.routes) {
        if (r.method === 'ALL' || UNDOCUMENTED.has(r.path) || isPortal(r.path)) continue; // middleware, the probes every function has, the portal
        routes.set(`${r.method} ${normalizePath(r.path)}`, name);
      }
    } finally {
      await fn.close();
    }
  }
  return routes;
}

test('normalizePath turns hono parameters into OpenAPI templates', () => {
  assert.equal(normalizePath('/v1/subscriptions/:id/events'), '/v1/subscriptions/{id}/events');
  assert.equal(normalizePath('/v1/schemas/:type{.+}'), '/v1/schemas/{type}');
  assert.equal(normalizePath('/v1/tenants'), '/v1/tenants');
});

test('every route a registered function serves is in openapi.yaml, and every path and method there is served', async () => {
  const routes = await served();
  const described = documented();
  assert.ok(routes.size > 10, `expected the functions' routes, got ${[...routes.keys()].join(', ')}`);
  const undescribed = [...routes].filter(([r]) => !described.has(r)).map(([r, fn]) => `${r} (served by ${fn})`);
  const unserved = [...described].filter((r) => !routes.has(r));
  assert.deepEqual(undescribed, [], 'served but not in openapi.yaml');
  assert.deepEqual(unserved, [], 'in openapi.yaml but served by no registered function');
});

test('openapi.yaml is OpenAPI 3.1 whose references resolve, with bearer security and problem+json errors', () => {
  assert.match(doc.openapi, /^3\.1\.\d+$/);
  assert.deepEqual(doc.security, [{ bearer: [] }]);
  assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');

  const unresolved: string[] = [];
  const visit = (node: unknown, at: string) => {
    if (Array.isArray(node)) node.forEach((v, i) => visit(v, `${at}[${i}]`));
    else if (node && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (k === '$ref' && typeof v === 'string') {
          const target = v.replace(/^#\//, '').split('/').reduce<any>((o, part) => o?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
          if (!v.startsWith('#/') || target === undefined) unresolved.push(`${at}: ${v}`);
        } else visit(v, `${at}.${k}`);
      }
    }
  };
  visit(doc, '');
  assert.deepEqual(unresolved, []);

  const tags = new Set(doc.tags.map((t: any) => t.name));
  const operationIds = new Set<string>();
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    const pathParams = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    for (const m of METHODS) {
      const op = item[m];
      if (!op) continue;
      const where = `${m.toUpperCase()} ${path}`;
      assert.ok(op.operationId && !operationIds.has(op.operationId), `${where}: a unique operationId`);
      operationIds.add(op.operationId);
      assert.ok(op.tags?.every((t: string) => tags.has(t)), `${where}: tags are declared`);
      assert.ok(op.responses['401'], `${where}: answers 401 for a missing or unknown key`);
      // every error response is problem+json
      for (const [status, response] of Object.entries<any>(op.responses)) {
        if (Number(status) < 400) continue;
        const resolved = response.$ref ? response.$ref.split('/').slice(1).reduce((o: any, p: string) => o[p], doc) : response;
        assert.ok(resolved.content?.['application/problem+json'], `${where} ${status}: application/problem+json`);
      }
      // every path template parameter is declared
      const params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p: any) =>
        p.$ref ? p.$ref.split('/').slice(1).reduce((o: any, k: string) => o[k], doc) : p,
      );
      for (const name of pathParams) assert.ok(params.some((p: any) => p.in === 'path' && p.name === name && p.required), `${where}: path parameter ${name}`);
    }
  }
});
