/**
 * The local host's front door: every operation of openapi.yaml, sent to the one port, reaches the function that
 * serves it (seen in that function's own request metrics); an unknown path is 404 problem+json naming it; the
 * probes report every function; an SSE stream passes through as it is written and ends in the gateway when its
 * client goes away. And the metrics: each function's /metrics shows its own series only, the front door's
 * every function's, each family once.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalHost, type LocalHost } from '../../adapters/local/host.ts';
import { frontDoorRoutes } from '../../adapters/local/front-door.ts';
import { FUNCTIONS, functionsNamed } from '../../functions/registry.ts';
import { createLogger } from '../../platform/telemetry/logger.ts';
import { api, createTenant, createTopic, platformEnv, randomName, routeEnv, waitFor } from '../support/helpers.ts';
import { publicOperations, servingFunction } from '../support/openapi.ts';

const NAMES = Object.keys(FUNCTIONS);
let host: LocalHost;
let door: string;
let adminKey: string;

before(async () => {
  const topic = randomName('front-door');
  await createTopic(topic, 1);
  const env = platformEnv({
    ...routeEnv(topic),
    PIONEER_INGEST_TOPIC: topic,
    PIONEER_EXPORT_DIR: mkdtempSync(join(tmpdir(), 'pioneer-front-door-')),
    PIONEER_FRONT_DOOR_PORT: '0',
    ...Object.fromEntries(NAMES.map((n) => [`PIONEER_${n.toUpperCase()}_PORT`, '0'])),
  });
  adminKey = env['PIONEER_ADMIN_KEY']!;
  host = await startLocalHost({ definitions: functionsNamed(NAMES), env, log: createLogger({ level: env['PIONEER_LOG_LEVEL'] }) });
  door = host.frontDoor!.url;
});
after(async () => {
  await host?.stop();
});

/** `/v1/subscriptions/:id{[a-z_0-9]+}/events` -> `/v1/subscriptions/{id}/events` */
const template = (path: string) => path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, '{$1}');

async function metricsOf(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

test('the routing table has every operation of openapi.yaml, each on the function that serves it', () => {
  const table = new Map(frontDoorRoutes(host.functions).map((r) => [`${r.method} ${template(r.path)}`, r.function]));
  const wrong = publicOperations()
    .map((op) => ({ op: `${op.method.toUpperCase()} ${op.path}`, want: servingFunction(op.path) }))
    .filter(({ op, want }) => table.get(op) !== want)
    .map(({ op, want }) => `${op}: routed to ${table.get(op) ?? 'nothing'}, served by ${want}`);
  assert.deepEqual(wrong, []);
});

test('every operation of openapi.yaml sent to the front door is answered by the function that serves it', async () => {
  const problems: string[] = [];
  for (const op of publicOperations()) {
    const path = op.path.replace(/\{type\}/g, 'com.example.thing').replace(/\{[A-Za-z]+\}/g, 'x_front_door');
    const res = await fetch(door + path, {
      method: op.method.toUpperCase(),
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      ...(op.method === 'get' || op.method === 'delete' ? {} : { body: '{}' }),
    });
    const body = await res.text();
    if (res.status === 404 && body.includes('no route')) problems.push(`${op.method.toUpperCase()} ${op.path}: ${body}`);
  }
  assert.deepEqual(problems, []);
  // each function counted the requests of its own operations: the request went where it is served
  const unseen: string[] = [];
  for (const op of publicOperations()) {
    const fn = servingFunction(op.path);
    const text = await metricsOf(host.url(fn));
    const seen = text
      .split('\n')
      .filter((l) => l.startsWith('pioneer_http_request_duration_seconds_count{'))
      .some((l) => l.includes(`method="${op.method.toUpperCase()}"`) && /route="([^"]*)"/.exec(l) && template(/route="([^"]*)"/.exec(l)![1]!) === op.path);
    if (!seen) unseen.push(`${op.method.toUpperCase()} ${op.path} not counted by ${fn}`);
  }
  assert.deepEqual(unseen, []);
});

test('a path no function serves is 404 problem+json naming it', async () => {
  const res = await fetch(`${door}/v1/nowhere/else`, { headers: { authorization: `Bearer ${adminKey}` } });
  assert.equal(res.status, 404);
  assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
  const body = (await res.json()) as { detail?: string; title?: string; code?: string; instance?: string };
  assert.match(JSON.stringify(body), /no route for GET \/v1\/nowhere\/else/);
});

test('/healthz and /readyz of the front door report every hosted function', async () => {
  const health = await fetch(`${door}/healthz`);
  assert.equal(health.status, 200);
  const h = (await health.json()) as { status: string; functions: Record<string, string> };
  assert.equal(h.status, 'ok');
  assert.deepEqual(Object.keys(h.functions).sort(), [...NAMES].sort());
  const ready = await waitFor(async () => {
    const res = await fetch(`${door}/readyz`);
    return res.status === 200 ? ((await res.json()) as { status: string; functions: Record<string, { status: string; checks: object }> }) : null;
  }, { message: 'the front door to be ready' });
  assert.equal(ready.status, 'ready');
  assert.deepEqual(Object.keys(ready.functions).sort(), [...NAMES].sort());
  for (const name of NAMES) assert.equal(ready.functions[name]!.status, 'ready', name);
});

test('an SSE stream passes through the front door as written, and ends in the gateway when its client leaves', async () => {
  const tenant = await createTenant(door, adminKey);
  const sub = await api(door, tenant.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] });
  assert.equal(sub.status, 201, JSON.stringify(sub.body));
  const ac = new AbortController();
  const res = await fetch(`${door}/v1/subscriptions/${sub.body.id}/events`, {
    headers: { authorization: `Bearer ${tenant.consumerKey}`, accept: 'text/event-stream' },
    signal: ac.signal,
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
  const reader = res.body!.getReader();
  // the stream never ends by itself: a first chunk (a heartbeat, every second in the tests) shows it is not held back
  const first = await Promise.race([reader.read(), new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
  assert.ok(first && !first.done && first.value.byteLength > 0, 'no chunk of the stream within 10 s');
  const open = async () => /pioneer_gateway_sse_connections\{[^}]*\} (\d+)/.exec(await metricsOf(host.url('gateway')))?.[1];
  assert.equal(await open(), '1');
  ac.abort();
  await waitFor(async () => (await open()) === '0', { message: 'the gateway to close the stream its client left' });
});

test("each function's /metrics shows its own series only; the front door's shows each series once", async () => {
  // a request to the gateway alone: counted on the gateway, not on subscriptions
  const res = await fetch(`${host.url('gateway')}/v1/stats`);
  assert.equal(res.status, 401);
  const gateway = await metricsOf(host.url('gateway'));
  const subscriptions = await metricsOf(host.url('subscriptions'));
  assert.match(gateway, /pioneer_http_request_duration_seconds_count\{[^}]*route="\/v1\/stats"[^}]*\}/);
  assert.doesNotMatch(subscriptions, /route="\/v1\/stats"/);
  assert.doesNotMatch(subscriptions, /function="gateway"/);
  assert.doesNotMatch(subscriptions, /pioneer_gateway_/);
  assert.doesNotMatch(gateway, /pioneer_route_|pioneer_ingest_|function="subscriptions"/);
  // default process metrics on each, labelled with the function
  assert.match(gateway, /^pioneer_process_cpu_seconds_total\{function="gateway"\} /m);
  assert.match(subscriptions, /^pioneer_process_cpu_seconds_total\{function="subscriptions"\} /m);

  const merged = await metricsOf(door);
  const types = merged.split('\n').filter((l) => l.startsWith('# TYPE '));
  assert.equal(new Set(types).size, types.length, 'a metric family listed twice');
  for (const name of NAMES) assert.match(merged, new RegExp(`^pioneer_process_cpu_seconds_total\\{function="${name}"\\} `, 'm'), name);
  const stats = merged.split('\n').filter((l) => /^pioneer_http_request_duration_seconds_count\{/.test(l) && l.includes('route="/v1/stats"'));
  assert.ok(stats.length >= 1 && stats.every((l) => l.includes('function="gateway"')), stats.join('\n'));
  // each series once
  const samples = merged.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.slice(0, l.lastIndexOf(' ')));
  assert.equal(new Set(samples).size, samples.length, 'a series listed twice');
});
