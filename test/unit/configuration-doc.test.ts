import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configurationDoc } from '../../scripts/config-doc.ts';
import { ROOT } from '../support/helpers.ts';

test('docs/configuration.md lists exactly the variables the functions read (regenerate with npx tsx scripts/config-doc.ts)', () => {
  const committed = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
  assert.equal(committed, configurationDoc(), 'docs/configuration.md is out of date: run npx tsx scripts/config-doc.ts');
  assert.match(committed, /\| `PIONEER_REDIS_URL` \| [^|]*\broute\b[^|]* \| yes, or `PIONEER_REDIS_CLUSTER_NODES` \|/);
  assert.match(committed, /\| `PIONEER_REDIS_CLUSTER_NODES` \| [^|]*\broute\b[^|]* \| yes, or `PIONEER_REDIS_URL` \|/);
});
