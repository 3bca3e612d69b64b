/**
 * Kafka with SASL/PLAIN (a broker of the file's own, scripts/kafka.sh with KAFKA_SASL_PLAIN): the route consumes
 * with PIONEER_KAFKA_SASL_*, and the gateway's cold tier fetches the events that have left the hot window from the
 * partitions' leaders with the same credentials; a reader gets every event once, in per-key order. With a wrong
 * password the cold read fails at once (the log names the refused credentials) rather than trying again for long.
 * The test creates topics and produces on the broker's listener without authentication.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  ROOT, api, cloudEvent, createTenant, createTopic, freePort, leaveHotWindow, produce, randomName, redisClient, routeEnv, sleep, startPlatform, structuredMessage,
  type TestPlatform,
} from '../support/helpers.ts';

const run = promisify(execFile);
const kafkaDir = mkdtempSync(join(tmpdir(), 'pioneer-kafka-sasl-'));
const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await run('bash', [join(ROOT, 'scripts/kafka.sh'), 'stop', kafkaDir]).catch(() => {});
});

const KEYS = 8;
const PER_KEY = 500;

test('a broker that asks for SASL/PLAIN: the route consumes and the cold tier fetches with PIONEER_KAFKA_SASL_*; a wrong password fails the cold read at once', { timeout: 240_000 }, async () => {
  const saslPort = await freePort();
  const { stdout } = await run('bash', [join(ROOT, 'scripts/kafka.sh'), 'start', kafkaDir, String(saslPort)], {
    env: { ...process.env, KAFKA_SASL_PLAIN: 'pioneer:s3cret' },
  });
  const direct = stdout.trim();
  const topic = randomName('sasl');
  await createTopic(topic, 4, direct);
  const sasl = { PIONEER_KAFKA_BROKERS: `127.0.0.1:${saslPort}`, PIONEER_KAFKA_SASL_MECHANISM: 'plain', PIONEER_KAFKA_SASL_USERNAME: 'pioneer' };
  const p: TestPlatform = await startPlatform(['subscriptions', 'route', 'gateway'], {
    ...routeEnv(topic), ...sasl, PIONEER_KAFKA_SASL_PASSWORD: 's3cret', PIONEER_STREAM_HOT_SECONDS: '1',
  });
  cleanups.push(() => p.stop());
  const redis = redisClient();
  cleanups.push(async () => redis.disconnect());

  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['pay'] })).body.id as string;
  await sleep(400); // the route's index follows within its poll period
  const since = new Date(Date.now() - 1000).toISOString();
  await produce(
    topic,
    Array.from({ length: KEYS * PER_KEY }, (_, n) => {
      const key = `k${n % KEYS}`;
      return structuredMessage(cloudEvent(t.id, 'pay', { seq: Math.floor(n / KEYS) }, { subject: key, partitionkey: key }));
    }),
    direct,
  );
  // the route consumed every event through the authenticated listener
  await leaveHotWindow(redis, {
    tenantId: t.id, subId: sub, count: KEYS * PER_KEY, topic, brokers: direct,
    last: structuredMessage(cloudEvent(t.id, 'pay', { seq: PER_KEY }, { subject: 'k0', partitionkey: 'k0' })),
  });

  // the cold tier reads them back through the same listener
  const got: { key: string; seq: number }[] = [];
  let query = `since=${encodeURIComponent(since)}`;
  while (got.length < KEYS * PER_KEY) {
    const res = await api(p.url('gateway'), t.consumerKey, 'GET', `/v1/subscriptions/${sub}/events?${query}&limit=1000`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.ok(res.body.data.length > 0, `a page after ${got.length} events holds some`);
    for (const d of res.body.data) got.push({ key: d.event.subject, seq: d.event.data.seq });
    query = `after=${res.body.next_cursor}`;
  }
  const last = new Map<string, number>();
  for (const e of got.slice(0, KEYS * PER_KEY)) {
    assert.equal(e.seq, (last.get(e.key) ?? -1) + 1, `${e.key}: #${e.seq} follows #${last.get(e.key) ?? -1}`);
    last.set(e.key, e.seq);
  }
  for (let k = 0; k < KEYS; k++) assert.equal(last.get(`k${k}`), PER_KEY - 1, `k${k} read through its last event`);

  // a gateway with a wrong password: the cold read answers an error at once, and serves no event
  const wrong: TestPlatform = await startPlatform(['gateway'], { ...routeEnv(topic), ...sasl, PIONEER_KAFKA_SASL_PASSWORD: 'wrong', PIONEER_STREAM_HOT_SECONDS: '1' });
  cleanups.push(() => wrong.stop());
  const started = Date.now();
  const refused = await api(wrong.url('gateway'), t.consumerKey, 'GET', `/v1/subscriptions/${sub}/events?since=${encodeURIComponent(since)}&limit=10`);
  assert.ok(refused.status >= 500, `a cold read with refused credentials fails: ${refused.status} ${JSON.stringify(refused.body)}`);
  assert.ok(Date.now() - started < 10_000, `it fails without retrying for long (${Date.now() - started} ms)`);
});
