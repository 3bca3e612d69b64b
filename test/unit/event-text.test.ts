import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compactJson, oneLine, valueTexts, withJsonData, withMember } from '../../platform/events/event-text.ts';
import { decodeKafkaRecord } from '../../platform/events/kafka-binding.ts';

const DATA = '{"b":12345678901234567890,"10":-0.0,"a":[1.10,0.123456789012345678901234567890]}';

test('compactJson drops insignificant whitespace and copies every token as written', () => {
  const pretty = `\n{ "s" : "a \\" , b\\n" ,\r\n\t"d": ${DATA.replace(/,/g, ' ,\n  ')} }\n`;
  assert.equal(compactJson(pretty), `{"s":"a \\" , b\\n","d":${DATA}}`);
  assert.equal(oneLine(`  ${DATA} `), DATA, 'a text on one line is only trimmed');
  assert.equal(oneLine(`{"a": 1,\n "b" : 2}`), '{"a":1,"b":2}');
});

test("valueTexts gives each element's own text, on one line", () => {
  const texts = (text: string, of: 'value' | 'elements') => valueTexts(text, of).map((v) => v.text);
  assert.deepEqual(texts(`[ ${DATA} ,\n{"x": [1, 2]\n}, "s", 3.0, [ 1 ] ]`, 'elements'), [DATA, '{"x":[1,2]}', '"s"', '3.0', '[ 1 ]']);
  assert.deepEqual(texts(` ${DATA}\n`, 'value'), [DATA]);
  assert.deepEqual(texts('[]', 'elements'), []);
});

test('withMember adds a member at the end and leaves the rest as it was', () => {
  assert.equal(withMember(DATA, 'tenantid', 't-1'), `${DATA.slice(0, -1)},"tenantid":"t-1"}`);
  assert.equal(withMember('{ }', 'k', 'v'), '{ "k":"v"}');
  assert.equal(withJsonData({ specversion: '1.0', id: 'x', data: { rounded: 1 } }, `${DATA}\n`), `{"specversion":"1.0","id":"x","data":${DATA}}`);
});

test('valueTexts finds a member name given twice at the top level only', () => {
  assert.deepEqual(valueTexts('{"a":1,"b":{"a":2},"c":3}', 'value'), [{ text: '{"a":1,"b":{"a":2},"c":3}' }]);
  assert.equal(valueTexts('{"tenantid":"x","id":"1","tenantid":"y"}', 'value')[0]!.repeated, 'tenantid');
  assert.deepEqual(valueTexts('[{"a":1},{"b":1,"b":2,"c":{"c":1}},{"a":1}]', 'elements').map((v) => v.repeated), [undefined, 'b', undefined]);
});

test('the Kafka binding keeps a record\'s text: structured on one line, the key\'s partitionkey at the end, binary data as written', () => {
  const ce = `{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"x","data":${DATA}}`;
  const structured = { key: Buffer.from('k'), value: Buffer.from(ce.replace(/,"/g, ',\n "')), headers: { 'content-type': 'application/cloudevents+json' } };
  assert.equal(decodeKafkaRecord(structured).json, `${ce.slice(0, -1)},"partitionkey":"k"}`);
  const binary = {
    key: null,
    value: Buffer.from(DATA),
    headers: { ce_specversion: '1.0', ce_id: '2', ce_source: '/s', ce_type: 't', ce_tenantid: 'x', 'content-type': 'application/json' },
  };
  assert.equal(decodeKafkaRecord(binary).json, `{"specversion":"1.0","id":"2","source":"/s","type":"t","tenantid":"x","datacontenttype":"application/json","data":${DATA}}`);
  const bytes = { ...binary, value: Buffer.from([1, 2, 3]), headers: { ...binary.headers, 'content-type': 'application/octet-stream' } };
  assert.equal(decodeKafkaRecord(bytes).json, undefined, 'bytes are serialised from the decoded event (data_base64)');
});

test('a structured record on one line is stored as its own bytes, and decodes as JSON.parse reads it', () => {
  const ce = `{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"x","partitionkey":"k","data":${DATA}}`;
  const value = Buffer.from(ce);
  const item = decodeKafkaRecord({ key: Buffer.from('k'), value, headers: { 'content-type': 'application/cloudevents+json' } });
  assert.equal(item.bytes, value, 'the record\'s value itself, not a copy');
  assert.equal(item.json, ce);
  assert.deepEqual(item.event, JSON.parse(ce));
  assert.equal(decodeKafkaRecord({ key: null, value, headers: {} }).bytes, value, 'without a content-type: taken for a CloudEvent by its specversion');
  // anything else is stored as text made from the record: trimmed, compacted, with the key's partitionkey
  const ct = { 'content-type': 'application/cloudevents+json' };
  assert.equal(decodeKafkaRecord({ key: null, value: Buffer.from(` ${ce} `), headers: ct }).bytes, undefined);
  assert.equal(decodeKafkaRecord({ key: null, value: Buffer.from(` ${ce} `), headers: ct }).json, ce);
  const keyed = ce.replace(',"partitionkey":"k"', '');
  assert.equal(decodeKafkaRecord({ key: Buffer.from('k2'), value: Buffer.from(keyed), headers: {} }).json, `${keyed.slice(0, -1)},"partitionkey":"k2"}`);
  const latin1 = Buffer.concat([Buffer.from(ce.slice(0, -1)), Buffer.from(',"x":"'), Buffer.from([0xe9]), Buffer.from('"}')]);
  const replaced = decodeKafkaRecord({ key: null, value: latin1, headers: {} });
  assert.equal(replaced.bytes, undefined, 'bytes that are not UTF-8 are not the stored text');
  assert.equal((replaced.event as Record<string, unknown>)['x'], '\ufffd');
});

test('a structured record that is not a valid CloudEvent names its fault whichever way it is decoded', () => {
  const errorOf = (text: string) => decodeKafkaRecord({ key: null, value: Buffer.from(text), headers: { 'content-type': 'application/cloudevents+json' } }).error;
  assert.match(errorOf('{"specversion":"1.0","id":"1","source":"/s","type":"t",}') ?? '', /^invalid CloudEvent: not valid JSON/);
  assert.equal(errorOf('{"specversion":"1.0","id":"1","type":"t"}'), 'invalid CloudEvent: source: is required');
  assert.equal(errorOf('{"specversion":"1.0","id":"1","source":"/s","type":"t","Bad":"x"}'), 'invalid CloudEvent: Bad: is not a valid attribute name (lowercase letters and digits, at most 20)');
  assert.equal(errorOf('{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"yesterday"}'), 'invalid CloudEvent: time: must match format "date-time"');
  assert.equal(errorOf('{"specversion":"1.0","id":"1","source":"a b","type":"t"}'), 'invalid CloudEvent: source: must match format "uri-reference"');
  assert.equal(errorOf('{"specversion":"1.0","id":"1","source":"/s","type":"t","ext":{"a":1}}'), 'invalid CloudEvent: ext: must be string,number,boolean');
  assert.equal(errorOf(`{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"${'t'.repeat(65)}"}`), 'invalid CloudEvent: tenantid: must NOT have more than 64 characters');
});
