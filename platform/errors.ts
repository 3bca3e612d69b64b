/**
 * One error base class for the platform. Retry and dead-letter logic branch only on `retriable`;
 * HTTP answers are rendered from `HttpError` as problem+json (RFC 9457) by platform/http.
 */
export class PioneerError extends Error {
  readonly code: string;
  readonly retriable: boolean;

  constructor(message: string, opts: { code: string; retriable?: boolean; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = opts.code;
    this.retriable = opts.retriable ?? false;
  }
}

export interface ProblemField {
  /** JSON pointer-ish path of the offending field, e.g. `filters[0].prefix` or `header:Last-Event-ID`. */
  field: string;
  message: string;
}

/** An error a client caused or must know about; rendered as problem+json with its status. */
export class HttpError extends PioneerError {
  readonly status: number;
  readonly errors: ProblemField[];
  readonly headers: Record<string, string>;
  readonly extra: Record<string, unknown>;

  constructor(
    status: number,
    code: string,
    message: string,
    opts: { errors?: ProblemField[]; headers?: Record<string, string>; extra?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, { code, retriable: status === 429 || status >= 500, cause: opts.cause });
    this.status = status;
    this.errors = opts.errors ?? [];
    this.headers = opts.headers ?? {};
    this.extra = opts.extra ?? {};
  }

  static badRequest(field: string, message: string, code = 'invalid_request'): HttpError {
    return new HttpError(400, code, `${field}: ${message}`, { errors: [{ field, message }] });
  }

  static notFound(what = 'resource'): HttpError {
    return new HttpError(404, 'not_found', `${what} not found`);
  }
}

/**
 * A stream cursor older than the subscription's buffer: the entries after it were trimmed away, so reading on
 * from it would silently skip them. The HTTP edge answers 410 `cursor_expired` (platform/http/app.ts).
 */
export class CursorExpiredError extends PioneerError {
  readonly cursor: string;
  readonly subscriptionId: string;
  /** the oldest cursor a reader can resume after and miss nothing (null when unknown) */
  readonly oldestCursor: string | null;

  constructor(opts: { cursor: string; subscriptionId: string; oldestCursor: string | null }) {
    super(`cursor ${opts.cursor} is older than the subscription's events can be resumed from`, { code: 'cursor_expired' });
    this.cursor = opts.cursor;
    this.subscriptionId = opts.subscriptionId;
    this.oldestCursor = opts.oldestCursor;
  }
}

/** A source record that can never be routed; it goes to the dead-letter topic with `reason`. */
export class MalformedRecordError extends PioneerError {
  constructor(reason: string) {
    super(reason, { code: 'malformed_record', retriable: false });
  }
}

/** A dependency a request needs and cannot do without. */
export type Dependency = 'redis' | 'kafka';

/** Seconds a client is asked to wait before retrying, per dependency: Redis reconnects within a second or two;
 *  a Kafka client needs a metadata round once the broker is back. */
const RETRY_AFTER_SECONDS: Record<Dependency, number> = { redis: 1, kafka: 2 };

/**
 * Redis or Kafka did not answer (connection refused or closed, a command or request timed out, retries used
 * up). Retriable by definition: the same request succeeds once the dependency is back. The HTTP edge renders
 * it as 503 with `Retry-After` and the code `<dependency>_unavailable` (platform/http/app.ts).
 */
export class DependencyUnavailableError extends PioneerError {
  readonly dependency: Dependency;
  readonly retryAfterSeconds: number;

  constructor(dependency: Dependency, message: string, opts: { cause?: unknown; retryAfterSeconds?: number } = {}) {
    super(message, { code: `${dependency}_unavailable`, retriable: true, cause: opts.cause });
    this.dependency = dependency;
    this.retryAfterSeconds = opts.retryAfterSeconds ?? RETRY_AFTER_SECONDS[dependency];
  }
}

// ─── recognising a dependency outage in a client library's error ────────────────────────────────────────

/** kafkajs errors that mean the cluster is unreachable or did not answer in time (not a refusal of the request). */
const KAFKA_OUTAGE = new Set([
  'KafkaJSConnectionError', 'KafkaJSConnectionClosedError', 'KafkaJSRequestTimeoutError', 'KafkaJSNumberOfRetriesExceeded',
  'KafkaJSBrokerNotFound', 'KafkaJSMetadataNotLoaded', 'KafkaJSLockTimeout', 'KafkaJSTimeout',
]);

/** ioredis errors of a connection that is down, closing or slow, by message (ioredis throws plain Errors). */
const REDIS_OUTAGE_MESSAGES = [/^Connection is closed\.?$/, /^Stream isn't writeable/, /^Command timed out$/, /^Socket timeout\./];

/** Redis replies that mean the server cannot serve now (loading its AOF, a failover, a script hogging it, full). */
const REDIS_OUTAGE_REPLIES = /^(LOADING|BUSY|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|MISCONF|NOREPLICAS|OOM) /;

/** Socket failures; ioredis surfaces them bare, kafkajs wraps them in KafkaJSConnectionError. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'EAI_AGAIN']);

function recognise(err: Error & { code?: unknown; retriable?: unknown }): Dependency | null {
  const name = err.name ?? '';
  if (name.startsWith('KafkaJS')) {
    if (KAFKA_OUTAGE.has(name)) return 'kafka';
    // a retriable protocol error (leader not available, not enough replicas, request timed out on the broker)
    if (name === 'KafkaJSProtocolError' && err.retriable === true) return 'kafka';
    return null;
  }
  if (name === 'MaxRetriesPerRequestError') return 'redis';
  const message = err.message ?? '';
  if (REDIS_OUTAGE_MESSAGES.some((re) => re.test(message))) return 'redis';
  if (name === 'ReplyError' && REDIS_OUTAGE_REPLIES.test(message)) return 'redis';
  if (typeof err.code === 'string' && SOCKET_CODES.has(err.code)) return 'redis';
  return null;
}

/**
 * The one place that tells a dependency outage from any other failure: `err` itself when it is a
 * DependencyUnavailableError, one made from it when it (or an error in its `cause` chain, as kafkajs wraps its
 * retries) is an ioredis or kafkajs error of an unreachable, closed or timed-out connection; null otherwise.
 */
export function asDependencyUnavailable(err: unknown): DependencyUnavailableError | null {
  let current: unknown = err;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    if (current instanceof DependencyUnavailableError) return current;
    const dependency = recognise(current);
    if (dependency)
      return new DependencyUnavailableError(dependency, `${dependency === 'redis' ? 'Redis' : 'Kafka'} is unavailable; retry the same request`, { cause: err });
    current = current.cause;
  }
  return null;
}
