import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, createTenant, startPlatform, type TestPlatform } from '../support/helpers.ts';

const LIMIT = 8;
let p: TestPlatform;
let url: string;
before(async () => {
  p = await startPlatform(['subscriptions'], { PIONEER_MAX_SUBSCRIPTIONS_PER_TENANT: String(LIMIT) });
  url = p.url('subscriptions');
});
after(async () => p?.stop());

test('a tenant creates, reads, lists, patches and deletes its subscriptions', async () => {
  const t = await createTenant(url, p.adminKey);
  const created = await api(url, t.key, 'POST', '/v1/subscriptions', {
    name: 'payments',
    types: ['payment.sent', 'payment.received'],
    filters: [{ any: [{ exact: { subject: 'acct-1' } }, { not: { suffix: { source: '/test' } } }] }, { sql: "amount > 10 AND currency = 'EUR'" }],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.match(created.body.id, /^sub_[0-9a-z]{26}$/);
  assert.equal(created.headers.get('location'), `/v1/subscriptions/${created.body.id}`);
  const id = created.body.id;

  assert.equal((await api(url, t.key, 'GET', `/v1/subscriptions/${id}`)).body.name, 'payments');
  assert.deepEqual((await api(url, t.consumerKey, 'GET', '/v1/subscriptions')).body.data.map((s: any) => s.id), [id]);

  const patched = await api(url, t.key, 'PATCH', `/v1/subscriptions/${id}`, { types: ['payment.sent'], name: null });
  assert.equal(patched.status, 200);
  assert.deepEqual(patched.body.types, ['payment.sent']);
  assert.equal('name' in patched.body, false);

  assert.equal((await api(url, t.key, 'DELETE', `/v1/subscriptions/${id}`)).status, 204);
  assert.equal((await api(url, t.key, 'GET', `/v1/subscriptions/${id}`)).status, 404);
  assert.equal((await api(url, t.key, 'DELETE', `/v1/subscriptions/${id}`)).status, 404);
});

test("isolation: another tenant's keys get 404 or empty lists, never data; a consumer key cannot change anything", async () => {
  const a = await createTenant(url, p.adminKey);
  const b = await createTenant(url, p.adminKey);
  const sub = (await api(url, a.key, 'POST', '/v1/subscriptions', { types: ['x'] })).body;
  for (const key of [b.key, b.consumerKey]) {
    assert.equal((await api(url, key, 'GET', `/v1/subscriptions/${sub.id}`)).status, 404);
    assert.deepEqual((await api(url, key, 'GET', '/v1/subscriptions')).body, { data: [] });
  }
  assert.equal((await api(url, b.key, 'PATCH', `/v1/subscriptions/${sub.id}`, { types: ['y'] })).status, 404);
  assert.equal((await api(url, b.key, 'DELETE', `/v1/subscriptions/${sub.id}`)).status, 404);
  assert.equal((await api(url, b.key, 'POST', `/v1/tenants/${a.id}/keys`, { role: 'consumer' })).status, 404);
  // the subscription is untouched
  assert.deepEqual((await api(url, a.key, 'GET', `/v1/subscriptions/${sub.id}`)).body.types, ['x']);

  const c = a.consumerKey;
  for (const [method, path, body] of [
    ['POST', '/v1/subscriptions', { types: ['x'] }],
    ['PATCH', `/v1/subscriptions/${sub.id}`, { types: ['y'] }],
    ['DELETE', `/v1/subscriptions/${sub.id}`, undefined],
  ] as const) {
    const r = await api(url, c, method, path, body);
    assert.equal(r.status, 403, `${method} ${path}`);
    assert.equal(r.headers.get('content-type'), 'application/problem+json');
  }
  // tenants are the platform team's
  assert.equal((await api(url, a.key, 'POST', '/v1/tenants', { name: 'mine' })).status, 403);
  // the admin key has no tenant: it sees no tenant data
  assert.equal((await api(url, p.adminKey, 'GET', `/v1/subscriptions/${sub.id}`)).status, 403);
});

test('keys: shown once, revocable; a revoked or unknown key gets 401', async () => {
  const a = await createTenant(url, p.adminKey);
  const k = await api(url, a.key, 'POST', `/v1/tenants/${a.id}/keys`, { role: 'consumer' });
  assert.equal(k.status, 201);
  assert.match(k.body.key, /^pk_/);
  assert.equal((await api(url, k.body.key, 'GET', '/v1/subscriptions')).status, 200);
  assert.equal((await api(url, a.key, 'DELETE', `/v1/keys/${k.body.id}`)).status, 204);
  const revoked = await api(url, k.body.key, 'GET', '/v1/subscriptions');
  assert.equal(revoked.status, 401);
  assert.equal(revoked.body.code, 'unauthorized');
  assert.equal((await api(url, undefined, 'GET', '/v1/subscriptions')).status, 401);
  assert.equal((await api(url, 'pk_' + 'x'.repeat(43), 'GET', '/v1/subscriptions')).status, 401);
  assert.equal((await api(url, 'garbage', 'GET', '/v1/subscriptions')).body.errors[0].field, 'header:authorization');
});

test('bad subscription bodies: each wrong field answered with a 400 problem naming it', async () => {
  const t = await createTenant(url, p.adminKey);
  const cases: [unknown, string, RegExp][] = [
    [{ types: [] }, 'types', /at least one type/],
    [{ types: 'payment.sent' }, 'types', /array/i],
    [{ types: [''] }, 'types[0]', /empty/],
    [{ types: ['x'], filters: {} }, 'filters', /array/i],
    [{ types: ['x'], filters: [{ regex: { type: '.*' } }] }, 'filters[0].regex', /unknown filter dialect 'regex'/],
    [{ types: ['x'], filters: [{ exact: { type: 'a', subject: 'b' } }] }, 'filters[0].exact', /exactly one attribute/],
    [{ types: ['x'], filters: [{ prefix: { Type: 'a' } }] }, 'filters[0].prefix.Type', /attribute name/],
    [{ types: ['x'], filters: [{ exact: { type: 'a' }, prefix: { type: 'b' } }] }, 'filters[0]', /exactly one dialect/],
    [{ types: ['x'], filters: [{ all: [] }] }, 'filters[0].all', /at least one filter/],
    [{ types: ['x'], filters: [{ not: { sql: 'amount >' } }] }, 'filters[0].not.sql', /invalid CESQL expression: .*position/],
    [{ types: ['x'], filters: [{ sql: 'NOSUCHFN(type)' }] }, 'filters[0].sql', /invalid CESQL expression/],
    [{ types: ['x'], filters: [{ any: [{ sql: "type = 'a'" }, { exact: { type: 5 } }] }] }, 'filters[0].any[1].exact.type', /string/i],
    [{ types: ['x'], sink: 'ftp://example.com/hook' }, 'sink', /.+/],
    [{ types: ['x'], colour: 'blue' }, 'body', /colour/],
  ];
  for (const [body, field, message] of cases) {
    const r = await api(url, t.key, 'POST', '/v1/subscriptions', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(r.headers.get('content-type'), 'application/problem+json');
    const hit = r.body.errors.find((e: any) => e.field === field);
    assert.ok(hit, `${JSON.stringify(body)}: expected an error on ${field}, got ${JSON.stringify(r.body.errors)}`);
    assert.match(hit.message, message);
  }
  const malformed = await api(url, t.key, 'POST', '/v1/subscriptions', '{"types": [', { 'content-type': 'application/json' });
  assert.equal(malformed.status, 400);
  assert.equal(malformed.body.code, 'malformed_json');
  const wrongType = await api(url, t.key, 'POST', '/v1/subscriptions', 'types=x', { 'content-type': 'application/x-www-form-urlencoded' });
  assert.equal(wrongType.status, 415);
  const huge = await api(url, t.key, 'POST', '/v1/subscriptions', { types: ['x'], name: 'n'.repeat(2 * 1024 * 1024) });
  assert.equal(huge.status, 413);
  const emptyPatch = await api(url, t.key, 'PATCH', `/v1/subscriptions/${(await api(url, t.key, 'POST', '/v1/subscriptions', {})).body.id}`, {});
  assert.equal(emptyPatch.status, 400);
  // the function kept running through all of it
  assert.equal((await fetch(`${url}/healthz`)).status, 200);
});

test('a consumer key may neither add nor revoke its own tenant\'s keys (403), and stays as it was', async () => {
  const t = await createTenant(url, p.adminKey);
  const own = (await api(url, t.key, 'POST', `/v1/tenants/${t.id}/keys`, { role: 'consumer' })).body;
  const add = await api(url, t.consumerKey, 'POST', `/v1/tenants/${t.id}/keys`, { role: 'tenant' });
  assert.equal(add.status, 403, JSON.stringify(add.body));
  assert.equal(add.headers.get('content-type'), 'application/problem+json');
  const revoke = await api(url, t.consumerKey, 'DELETE', `/v1/keys/${own.id}`);
  assert.equal(revoke.status, 403, JSON.stringify(revoke.body));
  // the key it tried to revoke still works, and so does its own
  assert.equal((await api(url, own.key, 'GET', '/v1/subscriptions')).status, 200);
  assert.equal((await api(url, t.consumerKey, 'GET', '/v1/subscriptions')).status, 200);
});

test(`concurrent creations never pass the per-tenant limit (${LIMIT}): the rest answer 409, and the list holds exactly the limit`, async () => {
  const t = await createTenant(url, p.adminKey);
  const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => api(url, t.key, 'POST', '/v1/subscriptions', { name: `s${i}`, types: ['x'] })));
  const statuses = answers.map((a) => a.status).sort();
  assert.equal(statuses.filter((s) => s === 201).length, LIMIT, JSON.stringify(statuses));
  assert.ok(answers.filter((a) => a.status !== 201).every((a) => a.status === 409 && a.body.code === 'too_many_subscriptions'));
  assert.equal((await api(url, t.key, 'GET', '/v1/subscriptions')).body.data.length, LIMIT);
  // deleting one makes room for exactly one
  const first = answers.find((a) => a.status === 201)!.body.id;
  assert.equal((await api(url, t.key, 'DELETE', `/v1/subscriptions/${first}`)).status, 204);
  assert.equal((await api(url, t.key, 'POST', '/v1/subscriptions', { types: ['x'] })).status, 201);
  assert.equal((await api(url, t.key, 'POST', '/v1/subscriptions', { types: ['x'] })).status, 409);
});
