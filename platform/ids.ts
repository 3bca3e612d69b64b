/** Type-prefixed, time-sortable identifiers: `ten_01J...`, `sub_01J...` (a ULID after the prefix). */
import { monotonicFactory } from 'ulid';

export const ID_PREFIXES = ['ten', 'sub', 'key', 'ep', 'exp', 'evt', 'msg', 'att', 'sch', 'rpl'] as const;
export type IdPrefix = (typeof ID_PREFIXES)[number];

const ulid = monotonicFactory();

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${ulid().toLowerCase()}`;
}

const ID_RE = /^([a-z]+)_[0-9a-hjkmnp-tv-z]{26}$/;

/** True when `value` is an id of the given kind (used to answer 404 early on garbage ids). */
export function isId(prefix: IdPrefix, value: string): boolean {
  const m = ID_RE.exec(value);
  return m !== null && m[1] === prefix;
}
