/**
 * The local host's front door: the whole public API on one port. Each request goes by its method and path to
 * the function that serves it, in this process, through that function's `app.fetch` (no network hop: a
 * response, an SSE stream included, is the function's own, streamed as it writes it, with its backpressure).
 *
 * The routing table is derived from what each function's app registers (hono's `app.routes`), so it cannot
 * drift from the functions: a route two functions both register stops the host. A path no function serves is
 * answered 404 problem+json naming it. /healthz and /readyz report every hosted function; /metrics serves
 * every function's registry, each series once, told apart by its `function` label. /portal, the customer portal,
 * is the subscriptions function's (functions/subscriptions/portal.ts) and reaches it as any of its paths does.
 */
import { Hono } from 'hono';
import type { Registry } from 'prom-client';
import { HttpError } from '../../platform/errors.ts';
import { problemResponse } from '../../platform/http/app.ts';
import { mergedMetrics } from '../../platform/telemetry/metrics.ts';
import type { PioneerFunction } from '../../platform/runtime/contract.ts';

export interface FrontDoorFunction {
  fn: PioneerFunction;
  metrics: Registry;
}

export interface FrontDoorRoute {
  method: string;
  /** hono's path syntax: `/v1/subscriptions/:id` */
  path: string;
  function: string;
}

/** Every function's own paths, answered by the front door itself. `POST /` is a Kafka trigger's endpoint. */
const OWN_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/']);

/** The public routes of `functions`: every method and path their apps register, but middleware and own paths. */
export function frontDoorRoutes(functions: Map<string, FrontDoorFunction>): FrontDoorRoute[] {
  const routes: FrontDoorRoute[] = [];
  const owner = new Map<string, string>();
  for (const [name, { fn }] of functions) {
    for (const r of fn.app.routes) {
      if (r.method === 'ALL' || r.path.includes('*') || OWN_PATHS.has(r.path)) continue;
      const key = `${r.method} ${r.path}`;
      const other = owner.get(key);
      if (other === name) continue;
      if (other) throw new Error(`front door: ${key} is served by both ${other} and ${name}`);
      owner.set(key, name);
      routes.push({ method: r.method, path: r.path, function: name });
    }
  }
  return routes;
}

const INTERNAL = 'http://front-door.internal';

async function ask(fn: PioneerFunction, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  try {
    const res = await fn.app.fetch(new Request(INTERNAL + path));
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } catch (err) {
    return { status: 503, body: { status: 'error', error: (err as Error).message } };
  }
}

export function frontDoorApp(functions: Map<string, FrontDoorFunction>): Hono {
  const door = new Hono();
  door.get('/healthz', async (c) => {
    const report: Record<string, unknown> = {};
    let ok = true;
    for (const [name, { fn }] of functions) {
      const { status, body } = await ask(fn, '/healthz');
      ok &&= status === 200;
      report[name] = body['status'];
    }
    return c.json({ status: ok ? 'ok' : 'failing', functions: report }, ok ? 200 : 503);
  });
  door.get('/readyz', async (c) => {
    const answers = await Promise.all([...functions].map(async ([name, { fn }]) => [name, await ask(fn, '/readyz')] as const));
    const ok = answers.every(([, a]) => a.status === 200);
    const report = Object.fromEntries(answers.map(([name, a]) => [name, { status: a.body['status'], checks: a.body['checks'] }]));
    return c.json({ status: ok ? 'ready' : 'not ready', functions: report }, ok ? 200 : 503);
  });
  door.get('/metrics', async (c) => {
    const registries = [...functions.values()].map((f) => f.metrics);
    return c.body(await mergedMetrics(registries), 200, { 'content-type': registries[0]?.contentType ?? 'text/plain; version=0.0.4' });
  });
  for (const route of frontDoorRoutes(functions)) {
    const { fn } = functions.get(route.function)!;
    // the function sees the request as sent: its path, headers, body stream and abort signal
    door.on(route.method, route.path, (c) => fn.app.fetch(c.req.raw));
  }
  door.notFound((c) => problemResponse(new HttpError(404, 'not_found', `no route for ${c.req.method} ${c.req.path}`), c.req.path));
  door.onError((err, c) => {
    if (err instanceof HttpError) return problemResponse(err, c.req.path);
    return problemResponse(new HttpError(502, 'bad_gateway', `the front door could not reach the function: ${err.message}`), c.req.path);
  });
  return door;
}
