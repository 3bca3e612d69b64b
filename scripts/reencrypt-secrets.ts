/**
 * Seals every webhook signing secret stored in Redis with the first key of PIONEER_SECRET_KEYS: secrets still
 * in clear (written before secrets were sealed) and secrets sealed with an older key. Run it after putting a
 * new key first (docs/operations.md), then remove the old key once `--check` finds nothing left under it.
 *
 *   PIONEER_REDIS_URL=... PIONEER_SECRET_KEYS=new:...,old:... npm run secrets:reencrypt
 *   ... npm run secrets:reencrypt -- --check    counts only, writes nothing; exits 1 while anything is left
 *
 * Safe while the functions run: each endpoint is rewritten by a script that checks its secrets did not change
 * since they were read (a rotation meanwhile is read again), and a second run finds nothing to do.
 * Exits 0 when done, 1 when some secret was left as it was (named on stderr), 2 on bad configuration.
 */
import { fileURLToPath } from 'node:url';
import { commonSchema, REDIS_VARIABLES, ConfigError, loadConfig } from '../platform/config/env.ts';
import { createSecretBox, secretKeysEnv, type SecretBox } from '../platform/crypto/secret-box.ts';
import { createRedis, type PioneerRedis } from '../platform/redis/client.ts';
import { createEndpointStore } from '../platform/webhooks/endpoints.ts';

export interface ReencryptCounts {
  endpoints: number;
  /** endpoints whose secrets were sealed again */
  resealed: number;
  /** endpoints whose secrets were all sealed with the sealing key already */
  current: number;
  /** endpoints deleted while the run went on */
  gone: number;
  failed: number;
  /** stored secrets by what they were sealed with when read (`clear` for none) */
  before: Record<string, number>;
}

export async function reencryptSecrets(opts: {
  redis: PioneerRedis;
  box: SecretBox;
  check?: boolean;
  /** called about every `progressEvery` endpoints and at the end */
  progress?: (counts: ReencryptCounts, done: boolean) => void;
  failure?: (where: string, err: Error) => void;
  progressEvery?: number;
  concurrency?: number;
}): Promise<ReencryptCounts> {
  const { redis, box, check = false, progress = () => {}, failure = () => {}, progressEvery = 1000, concurrency = 32 } = opts;
  const store = createEndpointStore(redis, box);
  const counts: ReencryptCounts = { endpoints: 0, resealed: 0, current: 0, gone: 0, failed: 0, before: {} };
  let reported = 0;

  async function one(tenantId: string, subId: string): Promise<void> {
    try {
      const sealedWith = await store.sealedWith(tenantId, subId);
      for (const id of sealedWith) counts.before[id] = (counts.before[id] ?? 0) + 1;
      if (check) {
        if (sealedWith.length === 0) counts.gone++;
        else if (sealedWith.every((id) => id === box.sealingKeyId)) counts.current++;
        else counts.failed++, failure(`${tenantId}/${subId}`, new Error(`secrets stored ${sealedWith.map((id) => (id === 'clear' ? 'in clear' : `with key "${id}"`)).join(' and ')}`));
        return;
      }
      counts[await store.reseal(tenantId, subId)]++;
    } catch (err) {
      counts.failed++;
      failure(`${tenantId}/${subId}`, err as Error);
    }
  }

  let batch: Promise<void>[] = [];
  for await (const { tenantId, subId } of store.scan()) {
    counts.endpoints++;
    batch.push(one(tenantId, subId));
    if (batch.length >= concurrency) {
      await Promise.all(batch);
      batch = [];
    }
    if (counts.endpoints - reported >= progressEvery) {
      await Promise.all(batch);
      batch = [];
      reported = counts.endpoints;
      progress(counts, false);
    }
  }
  await Promise.all(batch);
  progress(counts, true);
  return counts;
}

function describe(c: ReencryptCounts, check: boolean): string {
  const before = Object.entries(c.before).map(([id, n]) => `${n} ${id === 'clear' ? 'in clear' : `with key ${id}`}`).join(', ') || 'none';
  return check
    ? `${c.endpoints} endpoints: ${c.current} with the sealing key only, ${c.failed} with something else; stored secrets: ${before}`
    : `${c.endpoints} endpoints: ${c.resealed} re-encrypted, ${c.current} already current, ${c.gone} deleted meanwhile, ${c.failed} failed; stored secrets found: ${before}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  let cfg;
  try {
    cfg = loadConfig(commonSchema.pick(REDIS_VARIABLES).extend(secretKeysEnv));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`secrets: ${err.message}\n`);
    process.exit(2);
  }
  const box = createSecretBox(cfg.PIONEER_SECRET_KEYS, { memo: 0 });
  const redis = createRedis(cfg, { name: 'reencrypt-secrets' });
  const out = (line: string) => process.stdout.write(`secrets: ${line}\n`);
  out(`${check ? 'checking' : 're-encrypting'} webhook secrets with key ${box.sealingKeyId}`);
  let failures = 0;
  const counts = await reencryptSecrets({
    redis,
    box,
    check,
    progress: (c, done) => out(`${done ? 'done: ' : ''}${describe(c, check)}`),
    failure: (where, err) => {
      if (++failures <= 50) process.stderr.write(`secrets: ${where}: ${err.message}\n`);
      else if (failures === 51) process.stderr.write('secrets: (further failures not shown)\n');
    },
  });
  await redis.quit();
  process.exit(counts.failed > 0 ? 1 : 0);
}
