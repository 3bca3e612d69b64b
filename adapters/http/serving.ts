/**
 * How a host stops serving HTTP on SIGTERM, shared by the local host and the container host: no new
 * connections, idle keep-alive connections closed at once, long-lived responses (event streams) ended by the
 * function, in-flight requests given PIONEER_SHUTDOWN_GRACE_MS to finish, then every connection still open closed.
 * Without the last two steps one connected consumer would keep a stopping process alive until it is killed.
 */
import type { ServerType } from '@hono/node-server';
import { z } from 'zod';
import { env } from '../../platform/config/env.ts';
import type { PioneerFunction } from '../../platform/runtime/contract.ts';

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
