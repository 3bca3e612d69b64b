/**
 * The one place that tells a dependency outage from another failure (platform/errors.ts), and the HTTP edge that
 * answers it (platform/http/app.ts): the errors ioredis and kafkajs really throw map to 503 naming the dependency
 * with Retry-After; anything else stays a 500; every operation in openapi.yaml documents the 503.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import * as kafkajsModule from 'kafkajs';
import { ReplyError } from 'ioredis';
import { Registry } from 'prom-client';
import { asDependencyUnavailable, DependencyUnavailableError, HttpError } from '../../platform/errors.ts';
import { createApp } from '../../platform/http/app.ts';
import { createLogger } from '../../platform/telemetry/logger.ts';
import { ROOT } from '../support/helpers.ts';

// kafkajs spreads its error classes into module.exports, which an ES import cannot name: take them from the module
type ErrorClass = new (...args: any[]) => Error;
const kafkajs = ((kafkajsModule as unknown as { default?: Record<string, ErrorClass> }).default ?? kafkajsModule) as unknown as Record<string, ErrorClass>;
const { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError, KafkaJSRequestTimeoutError } = kafkajs as Record<string, ErrorClass>;

/** ioredis's MaxRetriesPerRequestError, as it builds it (the class is not exported). */
function maxRetriesError(): Error {
  const err = new Error('Reached the max retries per request limit (which is 1). Refer to "maxRetriesPerRequest" option for details.');
  err.name = 'MaxRetriesPerRequestError';
  return err;
}

test('ioredis errors of a connection that is down, closed or slow are redis_unavailable', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
  for (const err of [
    maxRetriesError(),
    new Error('Connection is closed.'),
    new Error('Command timed out'),
    new Error("Stream isn't writeable and enableOfflineQueue options is false"),
    refused,
    new ReplyError('LOADING Redis is loading the dataset in memory'),
    new ReplyError("READONLY You can't write against a read only replica."),
  ]) {
    const dep = asDependencyUnavailable(err);
    assert.ok(dep, `${err.name}: ${err.message}`);
    assert.equal(dep.dependency, 'redis');
    assert.equal(dep.code, 'redis_unavailable');
    assert.equal(dep.retriable, true);
    assert.equal(dep.cause, err);
  }
});

test('kafkajs errors of an unreachable or silent cluster are kafka_unavailable, also wrapped in a retry error', () => {
  const conn = new KafkaJSConnectionError!('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
  for (const err of [
    conn,
    new KafkaJSRequestTimeoutError!('Request Produce(key: 0, version: 7) timed out'),
    new KafkaJSNumberOfRetriesExceeded!(new KafkaJSRequestTimeoutError!('timed out'), { retryCount: 2, retryTime: 100 }),
    // what a send against a killed broker rejects with: a non-retriable wrapper around the connection error
    new KafkaJSNonRetriableError!(conn, { cause: conn }),
    new KafkaJSProtocolError!({ message: 'There is no leader for this topic-partition', type: 'LEADER_NOT_AVAILABLE', code: 5, retriable: true }),
  ]) {
    const dep = asDependencyUnavailable(err);
    assert.ok(dep, `${err.name}: ${err.message}`);
    assert.equal(dep.code, 'kafka_unavailable');
  }
});

test('other failures are not taken for an outage', () => {
  for (const err of [
    new Error('boom'),
    new TypeError("Cannot read properties of undefined (reading 'id')"),
    new ReplyError('ERR wrong number of arguments'),
    new ReplyError('WRONGTYPE Operation against a key holding the wrong kind of value'),
    new KafkaJSProtocolError!({ message: 'Not authorized to access topics', type: 'TOPIC_AUTHORIZATION_FAILED', code: 29, retriable: false }),
    new KafkaJSNonRetriableError!(new Error('The message is too large')),
    // a client that hung up: its 'aborted' error carries ECONNRESET, which is the client's, not Redis's
    Object.assign(new Error('aborted'), { code: 'ECONNRESET' }),
  ])
    assert.equal(asDependencyUnavailable(err), null, `${err.name}: ${err.message}`);
  const own = new DependencyUnavailableError('kafka', 'no acknowledgement in time');
  assert.equal(asDependencyUnavailable(own), own);
});

test('the HTTP edge answers an outage 503 problem+json naming the dependency with Retry-After, anything else a bare 500', async () => {
  const app = createApp({ name: 'test', log: createLogger({ level: 'silent' }), metrics: new Registry(), ready: async () => ({}) });
  app.get('/redis', () => {
    throw maxRetriesError();
  });
  app.get('/kafka', () => {
    throw new KafkaJSNumberOfRetriesExceeded!(new KafkaJSConnectionError!('Connection error: connect ECONNREFUSED'), { retryCount: 2, retryTime: 100 });
  });
  app.get('/bug', () => {
    throw new Error('a bug');
  });
  app.get('/http', () => {
    throw HttpError.notFound('thing');
  });
  for (const [path, code, retryAfter] of [['/redis', 'redis_unavailable', '1'], ['/kafka', 'kafka_unavailable', '2']] as const) {
    const res = await app.request(path);
    assert.equal(res.status, 503, path);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    assert.equal(res.headers.get('retry-after'), retryAfter);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body['code'], code);
    assert.equal(body['status'], 503);
    assert.equal(body['instance'], path);
    assert.doesNotMatch(String(body['title']), /ECONNREFUSED|127\.0\.0\.1/, 'no internal address in the answer');
  }
  const bug = await app.request('/bug');
  assert.equal(bug.status, 500);
  assert.equal(((await bug.json()) as Record<string, unknown>)['code'], 'internal');
  assert.equal((await app.request('/http')).status, 404);
});

test('every operation in openapi.yaml documents the 503 of a dependency outage', () => {
  const doc = parse(readFileSync(join(ROOT, 'openapi.yaml'), 'utf8')) as { paths: Record<string, Record<string, { responses?: Record<string, unknown> }>> };
  const missing: string[] = [];
  for (const [path, item] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(item))
      if (op && typeof op === 'object' && 'responses' in op && !op.responses?.['503']) missing.push(`${method.toUpperCase()} ${path}`);
  assert.deepEqual(missing, []);
});
