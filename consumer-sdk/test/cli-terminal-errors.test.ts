/**
 * What a user of `pioneer-consumer run` sees when retrying cannot help: one clear error line on stderr and a
 * non-zero exit status — a wrong key, a deleted or unknown subscription, an expired cursor, a bad config.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  api, cloudEvent, createTenant, createTopic, produce, randomName, redisClient, routeEnv, startPlatform,
  structuredMessage, waitFor, type TestPlatform,
} from '../../test/support/helpers.ts';
import { generateApiKey } from '../../platform/auth/api-keys.ts';
import { keys } from '../../platform/redis/keys.ts';
import { COLD_FIELD, TRIMMED_FIELD } from '../../platform/redis/streams.ts';
import { startCli, waitForLog, type CliProcess } from './cli-process.ts';

let p: TestPlatform;
const topic = randomName('sdk-cli');

before(async () => {
  await createTopic(topic, 2);
  p = await startPlatform(['subscriptions', 'route', 'gateway'], routeEnv(topic));
});
after(async () => p?.stop());

async function subscription() {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] });
  assert.equal(sub.status, 201);
  return { tenant: t, subId: sub.body.id as string };
}

function run(env: Record<string, string>): CliProcess {
  return startCli(['run'], {
    PIONEER_URL: p.url('gateway'),
    PIONEER_DIR: mkdtempSync(join(tmpdir(), 'pioneer-cli-')),
    PIONEER_HEARTBEAT_MS: '1000',
    PIONEER_RETRY_INITIAL_MS: '50',
    ...env,
  });
}

/** The process ends by itself with `status`, and its last log line is the error, saying `re`. */
async function endsWith(cli: CliProcess, status: number, code: string, re: RegExp) {
  const timer = setTimeout(() => cli.child.kill('SIGKILL'), 30000);
  const { code: exitCode } = await cli.exited;
  clearTimeout(timer);
  const last = cli.logs().at(-1);
  assert.equal(exitCode, status, cli.stderr());
  assert.equal(last?.['level'], 'error', cli.stderr());
  assert.equal(last?.['code'], code);
  assert.match(String(last?.['msg']), re);
  assert.equal(cli.logs().filter((l) => l['level'] === 'error').length, 1, 'one error line');
}

test('a wrong API key ends with "key refused" (exit 3)', async () => {
  const { subId } = await subscription();
  await endsWith(run({ PIONEER_API_KEY: generateApiKey(), PIONEER_SUBSCRIPTION: subId }), 3, 'unauthorized', /API key was refused \(401/);
});

test('a subscription of another tenant or that never existed ends with "not found" (exit 4)', async () => {
  const { subId } = await subscription();
  const other = await createTenant(p.url('subscriptions'), p.adminKey);
  await endsWith(run({ PIONEER_API_KEY: other.consumerKey, PIONEER_SUBSCRIPTION: subId }), 4, 'subscription_not_found', new RegExp(`subscription ${subId} was not found \\(404 from the gateway at ${p.url('gateway')}/`));
});

test('the subscriptions function\'s port instead of the gateway\'s ends with "no such route here", naming the URL (exit 2)', async () => {
  const { tenant, subId } = await subscription();
  const url = p.url('subscriptions');
  await endsWith(
    run({ PIONEER_URL: url, PIONEER_API_KEY: tenant.consumerKey, PIONEER_SUBSCRIPTION: subId }),
    2,
    'route_not_found',
    new RegExp(`^no such route here: ${url}/v1/subscriptions/${subId}/events answered 404 \\(a Pioneer function, but not the gateway: .*Check the URL`),
  );
});

test('deleting the subscription while the consumer streams ends it with "deleted" (exit 4); a restart then says not found', async () => {
  const { tenant, subId } = await subscription();
  const env = { PIONEER_API_KEY: tenant.consumerKey, PIONEER_SUBSCRIPTION: subId };
  const cli = run(env);
  await waitForLog(cli, 'connected');
  const del = await api(p.url('subscriptions'), tenant.key, 'DELETE', `/v1/subscriptions/${subId}`);
  assert.ok(del.status === 204 || del.status === 200, String(del.status));
  await endsWith(cli, 4, 'subscription_deleted', new RegExp(`subscription ${subId} was deleted`));
  await endsWith(run(env), 4, 'subscription_not_found', /was not found/);
});

test('a cursor older than the buffer ends with "expired", naming the oldest cursor and how to recover (exit 5)', async () => {
  const { tenant, subId } = await subscription();
  await new Promise((r) => setTimeout(r, 300));
  await produce(topic, Array.from({ length: 10 }, (_, n) => structuredMessage(cloudEvent(tenant.id, 'payment.sent', { n }, { partitionkey: 'acct-1' }))));
  const redis = redisClient();
  let ids: string[];
  try {
    const stream = keys.stream(tenant.id, subId);
    ids = await waitFor(async () => {
      const entries = (await redis.xrange(stream, '-', '+')) as [string, string[]][];
      return entries.length === 10 ? entries.map(([id]) => id) : undefined;
    });
    // the retention removed the five oldest, as the route's append does: trimmed from the hot window, and their
    // marks gone too (so the source topics cannot serve them either); both markers name the last of them
    await redis.xtrim(stream, 'MINID', ids[5]!);
    await redis.xtrim(keys.marks(tenant.id, subId), 'MINID', ids[5]!);
    await redis.hset(keys.positions(tenant.id, subId), TRIMMED_FIELD, ids[4]!, COLD_FIELD, ids[4]!);
  } finally {
    redis.disconnect();
  }
  await endsWith(
    run({ PIONEER_API_KEY: tenant.consumerKey, PIONEER_SUBSCRIPTION: subId, PIONEER_START_AFTER: ids[1]! }),
    5,
    'cursor_expired',
    new RegExp(`cursor ${ids[1]} has expired.*replay.*oldest available cursor is ${ids[4]}`),
  );
});

test('a bad configuration ends with a message naming the setting (exit 2)', async () => {
  await endsWith(run({ PIONEER_SUBSCRIPTION: 'sub_x' }), 2, 'bad_config', /PIONEER_API_KEY is not set/);
  const dir = mkdtempSync(join(tmpdir(), 'pioneer-cli-'));
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ url: p.url('gateway'), apiKey: 'pk_x', subscription: 'sub_x', dir, heartbeatMs: 'often' }));
  const cli = startCli(['run', '--config', join(dir, 'c.json')], {});
  await endsWith(cli, 2, 'bad_config', /c\.json: heartbeatMs: must be an integer/);
});
