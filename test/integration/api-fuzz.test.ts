/**
 * The public API under random input (fast-check): every operation of openapi.yaml, called with any of the keys a
 * caller may hold (or none, or a forged one), real and made-up ids, hostile path segments, random query strings,
 * bodies that are valid, nearly valid, random JSON or not JSON at all, and any content type. Whatever arrives,
 * the answer is 2xx or a 4xx problem+json that names its status, never a 5xx, and the process serving it stays up.
 * The functions run in a child process of their own, so a crash would show as its exit, not as this test's.
 * Each run takes a new seed (printed; FUZZ_SEED=<seed> replays a run).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import fc from 'fast-check';
import { api, createTenant, createTopic, platformEnv, randomName, spawnFunctions } from '../support/helpers.ts';
import { publicOperations, servingFunction, type Operation } from '../support/openapi.ts';
import { deliverEnv, ownRedis } from './deliver-receiver.ts';

const FUNCTIONS = ['subscriptions', 'gateway', 'ingest', 'deliver', 'export', 'insights'];
const RUNS = 1500;

const redis = ownRedis(); // deliver works every endpoint of its Redis: this file's own
const topic = randomName('events');
let child: ChildProcess;
let urls: Record<string, string>;
let output: () => string;
let adminKey: string;

before(async () => {
  await createTopic(topic, 1);
  const env = platformEnv({
    PIONEER_REDIS_URL: redis.url,
    PIONEER_INGEST_TOPIC: topic,
    PIONEER_SOURCE_TOPICS: topic, // replays read it: a topic that does not exist is an outage (503), not bad input
    PIONEER_EXPORT_DIR: mkdtempSync(join(tmpdir(), 'pioneer-fuzz-')),
    PIONEER_LOG_LEVEL: 'error', // so that an error logged anywhere shows in the output checked at the end
    ...deliverEnv(),
    ...Object.fromEntries(FUNCTIONS.map((f) => [`PIONEER_${f.toUpperCase()}_PORT`, '0'])),
  });
  adminKey = env['PIONEER_ADMIN_KEY']!;
  ({ child, urls, output } = await spawnFunctions(FUNCTIONS, env));
});
after(async () => {
  child?.kill('SIGKILL');
  redis.stop();
});

/** A request as the fuzzer builds it. */
interface Call {
  op: Operation;
  key: string | undefined;
  params: string[];
  query: [string, string][];
  body: { raw: string } | undefined;
  contentType: string | undefined;
}

test('random calls to every operation answer 2xx or 4xx problem+json, never 5xx, and the functions stay up', async (t) => {
  const a = await createTenant(urls['subscriptions']!, adminKey);
  const b = await createTenant(urls['subscriptions']!, adminKey);
  const sub = await api(urls['subscriptions']!, a.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'], sink: 'http://127.0.0.1:9/hook' });
  assert.equal(sub.status, 201, JSON.stringify(sub.body));
  const exp = await api(urls['export']!, a.key, 'POST', '/v1/exports', { subscription_id: sub.body.id });
  assert.equal(exp.status, 202, JSON.stringify(exp.body));

  const valid: Record<string, unknown> = {
    'post /v1/tenants': { name: 'fuzzed' },
    'post /v1/tenants/{id}/keys': { role: 'consumer' },
    'post /v1/subscriptions': { types: ['payment.sent'], filters: [{ sql: "subject LIKE 'a%'" }] },
    'patch /v1/subscriptions/{id}': { name: 'renamed', filters: [{ prefix: { subject: 'x' } }] },
    'put /v1/schemas/{type}': { type: 'object', properties: { n: { type: 'integer' } } },
    'post /v1/events': { specversion: '1.0', id: 'e1', source: '/fuzz', type: 'payment.sent', tenantid: a.id, partitionkey: 'k', data: { n: 1 } },
    'post /v1/subscriptions/{id}/replay': { since: new Date(Date.now() - 60_000).toISOString() },
    'post /v1/exports': { subscription_id: sub.body.id },
  };

  const hostile = fc.constantFrom('..', '%2e%2e', '%00', '%ZZ', 'a%2Fb', '\u0000', 'ü', '😀', ' ', "'", '"><', 'x'.repeat(3000), 'sub_' + '0'.repeat(26), 'key_' + 'z'.repeat(26));
  // FIT stands for the caller's own id of the kind the path names, so that calls get past the lookups
  const FIT = '\u0001fit';
  const fitting = (path: string, at: number): string => {
    if (path.includes('{replayId}') && at === 1) return 'rpl_00000000000000000000000000';
    if (path.startsWith('/v1/tenants/')) return a.id;
    if (path.startsWith('/v1/exports/')) return exp.body.id;
    if (path.startsWith('/v1/schemas/')) return 'payment.sent';
    if (path.startsWith('/v1/events/')) return 'e1';
    return sub.body.id;
  };
  const param = fc.oneof(
    { arbitrary: fc.constant(FIT), weight: 6 },
    { arbitrary: fc.constantFrom(a.id, b.id, sub.body.id, exp.body.id, 'payment.sent', 'rpl_00000000000000000000000000'), weight: 2 },
    { arbitrary: hostile, weight: 2 },
    { arbitrary: fc.string({ maxLength: 40 }).map(encodeURIComponent), weight: 1 },
  );
  const jsonValue = fc.jsonValue({ maxDepth: 4 });
  const call: fc.Arbitrary<Call> = fc.record({
    op: fc.constantFrom(...publicOperations()),
    key: fc.oneof(
      { arbitrary: fc.constant(a.key), weight: 8 },
      { arbitrary: fc.constant(a.consumerKey), weight: 2 },
      { arbitrary: fc.constantFrom(b.key, adminKey), weight: 2 },
      { arbitrary: fc.constantFrom(undefined, 'pk_' + 'A'.repeat(43), 'not a key'), weight: 1 },
    ),
    params: fc.array(param, { minLength: 2, maxLength: 2 }),
    query: fc.array(fc.tuple(fc.constantFrom('limit', 'after', 'since', 'cursor', 'source', 'x'), fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('-1', '0', '1e9', '1-1', '99999999999999999999-0', '2020-01-01T00:00:00Z', 'NaN'))), { maxLength: 3 }),
    body: fc.option(
      fc.oneof(
        { arbitrary: fc.constant('valid'), weight: 5 },
        { arbitrary: fc.tuple(fc.constant('mutated'), fc.constantFrom('types', 'filters', 'sink', 'name', 'since', 'role', 'data', 'id', 'tenantid', 'subscription_id', 'x'), jsonValue), weight: 4 },
        { arbitrary: jsonValue, weight: 1 },
        { arbitrary: fc.string({ maxLength: 200 }).map((raw) => ({ raw })), weight: 1 },
        fc.constantFrom({ raw: '{"a":' }, { raw: '[' + '['.repeat(5000) }, { raw: '{"__proto__":{"admin":true}}' }, { raw: '\u0000\u0001' }),
      ),
      { nil: undefined },
    ).map((body) => body),
    contentType: fc.oneof(
      { arbitrary: fc.constant('application/json'), weight: 6 },
      { arbitrary: fc.constantFrom('application/cloudevents+json', 'application/cloudevents-batch+json', 'text/plain', 'application/json; charset=utf-16', undefined), weight: 2 },
    ),
  }).map((c) => {
    const shape = c.body as unknown;
    const base = valid[`${c.op.method} ${c.op.path}`] ?? {};
    let body: { raw: string } | undefined;
    if (shape === undefined) body = undefined;
    else if (shape === 'valid') body = { raw: JSON.stringify(base) };
    else if (Array.isArray(shape) && shape[0] === 'mutated') body = { raw: JSON.stringify({ ...(base as object), [shape[1] as string]: shape[2] }) };
    else if (typeof shape === 'object' && shape !== null && 'raw' in shape && typeof (shape as { raw: unknown }).raw === 'string' && Object.keys(shape).length === 1) body = shape as { raw: string };
    else body = { raw: JSON.stringify(shape) };
    return { ...c, body };
  });

  // a new seed each run finds more over time; a failure names its seed, and FUZZ_SEED=<seed> replays it
  const seed = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : Math.floor(Math.random() * 2 ** 31);
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(call, async (c) => {
      let n = 0;
      // the fixture's subscription stays: a DELETE of "its own" subscription deletes one made for it
      const own = c.op.method === 'delete' && c.op.path === '/v1/subscriptions/{id}' && c.params[0] === FIT
        ? (await api(urls['subscriptions']!, a.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] })).body.id
        : undefined;
      const path = c.op.path.replace(/\{\w+\}/g, () => {
        const at = n++;
        const value = c.params[at % c.params.length]!;
        return value !== FIT ? value : (own ?? fitting(c.op.path, at));
      });
      const query = c.query.length ? '?' + c.query.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&') : '';
      const url = urls[servingFunction(c.op.path)]! + path + query;
      const what = `${c.op.method.toUpperCase()} ${path.slice(0, 120)}${query.slice(0, 80)} ${c.body?.raw.slice(0, 120) ?? ''}`;
      let res: Response;
      try {
        res = await fetch(url, {
          method: c.op.method.toUpperCase(),
          headers: { ...(c.key ? { authorization: `Bearer ${c.key}` } : {}), ...(c.contentType ? { 'content-type': c.contentType } : {}) },
          ...(c.body && c.op.method !== 'get' ? { body: c.body.raw } : {}),
          signal: AbortSignal.timeout(10_000),
        });
      } catch (err) {
        if (err instanceof TypeError && /Invalid URL|invalid/i.test(String((err as { cause?: unknown }).cause ?? err.message))) return; // the client refused to send it
        throw new Error(`${what}: ${String(err)}`);
      }
      const text = await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      assert.ok((res.status >= 200 && res.status < 300) || (res.status >= 400 && res.status < 500), `${what}: ${res.status} ${text.slice(0, 300)}`);
      if (res.status >= 400) {
        assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/, what);
        const problem = JSON.parse(text) as { status: number; title: string };
        assert.equal(problem.status, res.status, what);
        assert.equal(typeof problem.title, 'string', what);
      }
      assert.equal(child.exitCode, null, `the functions exited after ${what}: ${output().slice(-2000)}`);
    }),
    { numRuns: RUNS, seed },
  );

  t.diagnostic(`seed ${seed}; answers by status: ${JSON.stringify([...statuses].sort((x, y) => x[0] - y[0]))}`);
  // the run reached past authentication and validation, not only 401s
  const ok = [...statuses].filter(([s]) => s < 300).reduce((sum, [, n]) => sum + n, 0);
  assert.ok(ok >= 20, `only ${ok} of ${RUNS} calls succeeded: ${JSON.stringify([...statuses])}`);
  assert.ok((statuses.get(400) ?? 0) >= 20 && (statuses.get(404) ?? 0) >= 20, JSON.stringify([...statuses]));
  for (const f of FUNCTIONS) assert.equal((await fetch(`${urls[f]}/healthz`)).status, 200, f);
  assert.equal(child.exitCode, null);
  assert.doesNotMatch(output(), /"level":(50|60)/, 'no error was logged');
});
