/**
 * Slow and vanishing clients against the hosts' HTTP servers (adapters/http/serving.ts), with short configured
 * timeouts: a client that sends its request head or body too slowly is answered 408 and disconnected within the
 * timeout, an idle keep-alive connection is closed, an SSE stream (a long response, not a long request) outlives
 * the request timeout, and a client that hangs up in the middle of its upload costs no error in the logs.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startLocalHost, type LocalHost } from '../../adapters/local/host.ts';
import { functionsNamed } from '../../functions/registry.ts';
import { createTenant, platformEnv, sleep, waitFor } from '../support/helpers.ts';

const HEADERS_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 1500;
const KEEPALIVE_TIMEOUT_MS = 1000;
/** Node looks for late requests every half headers timeout (at most 1 s); then the close reaches the client */
const MARGIN_MS = 1500;
const CONNECTIONS = 50;

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

const logs: LogLine[] = [];
let host: LocalHost;
let adminKey: string;
let tenant: Awaited<ReturnType<typeof createTenant>>;

before(async () => {
  const env = platformEnv({
    PIONEER_LOG_LEVEL: 'debug',
    PIONEER_HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
    PIONEER_HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    PIONEER_HTTP_KEEPALIVE_TIMEOUT_MS: String(KEEPALIVE_TIMEOUT_MS),
    PIONEER_SUBSCRIPTIONS_PORT: '0',
    PIONEER_GATEWAY_PORT: '0',
    PIONEER_INGEST_PORT: '0',
  });
  adminKey = env['PIONEER_ADMIN_KEY']!;
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  host = await startLocalHost({ definitions: functionsNamed(['subscriptions', 'gateway', 'ingest']), env, log: pino({ level: 'debug' }, sink) });
  tenant = await createTenant(host.url('subscriptions'), adminKey);
});

after(async () => {
  await host?.stop();
});

const PINO_ERROR = 50;
const errorsLogged = () => logs.filter((l) => l.level >= PINO_ERROR);

function address(name: string): { host: string; port: number } {
  const u = new URL(host.url(name));
  return { host: u.hostname, port: Number(u.port) };
}

/** Opens a raw connection; resolves once connected. `closed` resolves with when the server closed it and what it sent. */
async function rawConnection(name: string) {
  const socket: Socket = connect(address(name));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let received = '';
  socket.on('data', (d) => (received += d));
  socket.on('error', () => {}); // a reset by the server is a close too
  const opened = Date.now();
  const closed = new Promise<{ afterMs: number; received: string }>((resolve) => socket.once('close', () => resolve({ afterMs: Date.now() - opened, received })));
  return { socket, closed, opened };
}

/** Writes `text` one byte every `everyMs` until the socket closes. */
function dribble(socket: Socket, text: string, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(timer);
    socket.write(text[i++]!);
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

test('connections that send their request head too slowly are answered 408 and closed within the headers timeout', { timeout: 60000 }, async () => {
  const conns = await Promise.all(Array.from({ length: CONNECTIONS }, () => rawConnection('ingest')));
  for (const c of conns) {
    c.socket.write('POST /v1/events HTTP/1.1\r\nHost: pioneer\r\n');
    dribble(c.socket, 'x-slow: ' + 'a'.repeat(1000), 100); // never ends the head
  }
  const closes = await Promise.all(conns.map((c) => c.closed));
  const slowest = Math.max(...closes.map((c) => c.afterMs));
  assert.ok(slowest <= HEADERS_TIMEOUT_MS + MARGIN_MS, `every connection closed within ${HEADERS_TIMEOUT_MS} ms (+ margin); the slowest after ${slowest} ms`);
  assert.ok(closes.every((c) => c.received.startsWith('HTTP/1.1 408')), `answered 408: ${closes[0]!.received.slice(0, 40)}`);
});

test('connections that send their body too slowly are answered 408 and closed within the request timeout, and no error is logged', { timeout: 60000 }, async () => {
  const before = errorsLogged().length;
  const body = JSON.stringify({ specversion: '1.0', id: 'slow-1', source: '/slow', type: 'slow.body', data: { pad: 'p'.repeat(500) } });
  const conns = await Promise.all(Array.from({ length: CONNECTIONS }, () => rawConnection('ingest')));
  for (const c of conns) {
    c.socket.write(
      `POST /v1/events HTTP/1.1\r\nHost: pioneer\r\nAuthorization: Bearer ${tenant.key}\r\n` +
        `Content-Type: application/cloudevents+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`,
    );
    dribble(c.socket, body, 100);
  }
  const closes = await Promise.all(conns.map((c) => c.closed));
  const slowest = Math.max(...closes.map((c) => c.afterMs));
  assert.ok(slowest <= REQUEST_TIMEOUT_MS + MARGIN_MS, `every connection closed within ${REQUEST_TIMEOUT_MS} ms (+ margin); the slowest after ${slowest} ms`);
  assert.ok(closes.every((c) => c.received.startsWith('HTTP/1.1 408')), `answered 408: ${closes[0]!.received.slice(0, 40)}`);
  await sleep(200);
  assert.deepEqual(errorsLogged().slice(before), [], 'a body cut off by the timeout is not an error of the function');
});

test('an idle keep-alive connection is closed after the keep-alive timeout', { timeout: 30000 }, async () => {
  const c = await rawConnection('ingest');
  c.socket.write('GET /healthz HTTP/1.1\r\nHost: pioneer\r\n\r\n');
  const answeredAt = await waitFor(() => (c.socket.bytesRead > 0 ? Date.now() : 0), { timeout: 5000, message: 'the /healthz answer' });
  const { received } = await c.closed;
  const idleMs = Date.now() - answeredAt;
  assert.match(received, /^HTTP\/1\.1 200/);
  assert.ok(idleMs >= KEEPALIVE_TIMEOUT_MS - 200 && idleMs <= KEEPALIVE_TIMEOUT_MS + MARGIN_MS, `closed ${idleMs} ms after the answer`);
});

test('an SSE stream stays open well past the request timeout: the timeout bounds receiving the request, not the response', { timeout: 30000 }, async () => {
  const sub = await fetch(`${host.url('subscriptions')}/v1/subscriptions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ types: ['sse.test'] }),
  }).then((r) => r.json() as Promise<{ id: string }>);
  const openFor = REQUEST_TIMEOUT_MS * 3;
  const started = Date.now();
  let heartbeats = 0;
  let lastHeartbeatAt = 0;
  // heartbeats are SSE comments, which an event reader skips: read the stream raw
  const res = await fetch(`${host.url('gateway')}/v1/subscriptions/${sub.id}/events`, {
    headers: { authorization: `Bearer ${tenant.consumerKey}`, accept: 'text/event-stream' },
  });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  while (Date.now() - started < openFor) {
    const { done, value } = await reader.read();
    assert.equal(done, false, `the stream ended after ${Date.now() - started} ms`);
    const text = decoder.decode(value, { stream: true });
    const beats = text.match(/: heartbeat /g)?.length ?? 0;
    if (beats) {
      heartbeats += beats;
      lastHeartbeatAt = Date.now() - started;
    }
  }
  await reader.cancel();
  assert.ok(lastHeartbeatAt > REQUEST_TIMEOUT_MS + MARGIN_MS, `a heartbeat arrived ${lastHeartbeatAt} ms into the stream (${heartbeats} in all)`);
});

test('a client that hangs up in the middle of its upload is logged at debug, never as an error', { timeout: 30000 }, async () => {
  const before = errorsLogged().length;
  const debugBefore = logs.length;
  const conns = await Promise.all(Array.from({ length: 20 }, () => rawConnection('ingest')));
  for (const c of conns) {
    c.socket.write(
      `POST /v1/events HTTP/1.1\r\nHost: pioneer\r\nAuthorization: Bearer ${tenant.key}\r\n` +
        `Content-Type: application/cloudevents+json\r\nContent-Length: 5000\r\n\r\n{"specversion":"1.0",`,
    );
  }
  await sleep(300); // the handlers are reading the bodies
  for (const c of conns) c.socket.destroy();
  await waitFor(() => logs.slice(debugBefore).filter((l) => l.msg === 'client closed the request').length >= conns.length, {
    timeout: 5000,
    message: 'each hang-up logged at debug',
  });
  await sleep(200);
  assert.deepEqual(errorsLogged().slice(before), [], 'no error logged for a client that went away');
});
