import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { assertCloudEvent, CLOUDEVENT_SCHEMA } from '../../platform/events/cloudevent.ts';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const schema = addFormats(new Ajv({ allErrors: false, strict: false })).compile(CLOUDEVENT_SCHEMA);

const accepted = (event: unknown): boolean => {
  try {
    assertCloudEvent(event);
    return true;
  } catch {
    return false;
  }
};

/** Attribute values near the schema's edges: empty, long, of every JSON type, valid and invalid URIs and times. */
const value = fc.oneof(
  fc.constantFrom('', '1.0', '/s', 'a b', 'https://x.example/p?q=1', '2026-12-03T10:00:00Z', '2026-12-03T25:00:00Z', '2026-02-30T10:00:00Z', 'x'.repeat(64), 'x'.repeat(65), '😀'.repeat(64), 'x'.repeat(513)),
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 2 }),
);
const name = fc.constantFrom('specversion', 'id', 'source', 'type', 'subject', 'time', 'datacontenttype', 'dataschema', 'data', 'data_base64', 'tenantid', 'partitionkey', 'region', 'Bad', 'a'.repeat(21), 'x_y', '');
const base = { specversion: '1.0', id: '1', source: '/s', type: 't' };

test('an event passes the platform check exactly when it passes the CloudEvents schema', () => {
  fc.assert(
    fc.property(fc.dictionary(name, value, { maxKeys: 6 }), fc.boolean(), (members, onBase) => {
      const event = onBase ? { ...base, ...members } : members;
      assert.equal(accepted(event), schema(event), JSON.stringify(event));
    }),
    { numRuns: 5000 },
  );
});
