import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runIds } from '../../platform/redis/streams.ts';

test("a run's entry ids follow its first id, sequence by sequence", () => {
  assert.deepEqual(runIds({ first: '1764700000000-7', count: 3 }), ['1764700000000-7', '1764700000000-8', '1764700000000-9']);
  assert.deepEqual(runIds({ first: '1764700000000-0', count: 1 }), ['1764700000000-0']);
  assert.deepEqual(runIds({ first: '5-0', count: 0 }), []);
});

test('sequence numbers past 2^53 stay exact', () => {
  assert.deepEqual(runIds({ first: '5-9007199254740990', count: 4 }), ['5-9007199254740990', '5-9007199254740991', '5-9007199254740992', '5-9007199254740993']);
  assert.deepEqual(runIds({ first: '5-18446744073709551613', count: 3 }), ['5-18446744073709551613', '5-18446744073709551614', '5-18446744073709551615']);
});
