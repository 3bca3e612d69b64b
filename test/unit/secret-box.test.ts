import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { loadConfig } from '../../platform/config/env.ts';
import { FUNCTIONS } from '../../functions/registry.ts';
import { createSecretBox, isSealed, parseSecretKeys, secretKeysEnv, SecretBoxError } from '../../platform/crypto/secret-box.ts';
import { secretContext } from '../../platform/webhooks/endpoints.ts';
import { ROOT } from '../support/helpers.ts';

const entry = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;
const SECRET = 'whsec_' + randomBytes(32).toString('base64');
const CTX = secretContext('ten_a', 'sub_a', 'ep_a');

/** Flips one bit of the byte at `at` of a base64 field. */
function flip(b64: string, at: number): string {
  const bytes = Buffer.from(b64, 'base64');
  bytes[at] = bytes[at]! ^ 1;
  return bytes.toString('base64');
}

test('a sealed value opens to what was sealed, and shows neither the plaintext nor its bytes', () => {
  const box = createSecretBox(parseSecretKeys(entry('k1')));
  const sealed = box.seal(SECRET, CTX);
  assert.match(sealed, /^enc:v1:k1:[A-Za-z0-9+/=]{16}:[A-Za-z0-9+/=]+$/);
  assert.ok(isSealed(sealed));
  assert.ok(!sealed.includes('whsec_'));
  assert.ok(!sealed.includes(SECRET.slice(6)));
  assert.equal(box.open(sealed, CTX), SECRET);
  assert.notEqual(box.seal(SECRET, CTX), sealed, 'a fresh IV each time');
  assert.equal(box.keyIdOf(sealed), 'k1');
  assert.equal(box.keyIdOf(SECRET), null);
});

test('a changed ciphertext, tag or IV does not open, even after the original was opened', () => {
  const box = createSecretBox(parseSecretKeys(entry('k1')));
  const sealed = box.seal(SECRET, CTX);
  assert.equal(box.open(sealed, CTX), SECRET);
  const [prefix, version, id, iv, body] = sealed.split(':') as [string, string, string, string, string];
  const bodyLength = Buffer.from(body, 'base64').length;
  for (const tampered of [
    [prefix, version, id, iv, flip(body, 0)].join(':'), // ciphertext
    [prefix, version, id, iv, flip(body, bodyLength - 1)].join(':'), // tag
    [prefix, version, id, flip(iv, 0), body].join(':'), // iv
  ])
    assert.throws(() => box.open(tampered, CTX), (err: unknown) => err instanceof SecretBoxError && err.code === 'secret_not_opened' && /does not open/.test(err.message));
  assert.throws(() => box.open('enc:v1:k1:abc', CTX), (err: unknown) => err instanceof SecretBoxError && err.code === 'malformed_sealed_value');
  assert.throws(() => box.open('enc:v2:k1:a:b', CTX), /not a sealed value/);
});

test('a value opens only under the context it was sealed for: another endpoint, subscription or tenant fails', () => {
  const box = createSecretBox(parseSecretKeys(entry('k1')));
  const sealed = box.seal(SECRET, CTX);
  for (const other of [secretContext('ten_a', 'sub_a', 'ep_b'), secretContext('ten_a', 'sub_b', 'ep_a'), secretContext('ten_b', 'sub_a', 'ep_a')])
    assert.throws(() => box.open(sealed, other), (err: unknown) => err instanceof SecretBoxError && err.code === 'secret_not_opened');
  assert.equal(box.open(sealed, CTX), SECRET);
});

test('a value sealed with a key that is not configured names that key and the variable', () => {
  const old = createSecretBox(parseSecretKeys(entry('k-old')));
  const sealed = old.seal(SECRET, CTX);
  const box = createSecretBox(parseSecretKeys([entry('k2'), entry('k1')].join(',')));
  assert.throws(
    () => box.open(sealed, CTX),
    (err: unknown) => err instanceof SecretBoxError && err.code === 'unknown_secret_key' && /key "k-old", which PIONEER_SECRET_KEYS does not hold \(it holds "k2", "k1"\)/.test(err.message),
  );
  // another key under the same id does not open it either
  const sameId = createSecretBox(parseSecretKeys(entry('k-old')));
  assert.throws(() => sameId.open(sealed, CTX), (err: unknown) => err instanceof SecretBoxError && err.code === 'secret_not_opened');
});

test('rotation: with a new key put first, values sealed with the old key still open, and new ones use the new key', () => {
  const k1 = entry('k1');
  const before = createSecretBox(parseSecretKeys(k1));
  const old = before.seal(SECRET, CTX);
  const after = createSecretBox(parseSecretKeys(`${entry('k2')},${k1}`));
  assert.equal(after.sealingKeyId, 'k2');
  assert.equal(after.open(old, CTX), SECRET);
  const fresh = after.seal(SECRET, CTX);
  assert.equal(after.keyIdOf(fresh), 'k2');
  assert.equal(after.open(fresh, CTX), SECRET);
  // the old key alone cannot read what the new one sealed: every instance needs the new key before it seals
  assert.throws(() => before.open(fresh, CTX), /key "k2"/);
});

test('PIONEER_SECRET_KEYS: required, and each bad entry named without echoing the key', () => {
  const schema = z.object(secretKeysEnv);
  assert.throws(() => loadConfig(schema, {}), /PIONEER_SECRET_KEYS is required/);
  const short = randomBytes(16).toString('base64');
  const cases: [string, RegExp][] = [
    [`k1:${short}`, /entry 1 \("k1"\): the key is 16 bytes, expected 32/],
    ['k1', /entry 1: expected id:base64key/],
    [`${entry('k1')},k 2:${randomBytes(32).toString('base64')}`, /entry 2: the key id must be/],
    [`${entry('k1')},${entry('k1')}`, /entry 2 \("k1"\): the key id appears twice/],
    ['k1:not*base64', /entry 1 \("k1"\): the key is not base64/],
    [' , ', /expected one or more id:base64key pairs/],
  ];
  for (const [value, re] of cases)
    assert.throws(() => loadConfig(schema, { PIONEER_SECRET_KEYS: value }), (err: Error) => {
      assert.match(err.message, /^invalid configuration: PIONEER_SECRET_KEYS is invalid/);
      assert.match(err.message, re);
      assert.ok(!err.message.includes(short));
      return true;
    });
  const two = loadConfig(schema, { PIONEER_SECRET_KEYS: ` ${entry('b')} , ${entry('a')} ` }).PIONEER_SECRET_KEYS;
  assert.deepEqual(two.map((k) => k.id), ['b', 'a']);
  // what `npm run secret-key` prints
  const printed = execFileSync('npm', ['run', '-s', 'secret-key'], { cwd: ROOT, encoding: 'utf8' }).trim();
  assert.match(printed, /^k\d{8}:[A-Za-z0-9+/]{43}=$/);
  assert.equal(parseSecretKeys(printed)[0]!.id, printed.split(':')[0]);
});

test('the functions that handle webhook secrets do not start without PIONEER_SECRET_KEYS; the others do not read it', () => {
  const base = { PIONEER_REDIS_URL: 'redis://127.0.0.1:6379', PIONEER_KAFKA_BROKERS: '127.0.0.1:9092' };
  for (const name of ['subscriptions', 'deliver']) {
    assert.throws(() => loadConfig(FUNCTIONS[name]!.config, base), /PIONEER_SECRET_KEYS is required/, name);
    assert.throws(() => loadConfig(FUNCTIONS[name]!.config, { ...base, PIONEER_SECRET_KEYS: '' }), /PIONEER_SECRET_KEYS is required/, name);
  }
  const readers = Object.keys(FUNCTIONS).filter((n) => 'PIONEER_SECRET_KEYS' in (FUNCTIONS[n]!.config as unknown as { shape: object }).shape);
  assert.deepEqual(readers.sort(), ['deliver', 'subscriptions']);
});
