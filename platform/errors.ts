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

/** A source record that can never be routed; it goes to the dead-letter topic with `reason`. */
export class MalformedRecordError extends PioneerError {
  constructor(reason: string) {
    super(reason, { code: 'malformed_record', retriable: false });
  }
}
