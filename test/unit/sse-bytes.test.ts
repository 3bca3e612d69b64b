import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sseBytes } from '../../functions/gateway/index.ts';
import { ByteArena, ColdEntry } from '../../platform/tiers/cold-reader.ts';
import type { StreamEntry } from '../../platform/redis/streams.ts';

/** The SSE text of entries as the format says it (the type's line breaks made spaces), written plainly. */
const sseText = (entries: StreamEntry[]) => entries.map((e) => `id: ${e.cursor}\nevent: ${e.type.replace(/[\r\n]/g, ' ')}\ndata: ${e.event}\n\n`).join('');

test('SSE messages, of hot entries and of cold ones written from the records\' bytes, are the format\'s text, byte for byte', () => {
  const text = '{"specversion":"1.0","id":"é1","source":"/s","type":"t","data":{"n":12345678901234567890,"s":"ü 😀"}}';
  const entries = [
    new ColdEntry('1-0', 'payment.sent', Buffer.from(text)),
    new ColdEntry('1-1', 'zahlung.geändert', '{"id":"transformed"}'),
    { cursor: '1-2', type: 'type\r\nwith: breaks', event: text },
    new ColdEntry('1-3', 'x', Buffer.from('{}')),
  ];
  assert.deepEqual(sseBytes(entries), Buffer.from(sseText(entries)));
  assert.equal(entries[0]!.event, text, 'the text is made from the bytes when asked (webhooks, JSON pages)');
  assert.equal(sseBytes([]).length, 0);
});

test('cold entries whose bytes share an arena are written and read back as their own records', () => {
  const arena = new ByteArena(64);
  const texts = ['{"a":1}', '{"b":"ü"}', `{"long":"${'x'.repeat(40)}"}`, '{"c":3}', '{"d":"😀"}'];
  const source = Buffer.from(texts.join(''));
  let at = 0;
  const entries = texts.map((t, i) => {
    const n = Buffer.byteLength(t);
    const e = new ColdEntry(`2-${i}`, 'x', source.subarray(at, (at += n)), arena);
    return e;
  });
  source.fill(0); // the entries hold copies, not views of the fetch response
  assert.deepEqual(entries.map((e) => e.event), texts);
  assert.deepEqual(entries.map((e) => e.bytes!.toString()), texts);
  assert.deepEqual(sseBytes(entries), Buffer.from(sseText(entries)));
});
