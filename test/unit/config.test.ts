import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, loadConfig, commonSchema } from '../../platform/config/env.ts';
import { ROOT } from '../support/helpers.ts';

function start(env: Record<string, string>, fns = ['gateway']) {
  const clean: Record<string, string> = { PATH: process.env['PATH']!, HOME: process.env['HOME'] ?? '/tmp', ...env };
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'adapters/local/main.ts'), ...fns], { cwd: ROOT, env: clean, encoding: 'utf8', timeout: 60000 });
  return { status: r.status, stderr: r.stderr.trim(), stdout: r.stdout.trim() };
}

test('a missing variable stops a function at start-up with one line naming it', () => {
  const r = start({ PIONEER_KAFKA_BROKERS: '127.0.0.1:9092' });
  assert.equal(r.status, 2);
  assert.equal(r.stderr.split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /PIONEER_REDIS_URL is required/);
});

test('a malformed variable stops it with one line naming the variable and what was expected', () => {
  const r = start({ PIONEER_KAFKA_BROKERS: 'not a broker list', PIONEER_REDIS_URL: 'redis://127.0.0.1:1' });
  assert.equal(r.status, 2);
  assert.equal(r.stderr.split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /PIONEER_KAFKA_BROKERS is invalid \(expected host:port/);

  const port = start({ PIONEER_KAFKA_BROKERS: '127.0.0.1:9092', PIONEER_REDIS_URL: 'redis://127.0.0.1:1', PIONEER_GATEWAY_PORT: 'eighty' });
  assert.equal(port.status, 2);
  assert.match(port.stderr, /PIONEER_GATEWAY_PORT is invalid/);

  const heartbeat = start({ PIONEER_KAFKA_BROKERS: '127.0.0.1:9092', PIONEER_REDIS_URL: 'http://wrong', PIONEER_SSE_HEARTBEAT_MS: '-5' });
  assert.equal(heartbeat.status, 2);
  assert.match(heartbeat.stderr, /PIONEER_REDIS_URL is invalid \(expected a redis\/rediss URL\)/);
  assert.match(heartbeat.stderr, /PIONEER_SSE_HEARTBEAT_MS is invalid/);
});

test('loadConfig applies defaults and names every bad variable', () => {
  const schema = commonSchema.extend({ PIONEER_X: z.coerce.number().int().default(7) });
  const ok = loadConfig(schema, { PIONEER_REDIS_URL: 'redis://h:1', PIONEER_KAFKA_BROKERS: 'a:1,b:2' });
  assert.deepEqual(ok.PIONEER_KAFKA_BROKERS, ['a:1', 'b:2']);
  assert.equal(ok.PIONEER_X, 7);
  assert.equal(ok.PIONEER_LOG_LEVEL, 'info');
  assert.throws(() => loadConfig(schema, { PIONEER_REDIS_URL: 'redis://h:1', PIONEER_KAFKA_BROKERS: 'a:1', PIONEER_LOG_LEVEL: 'loud' }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /^invalid configuration: PIONEER_LOG_LEVEL is invalid/);
    return true;
  });
});

test('Kafka SASL without its credentials stops start-up with one line naming the missing variable', () => {
  const r = start({ PIONEER_KAFKA_BROKERS: '127.0.0.1:9092', PIONEER_REDIS_URL: 'redis://127.0.0.1:1', PIONEER_KAFKA_SASL_MECHANISM: 'scram-sha-512', PIONEER_KAFKA_SASL_USERNAME: 'pioneer' }, ['route']);
  assert.equal(r.status, 2);
  assert.equal(r.stderr.split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /PIONEER_KAFKA_SASL_PASSWORD is required with PIONEER_KAFKA_SASL_MECHANISM/);
  const bad = start({ PIONEER_KAFKA_BROKERS: '127.0.0.1:9092', PIONEER_REDIS_URL: 'redis://127.0.0.1:1', PIONEER_KAFKA_SASL_MECHANISM: 'kerberos' }, ['route']);
  assert.match(bad.stderr, /PIONEER_KAFKA_SASL_MECHANISM is invalid/);
});
