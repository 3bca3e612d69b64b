import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, createTenant, redisClient, startPlatform, type TestPlatform } from '../support/helpers.ts';
import { keys } from '../../platform/redis/keys.ts';
import { endpointKeys } from '../../platform/webhooks/endpoints.ts';
import { ownRedis } from './deliver-receiver.ts';

// the operator's defaults: https only, public addresses only
let p: TestPlatform;
let tenant: Awaited<ReturnType<typeof createTenant>>;
const redis = ownRedis();

before(async () => {
  p = await startPlatform(['subscriptions', 'deliver'], { PIONEER_REDIS_URL: redis.url, PIONEER_DELIVER_TIMEOUT_MS: '1000' });
  tenant = await createTenant(p.url('subscriptions'), p.adminKey);
});
after(async () => {
  await p?.stop();
  redis.stop();
});

const refused: [string, RegExp][] = [
  ['not a url', /must be an absolute https URL/],
  ['ftp://8.8.8.8/hook', /must be an absolute https URL/],
  ['/relative/hook', /must be an absolute https URL/],
  ['http://8.8.8.8/hook', /must be an https URL/],
  ['https://user:secret@8.8.8.8/hook', /credentials/],
  ['https://127.0.0.1/hook', /127\.0\.0\.1 is a loopback address/],
  ['https://localhost:8443/hook', /host localhost resolves to .*loopback address/],
  ['https://[::1]/hook', /loopback address/],
  ['https://10.1.2.3/hook', /private address/],
  ['https://172.20.0.1/hook', /private address/],
  ['https://192.168.1.10/hook', /private address/],
  ['https://[fd00::1]/hook', /private address/],
  ['https://169.254.169.254/latest/meta-data', /link-local address/],
  ['https://[fe80::1]/hook', /link-local address/],
  ['https://100.64.0.1/hook', /cgnat address/],
  ['https://0.0.0.0/hook', /unspecified address/],
  ['https://[::ffff:127.0.0.1]/hook', /loopback address/],
  [`https://8.8.8.8/${'a'.repeat(2100)}`, /at most 2048 characters/],
];

test('a subscription with a bad or non-public sink is refused with a 400 naming sink', async () => {
  for (const [sink, message] of refused) {
    const res = await api(p.url('subscriptions'), tenant.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'], sink });
    assert.equal(res.status, 400, `${sink}: ${JSON.stringify(res.body)}`);
    assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
    assert.equal(res.body.errors[0].field, 'sink', sink);
    assert.match(res.body.errors[0].message, message, sink);
    assert.match(res.body.title, /^sink: /);
  }
  const list = await api(p.url('subscriptions'), tenant.key, 'GET', '/v1/subscriptions');
  assert.equal(list.body.data.length, 0, 'nothing was created');
});

test('PATCH refuses the same sinks and keeps the subscription as it was', async () => {
  const sub = await api(p.url('subscriptions'), tenant.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] });
  assert.equal(sub.status, 201);
  for (const [sink, message] of refused) {
    const res = await api(p.url('subscriptions'), tenant.key, 'PATCH', `/v1/subscriptions/${sub.body.id}`, { sink });
    assert.equal(res.status, 400, `${sink}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.errors[0].field, 'sink');
    assert.match(res.body.errors[0].message, message, sink);
  }
  const now = await api(p.url('subscriptions'), tenant.key, 'GET', `/v1/subscriptions/${sub.body.id}`);
  assert.equal(now.body.sink, undefined);
  assert.equal((await api(p.url('deliver'), tenant.key, 'GET', `/v1/subscriptions/${sub.body.id}/endpoint`)).status, 404);
});

test('a public https sink is accepted and gets an endpoint with a whsec_ secret; removing the sink removes it', async () => {
  const sub = await api(p.url('subscriptions'), tenant.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'], sink: 'https://203.0.113.10/hooks/pioneer' });
  assert.equal(sub.status, 201, JSON.stringify(sub.body));
  assert.equal(sub.body.sink, 'https://203.0.113.10/hooks/pioneer');
  const secret = await api(p.url('deliver'), tenant.key, 'GET', `/v1/subscriptions/${sub.body.id}/endpoint/secret`);
  assert.equal(secret.status, 200);
  assert.match(secret.body.secret, /^whsec_[A-Za-z0-9+/=]{40,}$/);
  // stop it trying to reach the address from this test
  assert.equal((await api(p.url('deliver'), tenant.key, 'POST', `/v1/subscriptions/${sub.body.id}/endpoint/disable`)).body.state, 'disabled');

  const unset = await api(p.url('subscriptions'), tenant.key, 'PATCH', `/v1/subscriptions/${sub.body.id}`, { sink: null });
  assert.equal(unset.status, 200);
  assert.equal((await api(p.url('deliver'), tenant.key, 'GET', `/v1/subscriptions/${sub.body.id}/endpoint`)).status, 404);
});

test('deleting a subscription with a sink deletes its endpoint, attempts and dead letters with it', async () => {
  const sub = await api(p.url('subscriptions'), tenant.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'], sink: 'https://203.0.113.11/hooks/pioneer' });
  assert.equal(sub.status, 201, JSON.stringify(sub.body));
  assert.equal((await api(p.url('deliver'), tenant.key, 'POST', `/v1/subscriptions/${sub.body.id}/endpoint/disable`)).body.state, 'disabled');
  const r = redisClient(redis.url);
  try {
    const all = endpointKeys(tenant.id, sub.body.id);
    await r.xadd(keys.deadLetters(tenant.id, sub.body.id), '*', 'cursor', '0-1'); // a dead letter, as deliver would leave it
    assert.ok((await r.exists(...all)) >= 2, 'the endpoint and its dead letters exist');
    assert.equal((await api(p.url('subscriptions'), tenant.key, 'DELETE', `/v1/subscriptions/${sub.body.id}`)).status, 204);
    assert.equal(await r.exists(...all), 0, 'nothing of the endpoint is left behind');
    assert.equal((await api(p.url('deliver'), tenant.key, 'GET', `/v1/subscriptions/${sub.body.id}/endpoint`)).status, 404);
  } finally {
    r.disconnect();
  }
});

test('malformed deliver API input answers 400 naming the field', async () => {
  const sub = await api(p.url('subscriptions'), tenant.key, 'POST', '/v1/subscriptions', { types: ['x'] });
  for (const q of ['limit=0', 'limit=abc', 'limit=100000']) {
    const res = await api(p.url('deliver'), tenant.key, 'GET', `/v1/subscriptions/${sub.body.id}/dead-letters?${q}`);
    assert.equal(res.status, 400, q);
    assert.equal(res.body.errors[0].field, 'query:limit');
  }
  // a part past 2^64-1 is no stream id either: Redis would refuse it, which must not come back as a 500
  for (const q of ['after=yesterday', 'after=99999999999999999999-0', 'after=0-18446744073709551616']) {
    const after = await api(p.url('deliver'), tenant.key, 'GET', `/v1/subscriptions/${sub.body.id}/dead-letters?${q}`);
    assert.equal(after.status, 400, q);
    assert.equal(after.body.errors[0].field, 'query:after');
  }
});
