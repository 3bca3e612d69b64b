/**
 * One error class for the SDK. The consumer retries only errors marked `retriable` (network, 5xx, 429, a
 * silent connection, a failing handler); everything else ends the run with a message naming what to fix.
 */
export type ConsumerErrorCode =
  | 'bad_config'
  | 'route_not_found'
  | 'unauthorized'
  | 'forbidden'
  | 'subscription_not_found'
  | 'subscription_deleted'
  | 'cursor_expired'
  | 'bad_request'
  | 'checkpoint_mismatch'
  | 'checkpoint_corrupt'
  | 'sink_corrupt'
  | 'server_error'
  | 'rate_limited'
  | 'network'
  | 'heartbeat_missed'
  | 'protocol'
  | 'handler_failed'
  | 'seed_invalid'
  | 'seed_conflict';

export class ConsumerError extends Error {
  readonly code: ConsumerErrorCode;
  readonly retriable: boolean;
  /** HTTP status when the gateway answered with an error. */
  readonly status: number | undefined;
  /** Delay the server asked for (Retry-After), in ms. */
  readonly retryAfterMs: number | undefined;
  /** The problem+json body, when the gateway sent one. */
  readonly problem: Record<string, unknown> | undefined;

  constructor(
    code: ConsumerErrorCode,
    message: string,
    opts: { retriable?: boolean; status?: number; retryAfterMs?: number; problem?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ConsumerError';
    this.code = code;
    this.retriable = opts.retriable ?? false;
    this.status = opts.status;
    this.retryAfterMs = opts.retryAfterMs;
    this.problem = opts.problem;
  }
}

/** Exit status of the CLI for an error that ended a run (0 is a graceful stop). */
export function exitCodeOf(err: unknown): number {
  if (!(err instanceof ConsumerError)) return 1;
  switch (err.code) {
    case 'bad_config':
    case 'route_not_found':
    case 'checkpoint_mismatch':
    case 'checkpoint_corrupt':
    case 'sink_corrupt':
      return 2;
    case 'unauthorized':
    case 'forbidden':
      return 3;
    case 'subscription_not_found':
    case 'subscription_deleted':
      return 4;
    case 'cursor_expired':
      return 5;
    case 'seed_invalid':
    case 'seed_conflict':
      return 6;
    default:
      return 1;
  }
}
