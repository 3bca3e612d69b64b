/**
 * Isolation, tried as a hostile tenant would: tenant B walks every path of openapi.yaml with tenant A's ids (its
 * subscriptions, keys, exports, replays, events, schemas), with B's tenant key and B's consumer key. Every call
 * that names one of A's resources answers 404, the others never show A's data; and afterwards A's state is as it
 * was and A's next event still reaches both its pull stream and its webhook.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, createTenant, randomName, routeEnv, sleep, startPlatform, waitFor, type TestPlatform } from '../support/helpers.ts';
import { publicOperations, servingFunction } from '../support/openapi.ts';
import { deliverEnv, ownRedis, startReceiver, waitForAll, type Receiver } from './deliver-receiver.ts';

const FUNCTIONS = ['subscriptions', 'route', 'gateway', 'deliver', 'ingest', 'export', 'insights'];

let p: TestPlatform;
let receiver: Receiver;
const topic = randomName('events');
const redis = ownRedis(); // deliver works every endpoint of its Redis: this file's own

before(async () => {
  receiver = await startReceiver();
  p = await startPlatform(FUNCTIONS, {
    PIONEER_REDIS_URL: redis.url,
    ...routeEnv(topic),
    ...deliverEnv(),
    PIONEER_INGEST_TOPIC: topic,
    PIONEER_EXPORT_DIR: mkdtempSync(join(tmpdir(), 'pioneer-exports-')),
  });
});
after(async () => {
  await receiver?.close();
  await p?.stop();
  redis.stop();
});

const CE = { 'content-type': 'application/cloudevents+json' };
const ingestEvent = (tenantid: string, n: number) => ({
  specversion: '1.0', id: randomName('evt'), source: '/test/isolation', type: 'payment.sent', tenantid,
  partitionkey: 'acct-1', datacontenttype: 'application/json', data: { n },
});

test("another tenant's ids answer 404 on every path, change nothing, and the victim's next events still arrive", async () => {
  const subsUrl = p.url('subscriptions');
  const a = await createTenant(subsUrl, p.adminKey);
  const b = await createTenant(subsUrl, p.adminKey);

  // A's resources: a pushed and a pulled subscription, a schema, an ingested event, an export and a replay
  const pushed = await api(subsUrl, a.key, 'POST', '/v1/subscriptions', { name: 'pushed', types: ['payment.sent'], sink: receiver.url });
  assert.equal(pushed.status, 201, JSON.stringify(pushed.body));
  const pulled = await api(subsUrl, a.key, 'POST', '/v1/subscriptions', { name: 'pulled', types: ['payment.sent'] });
  assert.equal(pulled.status, 201, JSON.stringify(pulled.body));
  const secret = (await api(p.url('deliver'), a.key, 'GET', `/v1/subscriptions/${pushed.body.id}/endpoint/secret`)).body.secret;
  receiver.secrets.push(secret);
  const schema = { type: 'object', properties: { n: { type: 'integer' } } };
  assert.equal((await api(subsUrl, a.key, 'PUT', '/v1/schemas/payment.sent', schema)).status, 201);
  await sleep(400); // the route's index follows within its poll period
  const first = ingestEvent(a.id, 1);
  assert.equal((await api(p.url('ingest'), a.key, 'POST', '/v1/events', first, CE)).status, 202);
  await waitForAll(receiver, [1]);
  const exp = await api(p.url('export'), a.key, 'POST', '/v1/exports', { subscription_id: pulled.body.id });
  assert.equal(exp.status, 202, JSON.stringify(exp.body));
  const replay = await api(p.url('export'), a.key, 'POST', `/v1/subscriptions/${pulled.body.id}/replay`, { since: new Date(Date.now() - 60_000).toISOString() });
  assert.equal(replay.status, 202, JSON.stringify(replay.body));
  const aKeyId = (await api(subsUrl, a.key, 'POST', `/v1/tenants/${a.id}/keys`, { role: 'consumer' })).body.id;

  const snapshot = async () => ({
    pushed: (await api(subsUrl, a.key, 'GET', `/v1/subscriptions/${pushed.body.id}`)).body,
    pulled: (await api(subsUrl, a.key, 'GET', `/v1/subscriptions/${pulled.body.id}`)).body,
    list: (await api(subsUrl, a.key, 'GET', '/v1/subscriptions')).body,
    endpoint: (await api(p.url('deliver'), a.key, 'GET', `/v1/subscriptions/${pushed.body.id}/endpoint`)).body,
    secret: (await api(p.url('deliver'), a.key, 'GET', `/v1/subscriptions/${pushed.body.id}/endpoint/secret`)).body,
    schema: (await api(subsUrl, a.key, 'GET', '/v1/schemas/payment.sent')).body,
    event: (await api(p.url('ingest'), a.key, 'GET', `/v1/events/${first.id}`)).status,
    export: (await api(p.url('export'), a.key, 'GET', `/v1/exports/${exp.body.id}`)).status,
    replay: (await api(p.url('export'), a.key, 'GET', `/v1/subscriptions/${pulled.body.id}/replays/${replay.body.id}`)).status,
    keyWorks: (await api(subsUrl, a.consumerKey, 'GET', '/v1/subscriptions')).status,
  });
  const before = await snapshot();

  // every path and method of the contract, with A's ids and bodies that would change A's data if they could
  const ids: Record<string, string> = { replayId: replay.body.id, type: 'payment.sent' };
  const bodies: Record<string, unknown> = {
    'POST /v1/tenants': { name: 'x' },
    'POST /v1/tenants/{id}/keys': { role: 'tenant' },
    'POST /v1/subscriptions': { types: ['payment.sent'] },
    'PATCH /v1/subscriptions/{id}': { types: ['hijacked'], sink: null },
    'PUT /v1/schemas/{type}': { type: 'string' },
    'POST /v1/events': ingestEvent(a.id, 99),
    'POST /v1/subscriptions/{id}/replay': { since: new Date(Date.now() - 60_000).toISOString() },
    'POST /v1/exports': { subscription_id: pulled.body.id },
  };
  const idFor = (path: string): string => {
    if (path.startsWith('/v1/tenants/')) return a.id;
    if (path.startsWith('/v1/keys/')) return aKeyId;
    if (path.startsWith('/v1/events/')) return first.id;
    if (path.startsWith('/v1/exports/')) return exp.body.id;
    return pushed.body.id;
  };
  let walked = 0;
  for (const { path, method } of publicOperations()) {
    {
      const concrete = path.replace(/\{(\w+)\}/g, (_, name: string) => (name === 'id' ? idFor(path) : ids[name]!));
      const namesA = path.includes('{') && !path.startsWith('/v1/schemas');
      for (const [who, key] of [['tenant', b.key], ['consumer', b.consumerKey]] as const) {
        const bodyOf = bodies[`${method.toUpperCase()} ${path}`];
        const r = await api(p.url(servingFunction(path)), key, method.toUpperCase(), concrete, bodyOf, path === '/v1/events' ? CE : {});
        const what = `${method.toUpperCase()} ${concrete} with B's ${who} key`;
        walked++;
        if (namesA) {
          assert.equal(r.status, 404, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
          assert.equal(r.headers.get('content-type'), 'application/problem+json', what);
        } else {
          assert.ok(r.status < 500, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
          assert.ok(!JSON.stringify(r.body ?? '').includes(pushed.body.id) && !JSON.stringify(r.body ?? '').includes(pulled.body.id), `${what} shows A's data`);
        }
      }
    }
  }
  assert.ok(walked >= 40, `walked ${walked} calls`);

  // A's state afterwards: unchanged, and its next events arrive on both paths
  assert.deepEqual(await snapshot(), before);
  await sleep(400);
  assert.equal((await api(p.url('ingest'), a.key, 'POST', '/v1/events', ingestEvent(a.id, 2), CE)).status, 202);
  await waitForAll(receiver, [2]);
  const page = await waitFor(async () => {
    const r = await api(p.url('gateway'), a.consumerKey, 'GET', `/v1/subscriptions/${pulled.body.id}/events`);
    return r.body.data.some((d: any) => d.event.data?.n === 2) ? r : undefined;
  });
  // the event B posted naming A as its tenant went to B (the key decides the tenant), never to A
  assert.ok(!page.body.data.some((d: any) => d.event.data?.n === 99), "B's event reached A's subscription");
  assert.ok(!receiver.received.some((r) => r.n === 99), "B's event reached A's webhook");
});
