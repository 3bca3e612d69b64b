import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Webhook } from 'standardwebhooks';
import fc from 'fast-check';
import { generateSecret, sign, signHeaders, webhookIdOf } from '../../platform/webhooks/signing.ts';
import { categoryOf, checkEndpointUrl, urlPolicyOf } from '../../platform/webhooks/url-policy.ts';

const strict = urlPolicyOf({ PIONEER_WEBHOOK_ALLOW_HTTP: false, PIONEER_WEBHOOK_ALLOW_NETWORKS: [] });

test('signatures verify with the standardwebhooks package, with either secret during a rotation', () => {
  const current = generateSecret();
  const previous = generateSecret();
  assert.match(current, /^whsec_[A-Za-z0-9+/]{43}=$/);
  const body = JSON.stringify({ specversion: '1.0', id: '1', source: '/s', type: 't' });
  const headers = signHeaders([current, previous], 'msg_1', new Date(), body);
  assert.equal(headers['webhook-signature'].split(' ').length, 2);
  assert.ok(headers['webhook-signature'].split(' ').every((s) => s.startsWith('v1,')));
  assert.deepEqual(new Webhook(current).verify(body, { ...headers }), JSON.parse(body));
  assert.deepEqual(new Webhook(previous).verify(body, { ...headers }), JSON.parse(body));
  assert.throws(() => new Webhook(generateSecret()).verify(body, { ...headers }), /No matching signature/);
  assert.throws(() => new Webhook(current).verify(body + ' ', { ...headers }), /No matching signature/);
});

test('each signature is the one the standardwebhooks package makes, for any secret, id, time and body', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 64 }),
      fc.string({ minLength: 1, maxLength: 40 }),
      fc.integer({ min: 0, max: 4_102_444_800_000 }),
      fc.string({ unit: 'binary', maxLength: 2000 }),
      (key, id, ms, body) => {
        const secret = 'whsec_' + Buffer.from(key).toString('base64');
        const at = new Date(ms);
        assert.equal(sign(secret, id, at, body), new Webhook(secret).sign(id, at, body));
      },
    ),
    { numRuns: 500 },
  );
});

test('the webhook-id depends only on the event source and id', () => {
  assert.equal(webhookIdOf('/bank', 'e1'), webhookIdOf('/bank', 'e1'));
  assert.notEqual(webhookIdOf('/bank', 'e1'), webhookIdOf('/bank', 'e2'));
  assert.notEqual(webhookIdOf('/bank/', 'e1'), webhookIdOf('/bank', '/e1'));
  assert.match(webhookIdOf('/bank', 'e1'), /^msg_[A-Za-z0-9_-]{32}$/);
});

test('address categories: loopback, private, link-local, CGNAT, unspecified, also IPv4-mapped; public ones pass', () => {
  const cases: [string, string | null][] = [
    ['127.0.0.1', 'loopback'], ['::1', 'loopback'], ['::ffff:127.0.0.1', 'loopback'],
    ['10.1.2.3', 'private'], ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.0.10', 'private'], ['fd12::1', 'private'],
    ['169.254.169.254', 'link-local'], ['fe80::1', 'link-local'], ['100.64.0.1', 'cgnat'], ['100.127.255.254', 'cgnat'],
    ['0.0.0.0', 'unspecified'], ['::', 'unspecified'],
    ['8.8.8.8', null], ['172.32.0.1', null], ['100.128.0.1', null], ['2606:4700::1111', null],
  ];
  for (const [address, category] of cases) assert.equal(categoryOf(address), category, address);
});

test('endpoint URLs: https only unless allowed, no credentials, forbidden addresses unless their category is allowed', async () => {
  await assert.rejects(checkEndpointUrl('http://8.8.8.8/hook', strict), /must be an https URL/);
  await assert.rejects(checkEndpointUrl('https://user:pw@8.8.8.8/hook', strict), /credentials/);
  await assert.rejects(checkEndpointUrl('https://127.0.0.1/hook', strict), /loopback address/);
  await assert.rejects(checkEndpointUrl('https://[::1]:8443/hook', strict), /loopback address/);
  await assert.rejects(checkEndpointUrl('https://localhost/hook', strict), /host localhost resolves to .* loopback address/);
  await assert.rejects(checkEndpointUrl('https://10.0.0.5/hook', strict), /private address/);
  assert.equal((await checkEndpointUrl('https://8.8.8.8/hook', strict)).hostname, '8.8.8.8');
  const loopback = urlPolicyOf({ PIONEER_WEBHOOK_ALLOW_HTTP: true, PIONEER_WEBHOOK_ALLOW_NETWORKS: ['loopback'] });
  assert.equal((await checkEndpointUrl('http://127.0.0.1:9/hook', loopback)).port, '9');
  await assert.rejects(checkEndpointUrl('http://10.0.0.5/hook', loopback), /private address/);
  const all = urlPolicyOf({ PIONEER_WEBHOOK_ALLOW_HTTP: false, PIONEER_WEBHOOK_ALLOW_NETWORKS: ['all'] });
  assert.ok(await checkEndpointUrl('https://169.254.169.254/', all));
});
