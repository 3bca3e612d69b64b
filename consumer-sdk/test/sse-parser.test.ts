import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser, type SseMessage } from '../src/sse-parser.ts';

function parse(chunks: string[]) {
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  const p = new SseParser({ onMessage: (m) => messages.push(m), onComment: (c) => comments.push(c), onRetry: (ms) => retries.push(ms) });
  for (const c of chunks) p.push(c);
  return { messages, comments, retries };
}

const GATEWAY = 'retry: 2000\n: connected to sub_1\n\nid: 1-0\nevent: payment.sent\ndata: {"id":"a"}\n\n: heartbeat 2026-01-01T00:00:00Z\n\nid: 1-1\nevent: payment.sent\ndata: {"id":"b"}\n\n';

test('parses the gateway stream: retry, comments, id, event and data', () => {
  const { messages, comments, retries } = parse([GATEWAY]);
  assert.deepEqual(retries, [2000]);
  assert.deepEqual(comments, ['connected to sub_1', 'heartbeat 2026-01-01T00:00:00Z']);
  assert.deepEqual(messages, [
    { event: 'payment.sent', data: '{"id":"a"}', id: '1-0' },
    { event: 'payment.sent', data: '{"id":"b"}', id: '1-1' },
  ]);
});

test('gives the same messages however the stream is cut into chunks', () => {
  const whole = parse([GATEWAY]).messages;
  for (let size = 1; size <= 17; size++) {
    const chunks: string[] = [];
    for (let i = 0; i < GATEWAY.length; i += size) chunks.push(GATEWAY.slice(i, i + size));
    assert.deepEqual(parse(chunks).messages, whole, `chunks of ${size}`);
  }
});

test('accepts CRLF, CR and LF line ends, also when CR and LF arrive in different chunks', () => {
  const crlf = GATEWAY.replace(/\n/g, '\r\n');
  const cr = GATEWAY.replace(/\n/g, '\r');
  const whole = parse([GATEWAY]).messages;
  assert.deepEqual(parse([crlf]).messages, whole);
  assert.deepEqual(parse([cr]).messages, whole);
  const cut = crlf.indexOf('\r\n') + 1; // CR ends one chunk, LF starts the next
  assert.deepEqual(parse([crlf.slice(0, cut), crlf.slice(cut)]).messages, whole);
});

test('joins multi-line data, defaults the type to message, strips one leading space and a BOM', () => {
  const { messages } = parse(['\uFEFFdata: first\ndata:second\ndata:  third\n\n']);
  assert.deepEqual(messages, [{ event: 'message', data: 'first\nsecond\n third', id: undefined }]);
});

test('keeps the last event id for later messages, ignores ids with NUL, unknown fields and empty messages', () => {
  const { messages } = parse(['id: 5-0\ndata: a\n\nid: bad\0id\nfoo: bar\ndata: b\n\nevent: x\n\nid\ndata: c\n\n']);
  assert.deepEqual(messages, [
    { event: 'message', data: 'a', id: '5-0' },
    { event: 'message', data: 'b', id: '5-0' },
    { event: 'message', data: 'c', id: '' },
  ]);
});

test('does not dispatch an unterminated message', () => {
  const { messages } = parse(['id: 1-0\ndata: half']);
  assert.equal(messages.length, 0);
});

test('ignores a non-numeric retry', () => {
  assert.deepEqual(parse(['retry: soon\n\n']).retries, []);
});
