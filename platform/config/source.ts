/**
 * The variables every function that derives subscription events from the source topics shares: the route, and
 * those that derive them again (replays, and cold reads of events older than the hot window). They must have the
 * same values everywhere, or a re-derived event differs from the one the route appended.
 */
import { z } from 'zod';
import { env } from './env.ts';
import { topicMappingsEnv } from '../events/topic-mapping.ts';
import type { SourceDecoding } from '../events/route-decoding.ts';

export const sourceSchema = z.object({
  PIONEER_SOURCE_TOPICS: env.list().default(['pioneer.events']),
  PIONEER_TOPIC_MAPPINGS: topicMappingsEnv(),
  PIONEER_MAX_RECORD_BYTES: env.int(1024, 16 * 1024 * 1024).default(1024 * 1024),
});

/**
 * A subscription's buffer: Redis holds its newest events (the hot window, and at most the size cap); older ones
 * are served from the source topics for as long as the retention says (their topics must keep records at least
 * that long). docs/operations.md sizes them.
 */
export const bufferSchema = z.object({
  /** how long a subscription's events stay in Redis; older ones are read again from the source topics */
  PIONEER_STREAM_HOT_SECONDS: env.int(1, 365 * 86400).default(21600),
  /** how far back a cursor resumes (the hot window, then the source topics); at most the topics' own retention */
  PIONEER_STREAM_RETENTION_HOURS: env.int(1, 24 * 365).default(72),
  /** the most events a subscription's stream holds in Redis; older ones are read again from the source topics */
  PIONEER_STREAM_MAX_LENGTH: env.int(1, 1_000_000_000).default(5_000_000),
});

/** The functions that read subscription streams: how many cold readers (each a Kafka consumer) one instance holds. */
export const coldReadsSchema = z.object({
  /** readers of this instance that may read events older than the hot window at once (each holds a Kafka consumer) */
  PIONEER_COLD_READS_MAX: env.int(1, 1000).default(16),
  /** of those, the most that one tenant's readers hold at once (a tenant past it gets 429 cold_reads_limit) */
  PIONEER_COLD_READS_MAX_PER_TENANT: env.int(1, 1000).default(4),
});

export function decodingOf(cfg: z.infer<typeof sourceSchema>): SourceDecoding {
  return { maxRecordBytes: cfg.PIONEER_MAX_RECORD_BYTES, mappings: cfg.PIONEER_TOPIC_MAPPINGS };
}

export function bufferLimitsOf(cfg: z.infer<typeof bufferSchema>): { maxLen: number; hotMs: number; resumableMs: number } {
  return { maxLen: cfg.PIONEER_STREAM_MAX_LENGTH, hotMs: cfg.PIONEER_STREAM_HOT_SECONDS * 1000, resumableMs: cfg.PIONEER_STREAM_RETENTION_HOURS * 3600_000 };
}
