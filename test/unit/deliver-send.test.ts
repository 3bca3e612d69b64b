import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSender } from '../../functions/deliver/send.ts';

/** A local receiver that holds each request `holdMs` before answering 204, and counts how many it holds at once. */
async function slowReceiver(holdMs: number) {
  let inFlight = 0;
  let most = 0;
  const paths: string[] = [];
  const server = createServer((req, res) => {
    inFlight++;
    most = Math.max(most, inFlight);
    req.resume();
    req.on('end', () => {
      paths.push(req.url ?? '');
      setTimeout(() => {
        inFlight--;
        res.writeHead(204).end();
      }, holdMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, most: () => most, paths, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const policy = { allowHttp: true, allowNetworks: new Set(['loopback'] as const) };

test('the endpoints of one host share at most connectionsPerHost connections; every request is answered', async () => {
  const receiver = await slowReceiver(150);
  const sender = createSender({ policy, timeoutMs: 5000, connectionsPerHost: 2 });
  try {
    // six endpoints of the same host, one request each, all at once
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => sender.send(`${receiver.url}/hook/${i}`, { 'content-type': 'application/json' }, '{}')));
    assert.deepEqual(results.map((r) => r.kind), Array(6).fill('success'));
    assert.equal(receiver.most(), 2, 'two requests at a time: the others waited for a connection');
    assert.deepEqual([...receiver.paths].sort(), Array.from({ length: 6 }, (_, i) => `/hook/${i}`).sort());
  } finally {
    sender.close();
    await receiver.close();
  }
});

test('endpoints of one host up to the cap are all sent to at once', async () => {
  const receiver = await slowReceiver(150);
  const sender = createSender({ policy, timeoutMs: 5000, connectionsPerHost: 32 });
  try {
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => sender.send(`${receiver.url}/hook/${i}`, {}, '{}')));
    assert.ok(results.every((r) => r.kind === 'success'));
    assert.equal(receiver.most(), 12);
  } finally {
    sender.close();
    await receiver.close();
  }
});
