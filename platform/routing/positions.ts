/**
 * The route's own position per source partition. Key (a platform key, built in platform/redis/keys.ts):
 *   pioneer:route:pos    hash   "<topic>/<partition>" -> the next source offset the route must process
 * Kept in Redis beside the streams, so that when Redis comes back without its last writes the route sees that its
 * position is behind Kafka's committed offset and derives the lost appends again (functions/route).
 */
import type { PioneerRedis } from '../redis/client.ts';
import { keys, positionField } from '../redis/keys.ts';

export { positionField };

/** The next offset the route must process on the partition, or null when Redis has no position for it. */
export function readRoutePosition(redis: PioneerRedis, { topic, partition }: { topic: string; partition: number }): Promise<string | null> {
  return redis.hget(keys.routePositions(), positionField(topic, partition));
}

/** Sets the next offset the route must process on the partition. */
export async function writeRoutePosition(redis: PioneerRedis, { topic, partition, next }: { topic: string; partition: number; next: string }): Promise<void> {
  await redis.hset(keys.routePositions(), positionField(topic, partition), next);
}

/** Per "<topic>/<partition>" of `fields`, the next offset the route must process, or null when Redis has none. */
export async function readRoutePositions(redis: PioneerRedis, fields: readonly string[]): Promise<Map<string, string | null>> {
  if (fields.length === 0) return new Map();
  const values = await redis.hmget(keys.routePositions(), ...fields);
  return new Map(fields.map((f, i) => [f, values[i] ?? null]));
}
