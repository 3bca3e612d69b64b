/** The public API as openapi.yaml describes it, for tests that walk every operation. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ROOT } from './helpers.ts';

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

export interface Operation {
  method: (typeof HTTP_METHODS)[number];
  /** The templated path: `/v1/subscriptions/{id}`. */
  path: string;
  /** Names of its query parameters. */
  query: string[];
}

/** Every operation of openapi.yaml. */
export function publicOperations(): Operation[] {
  const doc = parse(readFileSync(join(ROOT, 'openapi.yaml'), 'utf8')) as {
    paths: Record<string, Record<string, { parameters?: { in?: string; name?: string; $ref?: string }[] }>>;
    components: { parameters?: Record<string, { in: string; name: string }> };
  };
  const ops: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of HTTP_METHODS) {
      const op = item[method];
      if (!op) continue;
      const params = (op.parameters ?? []).map((p) => (p.$ref ? doc.components.parameters?.[p.$ref.split('/').pop()!] : p));
      ops.push({ method, path, query: params.filter((p) => p?.in === 'query').map((p) => p!.name!) });
    }
  }
  return ops;
}

/** Which function serves a path (the local host serves each function on its own port). */
export function servingFunction(path: string): string {
  if (path.startsWith('/v1/tenants') || path.startsWith('/v1/keys') || path.startsWith('/v1/schemas')) return 'subscriptions';
  if (path === '/v1/subscriptions' || path === '/v1/subscriptions/{id}') return 'subscriptions';
  if ((path.endsWith('/events') && path.startsWith('/v1/subscriptions')) || path === '/v1/stats') return 'gateway';
  if (path.startsWith('/v1/events')) return 'ingest';
  if (/\/(replay|replays\/\{replayId\})$/.test(path) && !path.includes('dead-letters')) return 'export';
  if (path.startsWith('/v1/exports')) return 'export';
  if (path.startsWith('/v1/insights')) return 'insights';
  return 'deliver';
}
