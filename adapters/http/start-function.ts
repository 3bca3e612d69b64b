/**
 * Creates one function by name with its configuration from the environment, the way the container hosts
 * (Knative, OpenFaaS) run it: one function per process.
 */
import { z } from 'zod';
import { loadConfig, commonSchema, env } from '../../platform/config/env.ts';
import { createLogger } from '../../platform/telemetry/logger.ts';
import { createMetrics } from '../../platform/telemetry/metrics.ts';
import type { PioneerFunction } from '../../platform/runtime/contract.ts';
import { FUNCTIONS, functionsNamed } from '../../functions/registry.ts';
import { mountTrigger } from './serve-trigger.ts';
import { checkHttpTimeouts, httpServerSchema, shutdownSchema } from './serving.ts';

/** The container host's own variables (adapters/knative/server.ts): which function, which port, its HTTP timeouts. */
export const containerHostSchema = z
  .object({
    PIONEER_FUNCTION: z.enum(Object.keys(FUNCTIONS) as [string, ...string[]]),
    PORT: env.port().default(8080),
  })
  .extend(shutdownSchema.shape)
  .extend(httpServerSchema.shape)
  .superRefine(checkHttpTimeouts);

export async function startFunction(name: string, env: Record<string, string | undefined> = process.env): Promise<PioneerFunction> {
  const [def] = functionsNamed([name]);
  const { PIONEER_LOG_LEVEL } = loadConfig(commonSchema.pick({ PIONEER_LOG_LEVEL: true }), env);
  const config = loadConfig(def!.config, env);
  const log = createLogger({ level: PIONEER_LOG_LEVEL }).child({ function: name });
  const fn = await def!.create(config, { log, metrics: createMetrics(name) });
  mountTrigger(fn);
  return fn;
}
