/**
 * Creates one function by name with its configuration from the environment, the way the container hosts
 * (Knative, OpenFaaS) run it: one function per process.
 */
import { loadConfig, commonSchema } from '../../platform/config/env.ts';
import { createLogger } from '../../platform/telemetry/logger.ts';
import { createMetrics } from '../../platform/telemetry/metrics.ts';
import type { PioneerFunction } from '../../platform/runtime/contract.ts';
import { functionsNamed } from '../../functions/registry.ts';
import { mountTrigger } from './serve-trigger.ts';

export async function startFunction(name: string, env: Record<string, string | undefined> = process.env): Promise<PioneerFunction> {
  const [def] = functionsNamed([name]);
  const { PIONEER_LOG_LEVEL } = loadConfig(commonSchema.pick({ PIONEER_LOG_LEVEL: true }), env);
  const config = loadConfig(def!.config, env);
  const log = createLogger({ level: PIONEER_LOG_LEVEL }).child({ function: name });
  const fn = await def!.create(config, { log, metrics: createMetrics() });
  mountTrigger(fn);
  return fn;
}
