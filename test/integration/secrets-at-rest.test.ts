/**
 * Webhook signing secrets at rest: nothing in Redis (any key, any type) shows a secret, while webhooks are
 * delivered and verify with the secret the API returns; secrets stored in clear by an older version still sign
 * and are sealed by a rotation or by `npm run secrets:reencrypt`, which also moves every secret to a new key.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import {
  api, cloudEvent, createTenant, createTopic, produce, randomName, redisClient, routeEnv, ROOT, sleep, startPlatform,
  structuredMessage, type TestPlatform,
} from '../support/helpers.ts';
import { generateSecret } from '../../platform/webhooks/signing.ts';
import { keys } from '../../platform/redis/keys.ts';
import { deliverEnv, ownRedis, startReceiver, subscribe, waitForAll, type Receiver } from './deliver-receiver.ts';

const run = promisify(execFile);
const topic = randomName('events');
const server = ownRedis();
let p: TestPlatform; // subscriptions and route
let deliver: TestPlatform;
let redis: Redis;
const receivers: Receiver[] = [];
/** every secret handed out in this file, to look for in Redis */
const secrets = new Set<string>();

before(async () => {
  await createTopic(topic, 2);
  p = await startPlatform(['subscriptions', 'route'], { PIONEER_REDIS_URL: server.url, ...routeEnv(topic), ...deliverEnv() });
  deliver = await startPlatform(['deliver'], { PIONEER_REDIS_URL: server.url, ...deliverEnv() });
  redis = redisClient(server.url);
});
after(async () => {
  for (const r of receivers) await r.close();
  await deliver?.stop();
  await p?.stop();
  redis?.disconnect();
  server.stop();
});

async function receiver(): Promise<Receiver> {
  const r = await startReceiver();
  receivers.push(r);
  return r;
}

/** A tenant's subscription pushing to a new receiver; `send(ns)` produces events with data.n. */
async function setup() {
  const r = await receiver();
  const type = randomName('payment.sent');
  const s = await subscribe(p.url('subscriptions'), deliver.url('deliver'), p.adminKey, r, type);
  secrets.add(s.secret);
  const send = (ns: number[]) => produce(topic, ns.map((n) => structuredMessage(cloudEvent(s.tenant.id, type, { n }, { partitionkey: 'acct-1' }))));
  return { ...s, r, type, send };
}

const secretOf = async (key: string, subId: string) => (await api(deliver.url('deliver'), key, 'GET', `/v1/subscriptions/${subId}/endpoint/secret`)).body.secret as string;

async function rotate(key: string, subId: string): Promise<string> {
  const res = await api(deliver.url('deliver'), key, 'POST', `/v1/subscriptions/${subId}/endpoint/rotate-secret`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  secrets.add(res.body.secret);
  return res.body.secret;
}

/** Writes `secret` in clear into an endpoint, as versions before sealing stored it. */
async function storeInClear(tenantId: string, subId: string, secret: string): Promise<void> {
  await redis.hset(keys.endpoint(tenantId, subId), 'secret', secret);
  secrets.add(secret);
}

/** Every key of the Redis server and everything in it, whatever its type, as text. */
async function everything(): Promise<{ keys: number; text: string }> {
  const parts: string[] = [];
  let cursor = '0';
  let count = 0;
  do {
    const [next, found] = await redis.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const key of found) {
      count++;
      parts.push(key);
      const type = await redis.type(key);
      if (type === 'string') parts.push((await redis.get(key)) ?? '');
      else if (type === 'hash') parts.push(...Object.entries(await redis.hgetall(key)).flat());
      else if (type === 'list') parts.push(...(await redis.lrange(key, 0, -1)));
      else if (type === 'set') parts.push(...(await redis.smembers(key)));
      else if (type === 'zset') parts.push(...(await redis.zrange(key, '0', '-1', 'WITHSCORES')));
      else if (type === 'stream') for (const [id, fields] of (await redis.xrange(key, '-', '+')) as [string, string[]][]) parts.push(id, ...fields);
      else assert.fail(`key ${key} has type ${type}, which this test does not read`);
    }
  } while (cursor !== '0');
  return { keys: count, text: parts.join('\n') };
}

/** Asserts that no secret handed out (nor any whsec_ value) can be read in Redis. */
async function assertNoSecretInRedis(): Promise<void> {
  const { keys: count, text } = await everything();
  assert.ok(count > 20, `read ${count} keys`);
  assert.ok(!text.includes('whsec_'), 'a whsec_ value is stored in Redis');
  for (const s of secrets) assert.ok(!text.includes(s.slice('whsec_'.length)), 'the key material of a secret is stored in Redis');
}

const stored = async (tenantId: string, subId: string) => redis.hgetall(keys.endpoint(tenantId, subId));

test('no secret is readable anywhere in Redis, while webhooks are delivered and verify with the secret the API returns', async () => {
  // a sink given at creation, one set later, a second tenant's, and a pull-only subscription beside them
  const a = await setup();
  const b = await setup();
  const late = await receiver();
  const lateType = randomName('payment.sent');
  const pull = await api(p.url('subscriptions'), a.tenant.key, 'POST', '/v1/subscriptions', { types: [lateType] });
  assert.equal(pull.status, 201);
  const patched = await api(p.url('subscriptions'), a.tenant.key, 'PATCH', `/v1/subscriptions/${pull.body.id}`, { sink: late.url });
  assert.equal(patched.status, 200);
  const lateSecret = await secretOf(a.tenant.key, pull.body.id);
  assert.match(lateSecret, /^whsec_/);
  late.secrets.push(lateSecret);
  secrets.add(lateSecret);
  const other = await createTenant(p.url('subscriptions'), p.adminKey);
  assert.equal((await api(p.url('subscriptions'), other.key, 'POST', '/v1/subscriptions', { types: ['x.y'] })).status, 201);
  await sleep(300); // the route follows subscription changes within its poll period

  await a.send([1, 2]);
  await b.send([1]);
  await produce(topic, [structuredMessage(cloudEvent(a.tenant.id, lateType, { n: 7 }, { partitionkey: 'acct-1' }))]);
  await Promise.all([waitForAll(a.r, [1, 2]), waitForAll(b.r, [1]), waitForAll(late, [7])]);
  for (const [r, secret] of [[a.r, a.secret], [b.r, b.secret], [late, lateSecret]] as const)
    assert.ok(r.received.every((x) => x.verifiedWith.length === 1 && x.verifiedWith[0] === secret), 'every request verifies with the secret the API returned');

  // a rotation: both secrets sign during the overlap, the API returns the new one
  const rotated = await rotate(a.tenant.key, a.subId);
  a.r.secrets.push(rotated);
  await a.send([3]);
  await waitForAll(a.r, [3]);
  assert.deepEqual(a.r.received.find((x) => x.n === 3)!.verifiedWith.sort(), [a.secret, rotated].sort());
  assert.equal(await secretOf(a.tenant.key, a.subId), rotated);

  // what Redis holds: no secret anywhere, sealed values with the configured key
  await assertNoSecretInRedis();
  const epA = await stored(a.tenant.id, a.subId);
  assert.match(epA['secret']!, /^enc:v1:test:/);
  assert.match(epA['secret_previous']!, /^enc:v1:test:/);
  assert.match((await stored(b.tenant.id, b.subId))['secret']!, /^enc:v1:test:/);
  assert.match((await stored(a.tenant.id, pull.body.id))['secret']!, /^enc:v1:test:/);
});

test('a sealed secret copied to another endpoint does not open there: the API answers 500, and a rotation recovers', async () => {
  const a = await setup();
  const b = await setup();
  const own = (await stored(b.tenant.id, b.subId))['secret']!;
  await redis.hset(keys.endpoint(b.tenant.id, b.subId), 'secret', (await stored(a.tenant.id, a.subId))['secret']!);
  const res = await api(deliver.url('deliver'), b.tenant.key, 'GET', `/v1/subscriptions/${b.subId}/endpoint/secret`);
  assert.equal(res.status, 500);
  assert.ok(!JSON.stringify(res.body).includes('whsec_'));
  await redis.hset(keys.endpoint(b.tenant.id, b.subId), 'secret', own);
  assert.equal(await secretOf(b.tenant.key, b.subId), b.secret);

  // a secret that does not open (its key gone, or changed in Redis): a rotation gives a working one, no overlap
  await redis.hset(keys.endpoint(b.tenant.id, b.subId), 'secret', (await stored(a.tenant.id, a.subId))['secret']!);
  const fresh = await rotate(b.tenant.key, b.subId);
  assert.equal(await secretOf(b.tenant.key, b.subId), fresh);
  const ep = await stored(b.tenant.id, b.subId);
  assert.equal(ep['secret_previous'], undefined);
  b.r.secrets.splice(0, b.r.secrets.length, fresh);
  await sleep(300);
  await b.send([1]);
  await waitForAll(b.r, [1]);
  assert.deepEqual(b.r.received[0]!.verifiedWith, [fresh]);
});

test('a secret stored in clear by an older version still signs, and a rotation seals both it and the new one', async () => {
  const s = await setup();
  const plain = generateSecret();
  await storeInClear(s.tenant.id, s.subId, plain);
  s.r.secrets.splice(0, s.r.secrets.length, plain);
  assert.equal(await secretOf(s.tenant.key, s.subId), plain);
  await sleep(300);
  await s.send([1]);
  await waitForAll(s.r, [1]);
  assert.deepEqual(s.r.received[0]!.verifiedWith, [plain]);

  const rotated = await rotate(s.tenant.key, s.subId);
  s.r.secrets.push(rotated);
  const ep = await stored(s.tenant.id, s.subId);
  assert.match(ep['secret']!, /^enc:v1:test:/);
  assert.match(ep['secret_previous']!, /^enc:v1:test:/, 'the secret in clear is sealed on its way to secret_previous');
  await s.send([2]);
  await waitForAll(s.r, [2]);
  assert.deepEqual(s.r.received.find((x) => x.n === 2)!.verifiedWith.sort(), [plain, rotated].sort());
});

/** Runs scripts/reencrypt-secrets.ts against this file's Redis with `secretKeys`. */
async function reencrypt(secretKeys: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { PATH: process.env['PATH'] ?? '', PIONEER_REDIS_URL: server.url, PIONEER_SECRET_KEYS: secretKeys };
  return run(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/reencrypt-secrets.ts'), ...args], { cwd: ROOT, env }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

test('secrets:reencrypt seals secrets left in clear and moves every secret to the new first key; a deliver with only that key signs as before', async () => {
  const legacy = await setup();
  const plain = generateSecret();
  await storeInClear(legacy.tenant.id, legacy.subId, plain);
  legacy.r.secrets.splice(0, legacy.r.secrets.length, plain);
  const current = await setup();
  const rotatedFrom = await setup();
  const rotated = await rotate(rotatedFrom.tenant.key, rotatedFrom.subId);
  rotatedFrom.r.secrets.push(rotated);
  const testKeys = deliver.env['PIONEER_SECRET_KEYS']!;

  const found = await reencrypt(testKeys, '--check');
  assert.equal(found.code, 1, found.stdout + found.stderr);
  assert.match(found.stderr, new RegExp(`${legacy.tenant.id}/${legacy.subId}: secrets stored in clear`));

  // a new key put first, the old one kept: everything is sealed again with the new key
  const newKey = `k2:${randomBytes(32).toString('base64')}`;
  const first = await reencrypt(`${newKey},${testKeys}`);
  assert.equal(first.code, 0, first.stdout + first.stderr);
  assert.match(first.stdout, /re-encrypting webhook secrets with key k2/);
  const done = /done: (\d+) endpoints: (\d+) re-encrypted, 0 already current, 0 deleted meanwhile, 0 failed; stored secrets found: (.*)/.exec(first.stdout);
  assert.ok(done, first.stdout);
  assert.equal(done[1], done[2], 'every endpoint was re-encrypted');
  assert.match(done[3]!, /1 in clear/);
  const again = await reencrypt(`${newKey},${testKeys}`);
  assert.match(again.stdout, /done: \d+ endpoints: 0 re-encrypted/);
  const onlyNew = await reencrypt(newKey, '--check');
  assert.equal(onlyNew.code, 0, onlyNew.stdout + onlyNew.stderr);
  for (const s of [legacy, current, rotatedFrom]) {
    const ep = await stored(s.tenant.id, s.subId);
    assert.match(ep['secret']!, /^enc:v1:k2:/);
    if (ep['secret_previous']) assert.match(ep['secret_previous'], /^enc:v1:k2:/);
  }
  await assertNoSecretInRedis();

  // a secret that does not open is left as it is, named, and fails the run
  const broken = await setup();
  await redis.hset(keys.endpoint(broken.tenant.id, broken.subId), 'secret', (await stored(current.tenant.id, current.subId))['secret']!);
  const failed = await reencrypt(`${newKey},${testKeys}`);
  assert.equal(failed.code, 1, failed.stdout + failed.stderr);
  assert.match(failed.stderr, new RegExp(`${broken.tenant.id}/${broken.subId}: a stored secret sealed with key "k2" does not open`));
  assert.match(failed.stdout, /done: .* 1 failed/);

  // the old key removed: a deliver with the new key alone returns the same secrets and signs with them
  await deliver.stop();
  deliver = await startPlatform(['deliver'], { PIONEER_REDIS_URL: server.url, ...deliverEnv(), PIONEER_SECRET_KEYS: newKey });
  assert.equal(await secretOf(legacy.tenant.key, legacy.subId), plain);
  assert.equal(await secretOf(current.tenant.key, current.subId), current.secret);
  assert.equal(await secretOf(rotatedFrom.tenant.key, rotatedFrom.subId), rotated);
  await Promise.all([legacy.send([1]), current.send([1]), rotatedFrom.send([1])]);
  await Promise.all([waitForAll(legacy.r, [1]), waitForAll(current.r, [1]), waitForAll(rotatedFrom.r, [1])]);
  assert.deepEqual(legacy.r.received[0]!.verifiedWith, [plain]);
  assert.deepEqual(current.r.received[0]!.verifiedWith, [current.secret]);
  assert.deepEqual(rotatedFrom.r.received[0]!.verifiedWith.sort(), [rotatedFrom.secret, rotated].sort());
});
