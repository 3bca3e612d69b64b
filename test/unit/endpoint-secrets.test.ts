import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSecretBox, parseSecretKeys, SecretBoxError } from '../../platform/crypto/secret-box.ts';
import { currentSecret, endpointKeyParts, parseEndpoint, secretContext, signingSecrets } from '../../platform/webhooks/endpoints.ts';
import { generateSecret } from '../../platform/webhooks/signing.ts';
import { keys } from '../../platform/redis/keys.ts';

const box = createSecretBox(parseSecretKeys(`k1:${randomBytes(32).toString('base64')}`));
const ctx = secretContext('ten_a', 'sub_a', 'ep_a');
const open = (stored: string) => (stored.startsWith('whsec_') ? stored : box.open(stored, ctx));
const now = Date.now();

test('an endpoint hash opens to its secrets, sealed or (from older versions) in clear', () => {
  const current = generateSecret();
  const previous = generateSecret();
  const ep = parseEndpoint({ id: 'ep_a', secret: box.seal(current, ctx), secret_previous: previous, secret_previous_until: String(now + 60_000), state: 'enabled' }, open)!;
  assert.equal(ep.unopened, undefined);
  assert.equal(currentSecret(ep), current);
  assert.deepEqual(signingSecrets(ep, now), [current, previous]);
  assert.deepEqual(signingSecrets(ep, now + 120_000), [current], 'the previous secret stops signing after its overlap');
});

test('a secret that does not open leaves the endpoint readable, and fails whatever needs the secret', () => {
  const moved = box.seal(generateSecret(), secretContext('ten_b', 'sub_b', 'ep_b'));
  const ep = parseEndpoint({ id: 'ep_a', secret: moved, state: 'disabled', cursor: '5-0' }, open)!;
  assert.equal(ep.state, 'disabled');
  assert.equal(ep.cursor, '5-0');
  assert.ok(ep.unopened?.secret instanceof SecretBoxError);
  assert.throws(() => currentSecret(ep), /does not open/);
  assert.throws(() => signingSecrets(ep, now), /does not open/);

  // a previous secret that does not open matters only while it still signs
  const current = generateSecret();
  const withPrevious = (until: number) =>
    parseEndpoint({ id: 'ep_a', secret: box.seal(current, ctx), secret_previous: moved, secret_previous_until: String(until) }, open)!;
  assert.throws(() => signingSecrets(withPrevious(now + 60_000), now), /does not open/);
  assert.deepEqual(signingSecrets(withPrevious(now - 1), now), [current]);
  assert.equal(currentSecret(withPrevious(now + 60_000)), current);
});

test('an endpoint key parses back to its tenant and subscription; its other keys do not', () => {
  assert.deepEqual(endpointKeyParts(keys.endpoint('ten_x', 'sub_y')), { tenantId: 'ten_x', subId: 'sub_y' });
  assert.equal(endpointKeyParts(keys.endpointLease('ten_x', 'sub_y')), null);
  assert.equal(endpointKeyParts(keys.stream('ten_x', 'sub_y')), null);
});
