/** Type-prefixed, time-sortable identifiers: `ten_01J...`, `sub_01J...` (a ULID after the prefix). */
import { randomFillSync } from 'node:crypto';
import { monotonicFactory } from 'ulid';

export const ID_PREFIXES = ['ten', 'sub', 'key', 'ep', 'exp', 'evt', 'msg', 'att', 'sch', 'rpl'] as const;
export type IdPrefix = (typeof ID_PREFIXES)[number];

/**
 * The ULID's random characters from the system's cryptographic source, drawn from a pool filled 4 KiB at a
 * time: the package's own source asks the system for one byte per character (16 calls per id), which was a
 * measurable share of a webhook attempt's CPU (an attempt record gets an id).
 */
const pool = new Uint8Array(4096);
let used = pool.length;
function pooledRandom(): number {
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  return pool[used++]! / 256;
}

const ulid = monotonicFactory(pooledRandom);

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${ulid().toLowerCase()}`;
}

const ID_RE = /^([a-z]+)_[0-9a-hjkmnp-tv-z]{26}$/;

/** True when `value` is an id of the given kind (used to answer 404 early on garbage ids). */
export function isId(prefix: IdPrefix, value: string): boolean {
  const m = ID_RE.exec(value);
  return m !== null && m[1] === prefix;
}
