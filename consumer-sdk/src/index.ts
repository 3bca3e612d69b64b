/** @pioneer/consumer-sdk: pull a Pioneer subscription over SSE, once and in order, into files or your handler. */
export { Consumer, httpError, REPLAY_EXTENSION, SUBSCRIPTION_DELETED_EVENT, type ConsumerOptions, type ConsumerStats } from './consumer.ts';
export { FileSink, type SinkFile } from './file-sink.ts';
export { ConsumerError, exitCodeOf, type ConsumerErrorCode } from './errors.ts';
export { createCheckpointStore, parseCheckpoint, serializeCheckpoint, type Checkpoint, type CheckpointStore } from './checkpoint.ts';
export { toHandler, type CloudEvent, type Delivery, type Handler, type HandlerContext, type HandlerFunction, type HeldEntry } from './handler.ts';
export { SseParser, type SseMessage, type SseParserCallbacks } from './sse-parser.ts';
export { DEFAULT_BACKOFF, parseRetryAfter, retryDelay, type BackoffPolicy } from './backoff.ts';
export { RecentIds, eventKey } from './recent-ids.ts';
export { compareCursors, cursorTime, isCursor, CURSOR_RE } from './cursor.ts';
export { createLogger, silentLogger, type Logger, type LogLevel } from './logger.ts';
export { readStatus, formatStatus, CHECKPOINT_FILE, type ConsumerStatus } from './status.ts';
export { loadConfig, parseArgs, type ConsumerConfig } from './config.ts';
export { seedFromExport, verifyExport, type ExportManifest, type SeedOptions, type SeedResult } from './seed.ts';
