import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSse, sseBytes } from '../../functions/gateway/index.ts';
import { ColdEntry } from '../../platform/tiers/cold-reader.ts';

test('SSE messages of cold entries written from the records\' bytes are the text formatSse gives, byte for byte', () => {
  const text = '{"specversion":"1.0","id":"é1","source":"/s","type":"t","data":{"n":12345678901234567890,"s":"ü 😀"}}';
  const entries = [
    new ColdEntry('1-0', 'payment.sent', Buffer.from(text)),
    new ColdEntry('1-1', 'zahlung.geändert', '{"id":"transformed"}'),
    { cursor: '1-2', type: 'type\r\nwith: breaks', event: text },
    new ColdEntry('1-3', 'x', Buffer.from('{}')),
  ];
  assert.deepEqual(sseBytes(entries), Buffer.from(new TextEncoder().encode(formatSse(entries))));
  assert.equal(entries[0]!.event, text, 'the text is made from the bytes when asked (webhooks, JSON pages)');
  assert.equal(sseBytes([]).length, 0);
});
