/**
 * How a host serves a function over HTTP, shared by the local host and the container host (Knative, OpenFaaS).
 *
 * Serving: one Node server per function with bounded timeouts, so that slow or silent clients cannot hold
 * connections (and memory) for ever: the request head must arrive within PIONEER_HTTP_HEADERS_TIMEOUT_MS, the
 * whole request (head and body) within PIONEER_HTTP_REQUEST_TIMEOUT_MS, and an idle keep-alive connection is
 * closed after PIONEER_HTTP_KEEPALIVE_TIMEOUT_MS. A connection past its deadline is answered 408 and closed. These
 * bound receiving the request only: a response may last as long as the function writes it (an SSE stream of the
 * gateway runs for hours).
 *
 * Stopping on SIGTERM: no new connections, idle keep-alive connections closed at once, long-lived responses
 * (event streams) ended by the function, in-flight requests given PIONEER_SHUTDOWN_GRACE_MS to finish, then every
 * connection still open closed. Without the last two steps one connected consumer would keep a stopping process
 * alive until it is killed.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve, type ServerType } from '@hono/node-server';
import { z } from 'zod';
import { env } from '../../platform/config/env.ts';
import type { PioneerFunction } from '../../platform/runtime/contract.ts';

export const httpServerSchema = z.object({
  /** how long a client may take to send a request's head (request line and headers) */
  PIONEER_HTTP_HEADERS_TIMEOUT_MS: env.int(100, 600_000).default(10_000),
  /** how long a client may take to send a whole request, head and body (not the response: SSE streams last) */
  PIONEER_HTTP_REQUEST_TIMEOUT_MS: env.int(100, 3_600_000).default(30_000),
  /** how long an idle keep-alive connection is kept open after a response */
  PIONEER_HTTP_KEEPALIVE_TIMEOUT_MS: env.int(100, 600_000).default(5_000),
});
export type HttpServerConfig = z.infer<typeof httpServerSchema>;

/** The request's head is part of the request: its timeout cannot be the longer one (Node refuses it too). */
export function checkHttpTimeouts(cfg: HttpServerConfig, ctx: z.RefinementCtx): void {
  if (cfg.PIONEER_HTTP_HEADERS_TIMEOUT_MS > cfg.PIONEER_HTTP_REQUEST_TIMEOUT_MS)
    ctx.addIssue({ code: 'custom', path: ['PIONEER_HTTP_HEADERS_TIMEOUT_MS'], message: 'must not exceed PIONEER_HTTP_REQUEST_TIMEOUT_MS' });
}

/** Serves `fetch` on hostname:port (port 0 picks a free one) with the timeouts of `cfg`; resolves once listening. */
export function serveHttp(
  fetch: PioneerFunction['app']['fetch'],
  opts: { hostname?: string; port: number; cfg: HttpServerConfig },
): Promise<{ server: ServerType; port: number }> {
  const { cfg } = opts;
  const timeouts = {
    headersTimeout: cfg.PIONEER_HTTP_HEADERS_TIMEOUT_MS,
    requestTimeout: cfg.PIONEER_HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeout: cfg.PIONEER_HTTP_KEEPALIVE_TIMEOUT_MS,
    // Node looks for requests past their deadline this often (30 s by default, longer than the deadlines themselves)
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(cfg.PIONEER_HTTP_HEADERS_TIMEOUT_MS / 2))),
  };
  return new Promise((resolve, reject) => {
    const server = serve(
      { fetch, port: opts.port, ...(opts.hostname ? { hostname: opts.hostname } : {}), serverOptions: timeouts },
      (info: AddressInfo) => resolve({ server, port: info.port }),
    );
    // Node 20 takes keepAliveTimeout as a property only
    (server as Server).keepAliveTimeout = timeouts.keepAliveTimeout;
    server.once('error', reject);
  });
}

export const shutdownSchema = z.object({
  /** how long in-flight requests (and, in the local host, a Kafka consumer's batch) may take after SIGTERM */
  PIONEER_SHUTDOWN_GRACE_MS: env.int(0, 600_000).default(10_000),
});

export async function stopServing(server: ServerType, fn: Pick<PioneerFunction, 'drain'>, graceMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const closeAll = () => (server as { closeAllConnections?: () => void }).closeAllConnections?.();
  await fn.drain?.();
  const timer = setTimeout(closeAll, graceMs);
  try {
    await closed;
  } finally {
    clearTimeout(timer);
  }
}
