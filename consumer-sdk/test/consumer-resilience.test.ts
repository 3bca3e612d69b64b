/**
 * The consumer against a scripted gateway (a local HTTP server): silent connections, 429/503 with
 * Retry-After, a server that closes the stream, terminal answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Consumer } from '../src/consumer.ts';
import { ConsumerError } from '../src/errors.ts';
import type { Delivery } from '../src/handler.ts';

type Step = (req: IncomingMessage, res: ServerResponse) => void;

async function fakeGateway(steps: Step[]) {
  const requests: { lastEventId: string | undefined; at: number }[] = [];
  const server = createServer((req, res) => {
    requests.push({ lastEventId: req.headers['last-event-id'] as string | undefined, at: Date.now() });
    const step = steps[Math.min(requests.length - 1, steps.length - 1)]!;
    step(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, requests, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

const sseHead = (res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write('retry: 50\n: connected\n\n');
};
const ev = (n: number) => `id: ${n}-0\nevent: t\ndata: ${JSON.stringify({ specversion: '1.0', id: `e${n}`, source: '/s', type: 't', data: { n } })}\n\n`;
const problem = (status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): Step => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/problem+json', ...headers });
  res.end(JSON.stringify({ status, ...body }));
};
const tmp = () => join(mkdtempSync(join(tmpdir(), 'pioneer-consumer-')), 'checkpoint.json');

function consumer(url: string, got: Delivery[], extra: Partial<ConstructorParameters<typeof Consumer>[0]> = {}) {
  return new Consumer({
    url, apiKey: 'pk_test', subscription: 'sub_1', checkpoint: tmp(), heartbeatMs: 100, progressIntervalMs: 0,
    backoff: { initialMs: 20, maxMs: 200, factor: 2, jitter: 0.5 },
    handler: async (batch) => void got.push(...batch),
    ...extra,
  });
}

test('a silent connection is dropped after missed heartbeats and resumed after the last cursor', async () => {
  const gw = await fakeGateway([
    (_q, res) => { sseHead(res); res.write(ev(1) + ev(2)); /* then silence */ },
    (_q, res) => { sseHead(res); res.write(ev(3)); },
  ]);
  const got: Delivery[] = [];
  const c = consumer(gw.url, got);
  const run = c.run();
  const started = Date.now();
  while (got.length < 3 && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 20));
  await c.stop();
  await run;
  await gw.close();
  assert.deepEqual(got.map((d) => d.cursor), ['1-0', '2-0', '3-0']);
  assert.equal(gw.requests[1]!.lastEventId, '2-0');
  const silentFor = gw.requests[1]!.at - gw.requests[0]!.at;
  assert.ok(silentFor >= 300 && silentFor < 2000, `reconnected after ${silentFor} ms (3 missed heartbeats of 100 ms)`);
});

test('429 and 503 are retried, honouring Retry-After; a closed stream is resumed', async () => {
  const gw = await fakeGateway([
    problem(429, { code: 'too_many_streams', title: 'too many' }, { 'retry-after': '1' }),
    problem(503, { code: 'shutting_down', title: 'bye' }),
    (_q, res) => { sseHead(res); res.end(ev(1)); },
    (_q, res) => { sseHead(res); res.write(ev(2)); },
  ]);
  const got: Delivery[] = [];
  const c = consumer(gw.url, got);
  const run = c.run();
  const started = Date.now();
  while (got.length < 2 && Date.now() - started < 8000) await new Promise((r) => setTimeout(r, 20));
  await c.stop();
  await run;
  await gw.close();
  assert.deepEqual(got.map((d) => d.cursor), ['1-0', '2-0']);
  assert.ok(gw.requests[1]!.at - gw.requests[0]!.at >= 950, 'waited for Retry-After: 1');
  assert.equal(gw.requests[3]!.lastEventId, '1-0');
});

for (const [status, body, code] of [
  [401, { code: 'unauthorized', title: 'invalid API key' }, 'unauthorized'],
  [403, { code: 'forbidden', title: 'role admin may not do this' }, 'forbidden'],
  [404, { code: 'not_found', title: 'subscription not found' }, 'subscription_not_found'],
  [410, { code: 'cursor_expired', title: 'cursor 1-0 is older', oldest_cursor: '9-0', detail: 'replay it' }, 'cursor_expired'],
  [400, { code: 'invalid_request', title: 'header:Last-Event-ID: not a cursor' }, 'bad_request'],
] as const) {
  test(`a ${status} ends the run with ${code}, without retrying`, async () => {
    const gw = await fakeGateway([problem(status, body)]);
    const c = consumer(gw.url, [], { startAfter: '1-0' });
    await assert.rejects(c.run(), (e: ConsumerError) => {
      assert.equal(e.code, code);
      assert.equal(e.retriable, false);
      if (code === 'cursor_expired') assert.match(e.message, /cursor 1-0 has expired.*replay it.*oldest available cursor is 9-0/);
      return true;
    });
    await gw.close();
    assert.equal(gw.requests.length, 1);
  });
}

test('the subscription-deleted event ends the run after the events before it are handled', async () => {
  const gw = await fakeGateway([(_q, res) => { sseHead(res); res.end(ev(1) + 'event: pioneer.subscription.deleted\ndata: {"code":"subscription_deleted"}\n\n'); }]);
  const got: Delivery[] = [];
  await assert.rejects(consumer(gw.url, got).run(), (e: ConsumerError) => e.code === 'subscription_deleted');
  await gw.close();
  assert.deepEqual(got.map((d) => d.cursor), ['1-0']);
});

test('a graceful stop lets the batch in the handler finish and checkpoints it', async () => {
  const gw = await fakeGateway([(_q, res) => { sseHead(res); res.write(ev(1)); }]);
  const checkpoint = tmp();
  let release!: () => void;
  let entered!: () => void;
  const inHandler = new Promise<void>((r) => (entered = r));
  const c = consumer(gw.url, [], {
    checkpoint,
    handler: async () => {
      entered();
      await new Promise<void>((r) => (release = r));
    },
  });
  const run = c.run();
  await inHandler;
  const stopped = c.stop();
  setTimeout(() => release(), 100);
  await stopped;
  await run;
  await gw.close();
  const { createCheckpointStore } = await import('../src/checkpoint.ts');
  assert.equal((await createCheckpointStore(checkpoint).load())?.cursor, '1-0');
});

test('after a crash between the file write and the checkpoint, a restart neither loses nor duplicates', async () => {
  const { FileSink } = await import('../src/file-sink.ts');
  const { createCheckpointStore } = await import('../src/checkpoint.ts');
  const { appendFileSync, readdirSync, readFileSync } = await import('node:fs');
  const { dirname } = await import('node:path');
  let upTo = 5;
  const gw = await fakeGateway([
    (req, res) => {
      const after = Number(String(req.headers['last-event-id'] ?? '0-0').split('-')[0]);
      sseHead(res);
      let out = '';
      for (let n = after + 1; n <= upTo; n++) out += ev(n);
      res.write(out);
    },
  ]);
  const checkpoint = tmp();
  const dir = dirname(checkpoint);
  const store = createCheckpointStore(checkpoint);
  const runUntil = async (cursor: string) => {
    const c = new Consumer({
      url: gw.url, apiKey: 'pk_test', subscription: 'sub_1', checkpoint, heartbeatMs: 100, progressIntervalMs: 0, handler: new FileSink({ dir }),
    });
    const run = c.run();
    const started = Date.now();
    while (c.status().cursor !== cursor && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 10));
    await c.stop();
    await run;
  };
  await runUntil('5-0');
  const written = (await store.load())!;
  // the crash: the file has events 4 and 5 and half of 6, the checkpoint still says 3
  await store.save({ ...written, cursor: '3-0', events: 3, recent: written.recent.slice(0, 3) });
  const file = join(dir, readdirSync(dir).find((f) => f.endsWith('.ndjson'))!);
  appendFileSync(file, '{"cursor":"6-0","event":{"specversion":"1.0","id":"e6"');
  upTo = 7;
  await runUntil('7-0');
  await gw.close();
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l).cursor);
  assert.deepEqual(lines, ['1-0', '2-0', '3-0', '4-0', '5-0', '6-0', '7-0']);
  assert.equal(gw.requests.at(-1)!.lastEventId, '5-0', 'resumed after what the file held, not after the checkpoint');
  assert.equal((await store.load())!.events, 7);
});
