/**
 * The HTTP side of every function: a hono app with request ids and logs, problem+json errors, a JSON body
 * reader with a size limit, and /healthz, /readyz (the function's own checks) and /metrics.
 */
import { randomUUID } from 'node:crypto';
import { Hono, type Context } from 'hono';
import type { Registry } from 'prom-client';
import { asDependencyUnavailable, CursorExpiredError, HttpError } from '../errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { histogram } from '../telemetry/metrics.ts';
import { PROBLEM_CONTENT_TYPE, problemBody } from './problem.ts';
import type { AuthContext } from '../auth/authenticate.ts';

export type AppEnv = { Variables: { log: Logger; requestId: string; auth: AuthContext } };
export type App = Hono<AppEnv>;

export type ReadyCheck = () => Promise<Record<string, boolean>>;

export function problemResponse(err: HttpError, instance?: string): Response {
  return new Response(JSON.stringify(problemBody(err, instance)), {
    status: err.status,
    headers: { 'content-type': PROBLEM_CONTENT_TYPE, ...err.headers },
  });
}

/** The answer to a domain error the storage modules throw; null for any other error. */
function domainProblem(err: Error): HttpError | null {
  if (err instanceof CursorExpiredError)
    return new HttpError(410, err.code, err.message, {
      extra: {
        oldest_cursor: err.oldestCursor,
        detail:
          `events after this cursor are older than the subscription's retention or than the source topics keep. ` +
          `Resume after oldest_cursor; to recover what the topics still hold, replay the subscription from Kafka ` +
          `(POST /v1/subscriptions/${err.subscriptionId}/replay with {"since": "<RFC 3339 time>"}).`,
      },
    });
  return null;
}

/** The status recorded (in metrics and logs) for a request its client abandoned: nginx's 499, never sent to anyone. */
const CLIENT_CLOSED_REQUEST = 499;

/** True when `err` comes from the client going away mid-request (a body read cut short), not from the function. */
function clientClosed(c: Context, err: Error): boolean {
  if (c.req.raw.signal.aborted) return true;
  const code = (err as { code?: unknown }).code;
  return (code === 'ECONNRESET' && err.message === 'aborted') || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ERR_HTTP_REQUEST_TIMEOUT';
}

export function createApp(opts: { name: string; log: Logger; metrics: Registry; ready: ReadyCheck }): App {
  const { name, log, metrics, ready } = opts;
  const app = new Hono<AppEnv>();
  const duration = histogram(metrics, 'pioneer_http_request_duration_seconds', 'HTTP request duration', ['function', 'method', 'route', 'status']);

  app.use('*', async (c, next) => {
    const requestId = c.req.header('x-request-id') ?? randomUUID();
    c.set('requestId', requestId);
    c.set('log', log.child({ requestId }));
    const started = process.hrtime.bigint();
    await next();
    c.header('x-request-id', requestId);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    duration.observe({ function: name, method: c.req.method, route: c.req.routePath, status: String(c.res.status) }, seconds);
  });

  app.onError((err, c) => {
    if (err instanceof HttpError) return problemResponse(err, c.req.path);
    const domain = domainProblem(err);
    if (domain) return problemResponse(domain, c.req.path);
    if (clientClosed(c, err)) {
      // the client hung up (or its body was cut off by the server's request timeout): nobody reads an answer
      c.get('log')?.debug({ err: { message: err.message, code: (err as { code?: unknown }).code } }, 'client closed the request');
      return new Response(null, { status: CLIENT_CLOSED_REQUEST });
    }
    const outage = asDependencyUnavailable(err);
    if (outage) {
      c.get('log')?.warn({ err, dependency: outage.dependency }, `${outage.dependency} unavailable: answered 503`);
      return problemResponse(new HttpError(503, outage.code, outage.message, { headers: { 'retry-after': String(outage.retryAfterSeconds) } }), c.req.path);
    }
    c.get('log')?.error({ err }, 'unhandled error');
    return new Response(JSON.stringify({ status: 500, title: 'internal error', code: 'internal' }), {
      status: 500,
      headers: { 'content-type': PROBLEM_CONTENT_TYPE },
    });
  });
  app.notFound((c) => problemResponse(new HttpError(404, 'not_found', `no route for ${c.req.method} ${c.req.path}`), c.req.path));

  app.get('/healthz', (c) => c.json({ status: 'ok', function: name }));
  app.get('/readyz', async (c) => {
    let checks: Record<string, boolean>;
    try {
      checks = await ready();
    } catch {
      checks = { self: false };
    }
    const ok = Object.values(checks).every(Boolean);
    return c.json({ status: ok ? 'ready' : 'not ready', function: name, checks }, ok ? 200 : 503);
  });
  app.get('/metrics', async (c) => c.body(await metrics.metrics(), 200, { 'content-type': metrics.contentType }));
  return app;
}

/** Reads a JSON body: 415 for another content type, 413 past `limit` bytes, 400 naming the problem if malformed. */
export async function readJson(c: Context, limit = 1024 * 1024): Promise<unknown> {
  const ct = c.req.header('content-type') ?? '';
  if (!/^application\/([a-z.+-]*\+)?json\b/i.test(ct))
    throw new HttpError(415, 'unsupported_media_type', `content-type: expected application/json, got ${ct || 'none'}`, {
      errors: [{ field: 'header:content-type', message: 'expected application/json' }],
    });
  const text = (await readBody(c, limit)).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, 'malformed_json', `body: not valid JSON (${(err as Error).message})`, {
      errors: [{ field: 'body', message: 'not valid JSON' }],
    });
  }
}

/** Reads the body as bytes, refusing with 413 once it passes `limit` bytes (before reading it all). */
export async function readBody(c: Context, limit: number): Promise<Buffer> {
  const declared = Number(c.req.header('content-length') ?? '0');
  const tooLarge = () =>
    new HttpError(413, 'payload_too_large', `body: larger than ${limit} bytes`, { errors: [{ field: 'body', message: `at most ${limit} bytes` }] });
  if (declared > limit) throw tooLarge();
  const body = c.req.raw.body;
  if (!body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
