/**
 * Every Redis structure has one owning module under platform/ (its opening comment lists the keys it owns), and
 * the functions reach Redis only through them: no file under functions/ builds a key or calls a raw Redis
 * command, a pipeline, a transaction or a script by its positional arguments.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Raw commands a handler might reach for (ioredis method names). */
const COMMANDS = [
  'xrange', 'xrevrange', 'xadd', 'xlen', 'xread', 'xdel', 'xtrim', 'xinfo',
  'get', 'set', 'mget', 'mset', 'getdel', 'getex', 'del', 'unlink', 'exists', 'incr', 'incrby', 'decr',
  'pttl', 'ttl', 'expire', 'pexpire', 'expireat', 'pexpireat', 'persist', 'rename',
  'hget', 'hgetall', 'hset', 'hsetnx', 'hdel', 'hmget', 'hmset', 'hincrby', 'hkeys', 'hvals', 'hlen', 'hexists',
  'sadd', 'srem', 'smembers', 'sismember', 'scard',
  'zadd', 'zrem', 'zrange', 'zrangebyscore', 'zcard', 'zscore', 'zremrangebyscore',
  'lpush', 'rpush', 'lpop', 'rpop', 'lrange', 'lindex', 'ltrim', 'llen',
  'eval', 'evalsha', 'fcall', 'scan', 'hscan', 'sscan', 'zscan', 'keys', 'call', 'sendCommand',
];

/** The platform's Lua scripts as ioredis defines them on a client (platform/redis/client.ts): verb-noun-n.lua -> verbNoun. */
function scriptCommands(): string[] {
  return readdirSync(join(ROOT, 'platform/redis/scripts'))
    .filter((f) => f.endsWith('.lua'))
    .map((f) => {
      const [verb, noun] = f.replace(/\.lua$/, '').split('-') as [string, string];
      return verb + noun[0]!.toUpperCase() + noun.slice(1);
    });
}

/** The source without its comments (a `//` after a quote or a colon is part of a string, e.g. a URL). */
function code(source: string): string {
  return source
    .replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, ' '))
    .split('\n')
    .map((line) => line.replace(/(^|[^:'"`\\])\/\/.*$/, '$1'))
    .join('\n');
}

interface Violation {
  line: number;
  what: string;
}

/** What a file of functions/ does that only an owning module may do. */
function violations(source: string, commands: readonly string[]): Violation[] {
  const text = code(source);
  const out: Violation[] = [];
  const lineOf = (index: number) => text.slice(0, index).split('\n').length;
  const find = (re: RegExp, what: (m: RegExpExecArray) => string) => {
    for (const m of text.matchAll(new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`))) out.push({ line: lineOf(m.index), what: what(m) });
  };
  find(/(?:from|import)\s*\(?\s*['"][^'"]*platform\/redis\/keys(?:\.ts)?['"]/, () => 'imports platform/redis/keys.ts (key builders)');
  find(/\b(ingestKeys|exportKeys|appendKeys)\b/, (m) => `uses the key builder ${m[1]}`);
  find(/\.\s*(pipeline|multi)\s*\(/, (m) => `opens a ${m[1] === 'multi' ? 'transaction' : 'pipeline'} (.${m[1]}())`);
  find(/\bscriptPipeline\s*\(/, () => 'opens a script pipeline');
  // the clients a file holds: `redis`, anything made by createRedis, anything typed as a client
  const clients = new Set(['redis']);
  for (const m of text.matchAll(/\b(\w+)\s*(?::\s*\w+\s*)?=\s*createRedis\s*\(/g)) clients.add(m[1]!);
  for (const m of text.matchAll(/\b(\w+)\??\s*:\s*(?:PioneerRedis|Redis|Cluster)\b/g)) clients.add(m[1]!);
  const receiver = [...clients].join('|');
  find(new RegExp(`\\b(${receiver})\\s*\\.\\s*(${commands.join('|')})\\s*\\(`), (m) => `calls ${m[1]}.${m[2]}() directly`);
  return out.sort((a, b) => a.line - b.line);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name);
    if (d.isDirectory()) return filesUnder(path);
    return /\.(ts|js|mjs)$/.test(d.name) ? [path] : [];
  });
}

const commands = [...COMMANDS, ...scriptCommands()];

test('the rule sees what it is meant to see', () => {
  const sample = [
    "import { keys } from '../../platform/redis/keys.ts';",
    "import { ingestKeys } from '../../platform/redis/keys.ts';",
    'const client = createRedis(cfg);',
    'async function f(r: PioneerRedis) {',
    "  await redis.xrange(k, '-', '+');",
    '  await client.hgetall(k);',
    '  const tx = redis.pipeline(); tx.hset(k, f, v);',
    '  await r.multi().get(k).exec();',
    "  await redis.takeTokens(k, '1', '2', '3');",
    '  // redis.hget(k) in a comment is fine, and so are Map.get, c.get and streams.get',
    "  m.get(k); c.get('log'); streams.get(k); fetch('https://example.com//x');",
    '}',
  ].join('\n');
  const found = violations(sample, commands);
  assert.deepEqual(found.map((v) => v.line), [1, 2, 2, 5, 6, 7, 8, 9]);
  assert.ok(found.some((v) => v.what.includes('redis.takeTokens')), 'a script called by its positional arguments');
  assert.ok(found.some((v) => v.what.includes('r.multi') || v.what.includes('transaction')));
  assert.ok(commands.includes('reserveEvent') && commands.includes('stepEndpoint'), 'the scripts are read from platform/redis/scripts');
});

test('functions/ builds no Redis keys and calls no raw Redis commands: the owning modules under platform/ do', () => {
  const files = filesUnder(join(ROOT, 'functions'));
  assert.ok(files.length >= 10, `found only ${files.length} files under functions/`);
  const report: string[] = [];
  for (const file of files) {
    for (const v of violations(readFileSync(file, 'utf8'), commands)) report.push(`${relative(ROOT, file)}:${v.line}: ${v.what}`);
  }
  assert.deepEqual(report, [], `move these into the module that owns the keys (platform/redis/streams.ts, platform/webhooks/endpoints.ts, platform/ingest/*, platform/jobs/records.ts, platform/routing/positions.ts, ...):\n${report.join('\n')}`);
});
