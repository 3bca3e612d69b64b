/**
 * Knative host: one function per container, HTTP on $PORT (Knative Serving sets it). A Kafka-triggered
 * function takes the CloudEvents its KafkaSource posts (`ordering: ordered`) on `POST /`.
 * Usage: PIONEER_FUNCTION=route node dist/adapters/knative/server.js   (or the function name as argument)
 */
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { z } from 'zod';
import { ConfigError, loadConfig, env } from '../../platform/config/env.ts';
import { startFunction } from '../http/start-function.ts';

const hostSchema = z.object({
  PIONEER_FUNCTION: z.string().min(1),
  PORT: env.port().default(8080),
});

async function main(): Promise<void> {
  const cfg = loadConfig(hostSchema, { ...process.env, PIONEER_FUNCTION: process.argv[2] ?? process.env['PIONEER_FUNCTION'] });
  const fn = await startFunction(cfg.PIONEER_FUNCTION);
  const server = serve({ fetch: fn.app.fetch, port: cfg.PORT }, (info: AddressInfo) => {
    process.stdout.write(`pioneer: ${fn.name} listening on http://0.0.0.0:${info.port}\n`);
  });
  const stop = () => server.close(() => fn.close().finally(() => process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`pioneer: ${err instanceof ConfigError ? err.message : `failed to start: ${(err as Error)?.stack ?? err}`}\n`);
  process.exit(2);
});
