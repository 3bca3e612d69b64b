/**
 * What names reference data by: a table's name (what a transform's `$lookup(table, key)` names, and what
 * PIONEER_REFERENCE_TOPICS binds to a compacted topic) and a record's lookup key. Both end up in Redis keys and
 * hash fields (platform/reference/store.ts describes them), so both are bounded here, once, for the reference
 * function that writes them, the API that checks a transform and the route that looks them up.
 */

/** A table's name: a lower-case letter, then at most 63 lower-case letters, digits, '_' or '-'. */
export const REFERENCE_TABLE_PATTERN = /^[a-z][a-z0-9_-]{0,63}$/;

export const REFERENCE_TABLE_RULE = "a lower-case letter, then at most 63 lower-case letters, digits, '_' or '-'";

/** The longest lookup key, in characters (its UTF-8 bytes are at most four times that). */
export const MAX_REFERENCE_KEY_LENGTH = 256;

export function isReferenceTable(name: string): boolean {
  return REFERENCE_TABLE_PATTERN.test(name);
}

/**
 * The Kafka key of a reference record: `<tenantid>/<lookup key>`. A compacted topic keeps the latest record of
 * each Kafka key across all tenants, so the tenant is part of it: two tenants' records of the same account id
 * never compact each other away, and a tombstone (a record with no value) says whose record it deletes.
 * Undefined when the key has no tenant part or no lookup key, or the lookup key is too long.
 */
export function parseReferenceKey(kafkaKey: string): { tenantId: string; key: string } | undefined {
  const slash = kafkaKey.indexOf('/');
  if (slash <= 0 || slash === kafkaKey.length - 1) return undefined;
  const key = kafkaKey.slice(slash + 1);
  if (key.length > MAX_REFERENCE_KEY_LENGTH) return undefined;
  return { tenantId: kafkaKey.slice(0, slash), key };
}
