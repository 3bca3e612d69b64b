import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, parseArgs } from '../src/config.ts';
import { ConsumerError } from '../src/errors.ts';

const env = { PIONEER_URL: 'http://localhost:8083', PIONEER_API_KEY: 'pk_x', PIONEER_SUBSCRIPTION: 'sub_1', PIONEER_DIR: '/tmp/x' };

test('flags win over the environment, which wins over the config file', () => {
  const file = JSON.stringify({ url: 'http://file:1', subscription: 'sub_file', dir: '/file', heartbeatMs: 2000, maxBatchEvents: 50 });
  const { flags } = parseArgs(['run', '--config', 'c.json', '--dir=/flag', '--start-after', '5-1']);
  const cfg = loadConfig({ flags, env: { PIONEER_API_KEY: 'pk_env', PIONEER_SUBSCRIPTION: 'sub_env', PIONEER_MAX_BATCH_EVENTS: '70' }, readFile: () => file });
  assert.equal(cfg.url, 'http://file:1');
  assert.equal(cfg.subscription, 'sub_env');
  assert.equal(cfg.dir, '/flag');
  assert.equal(cfg.apiKey, 'pk_env');
  assert.equal(cfg.startAfter, '5-1');
  assert.equal(cfg.heartbeatMs, 2000);
  assert.equal(cfg.maxBatchEvents, 70);
  assert.equal(cfg.maxBatchWaitMs, 0);
});

test('bad values are refused with a message naming where they came from', () => {
  const bad = (e: Record<string, string>, re: RegExp, args: string[] = ['run']) =>
    assert.throws(() => loadConfig({ ...parseArgs(args), env: { ...env, ...e } }), (err: ConsumerError) => err.code === 'bad_config' && re.test(err.message));
  bad({ PIONEER_URL: '' }, /PIONEER_URL is not set/);
  bad({ PIONEER_URL: 'ftp://x' }, /PIONEER_URL: must be an http\(s\) URL/);
  bad({ PIONEER_HEARTBEAT_MS: 'fast' }, /PIONEER_HEARTBEAT_MS: must be an integer/);
  bad({ PIONEER_START_AFTER: 'yesterday' }, /PIONEER_START_AFTER: must be a cursor/);
  bad({ PIONEER_LOG_LEVEL: 'loud' }, /PIONEER_LOG_LEVEL/);
  bad({}, /unknown flag --nope/, ['run', '--nope', '1']);
  assert.throws(() => loadConfig({ flags: new Map([['--config', 'c.json']]), env, readFile: () => '{"url":"http://x","colour":1}' }), /unknown key "colour"/);
  assert.throws(() => loadConfig({ flags: new Map([['--config', 'c.json']]), env, readFile: () => '[1' }), /not a JSON object/);
});

test('status needs only the directory', () => {
  const cfg = loadConfig({ command: 'status', env: { PIONEER_DIR: '/d' } });
  assert.equal(cfg.dir, '/d');
  assert.throws(() => loadConfig({ command: 'status', env: {} }), /PIONEER_DIR is not set/);
});
