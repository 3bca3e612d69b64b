/**
 * `pioneer-consumer run` pointed at something that is not the gateway (another function's port, another server, a
 * path the gateway is not under) says so, naming the URL it tried, instead of blaming the subscription; the
 * gateway's own 404 for the subscription still says the subscription was not found.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { startCli } from './cli-process.ts';

const SUB = 'sub_01kfwz3m0y8e4h7t2n5q9r6s1a';
const KEY = 'pk_' + 'x'.repeat(43);

/** A local HTTP server answering every request with `answer`; the paths it was asked for are kept. */
async function server(answer: (req: IncomingMessage, res: ServerResponse) => void) {
  const paths: string[] = [];
  const s = createServer((req, res) => {
    paths.push(req.url ?? '');
    answer(req, res);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  return { url, paths, close: () => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); }) };
}

/** What platform/http answers: problem+json, as createApp renders an HttpError. */
const problem = (status: number, code: string, title: string) => (req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(status, { 'content-type': 'application/problem+json' });
  res.end(JSON.stringify({ type: `https://pioneer.dev/problems/${code.replace(/_/g, '-')}`, title, status, code, instance: req.url }));
};

/** Runs the CLI against `url` until it exits by itself; returns its exit status and its one error line. */
async function runAgainst(url: string) {
  const cli = startCli(['run'], {
    PIONEER_URL: url, PIONEER_API_KEY: KEY, PIONEER_SUBSCRIPTION: SUB, PIONEER_DIR: mkdtempSync(join(tmpdir(), 'pioneer-cli-')),
    PIONEER_RETRY_INITIAL_MS: '50',
  });
  const timer = setTimeout(() => cli.child.kill('SIGKILL'), 30000);
  const { code } = await cli.exited;
  clearTimeout(timer);
  const errors = cli.logs().filter((l) => l['level'] === 'error');
  assert.equal(errors.length, 1, cli.stderr());
  return { status: code, error: errors[0]!, stderr: cli.stderr() };
}

test('another Pioneer function on the port (its 404 "no route") is a wrong URL, not a missing subscription (exit 2)', async () => {
  const s = await server((req, res) => problem(404, 'not_found', `no route for GET ${new URL(req.url!, 'http://x').pathname}`)(req, res));
  const r = await runAgainst(s.url);
  await s.close();
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.error['code'], 'route_not_found');
  const msg = String(r.error['msg']);
  assert.match(msg, /^no such route here: /);
  assert.ok(msg.includes(`${s.url}/v1/subscriptions/${SUB}/events`), `names the URL it tried: ${msg}`);
  assert.match(msg, /a Pioneer function, but not the gateway: "no route for GET \/v1\/subscriptions\//);
  assert.match(msg, /Check the URL \(PIONEER_URL, --url\): give the gateway's base URL/);
  assert.doesNotMatch(msg, /deleted|another tenant/);
  assert.deepEqual(s.paths, [`/v1/subscriptions/${SUB}/events`], 'asked once: a wrong URL is not retried');
});

test('a server that is not Pioneer at all (a plain 404 page) is a wrong URL too (exit 2)', async () => {
  const s = await server((_req, res) => {
    res.writeHead(404, { 'content-type': 'text/html' });
    res.end('<!DOCTYPE html>\n<html><body>\n<pre>Cannot GET /v1/subscriptions/x/events</pre>\n</body></html>\n');
  });
  const r = await runAgainst(`${s.url}/pioneer`);
  await s.close();
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.error['code'], 'route_not_found');
  const msg = String(r.error['msg']);
  assert.ok(msg.includes(`${s.url}/pioneer/v1/subscriptions/${SUB}/events`), `names the URL it tried: ${msg}`);
  assert.match(msg, /answered 404 \(text\/html: "<!DOCTYPE html> <html><body> <pre>Cannot GET/);
  assert.doesNotMatch(msg, /was not found|deleted|another tenant/);
});

test('a 404 problem of another service, JSON but not the gateway\'s subscription answer, is a wrong URL (exit 2)', async () => {
  const s = await server((_req, res) => {
    res.writeHead(404, { 'content-type': 'application/problem+json' });
    res.end(JSON.stringify({ type: 'about:blank', title: 'Not Found', status: 404 }));
  });
  const r = await runAgainst(s.url);
  await s.close();
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.error['code'], 'route_not_found');
  assert.match(String(r.error['msg']), /application\/problem\+json: "Not Found"/);
});

test('the gateway\'s own 404 for the subscription still says the subscription was not found (exit 4)', async () => {
  const s = await server(problem(404, 'not_found', 'subscription not found'));
  const r = await runAgainst(s.url);
  await s.close();
  assert.equal(r.status, 4, r.stderr);
  assert.equal(r.error['code'], 'subscription_not_found');
  const msg = String(r.error['msg']);
  assert.match(msg, new RegExp(`^subscription ${SUB} was not found \\(404 from the gateway at ${s.url}/v1/subscriptions/${SUB}/events\\)`));
  assert.match(msg, /deleted, or it belongs to another tenant than the key/);
});
