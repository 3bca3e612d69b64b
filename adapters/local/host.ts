/**
 * The local host: runs any set of functions in one Node process, each on its own HTTP port, with a Kafka
 * consumer (kafkajs or @platformatic/kafka, as PIONEER_KAFKA_CLIENT says) standing in for the Kafka trigger of
 * Kafka-triggered functions, and, when asked, a front door: the whole API on one port, each request routed by
 * path to the function that serves it (front-door.ts). Each function has its own metrics registry: its /metrics
 * shows its own series only. SIGTERM/SIGINT stop taking work, finish the batch in hand, commit and close.
 */
import type { ServerType } from '@hono/node-server';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { commonSchema, loadConfig, REDIS_VARIABLES, env as envParsers } from '../../platform/config/env.ts';
import { createLogger, type Logger } from '../../platform/telemetry/logger.ts';
import { createMetrics } from '../../platform/telemetry/metrics.ts';
import { createKafkaClient } from '../../platform/kafka/client.ts';
import type { FunctionDefinition, PioneerFunction } from '../../platform/runtime/contract.ts';
import { hostKafkaTrigger, type KafkaTriggerHost } from './kafka-trigger.ts';
import { frontDoorApp } from './front-door.ts';
import { checkHttpTimeouts, httpServerSchema, serveHttp, shutdownSchema, stopServing } from '../http/serving.ts';

export interface HostedFunction {
  fn: PioneerFunction;
  /** the function's own registry: what its /metrics serves */
  metrics: Registry;
  url: string;
  port: number;
  trigger?: KafkaTriggerHost;
}

export interface LocalHost {
  functions: Map<string, HostedFunction>;
  /** the front door's URL and port, when the host serves one */
  frontDoor?: { url: string; port: number };
  url(name: string): string;
  stop(): Promise<void>;
}

export const hostSchema = commonSchema
  .omit(REDIS_VARIABLES)
  .extend(shutdownSchema.shape)
  .extend(httpServerSchema.shape)
  .extend({
    PIONEER_HOST: z.string().default('127.0.0.1'),
    /** the front door's port (the whole API on one port; 0 picks a free one), when the host serves one */
    PIONEER_FRONT_DOOR_PORT: envParsers.port().default(8080),
    PIONEER_KAFKA_SESSION_TIMEOUT_MS: envParsers.int(6000, 300000).default(10000),
  })
  .superRefine(checkHttpTimeouts);

/**
 * Starts `definitions` with configuration from `env`. A function's port is `PIONEER_<NAME>_PORT`
 * (0 picks a free one), default its definition's port. The front door is served on PIONEER_FRONT_DOOR_PORT when
 * `frontDoor` is true (default: when that variable is set). Throws ConfigError naming a bad variable.
 */
export async function startLocalHost(opts: {
  definitions: FunctionDefinition[];
  env?: Record<string, string | undefined>;
  log?: Logger;
  frontDoor?: boolean;
}): Promise<LocalHost> {
  const env = opts.env ?? process.env;
  const hostConfig = loadConfig(hostSchema, env);
  const log = opts.log ?? createLogger({ level: hostConfig.PIONEER_LOG_LEVEL });
  const withFrontDoor = opts.frontDoor ?? env['PIONEER_FRONT_DOOR_PORT'] !== undefined;
  const functions = new Map<string, HostedFunction>();
  const served: { server: ServerType; fn: Pick<PioneerFunction, 'drain'> }[] = [];
  let frontDoor: LocalHost['frontDoor'];
  // parse every function's configuration before starting anything: one bad variable stops the host at once
  const parsed = opts.definitions.map((def) => {
    const portVar = `PIONEER_${def.name.toUpperCase()}_PORT`;
    const port = loadConfig(z.object({ [portVar]: envParsers.port().default(def.defaultPort) }), env)[portVar] as number;
    return { def, config: loadConfig(def.config, env), port };
  });
  const kafka = createKafkaClient(hostConfig, { log });

  /** A consumer that has not finished its batch and left its group within the grace period is not waited for:
   *  its uncommitted batch goes to another instance, and the functions' appends are once-only by position. */
  const stopTrigger = async (name: string, trigger: KafkaTriggerHost) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        log.warn({ function: name, graceMs: hostConfig.PIONEER_SHUTDOWN_GRACE_MS }, 'the Kafka consumer did not stop within the grace period; going on');
        resolve();
      }, hostConfig.PIONEER_SHUTDOWN_GRACE_MS);
    });
    await Promise.race([trigger.stop().catch((err) => log.warn({ err, function: name }, 'consumer stop failed')), late]);
    clearTimeout(timer);
  };

  const stop = async () => {
    for (const [name, h] of functions) if (h.trigger) await stopTrigger(name, h.trigger);
    await Promise.all(served.map(({ server, fn }) => stopServing(server, fn, hostConfig.PIONEER_SHUTDOWN_GRACE_MS)));
    for (const h of functions.values()) await h.fn.close().catch((err) => log.warn({ err }, 'close failed'));
  };

  try {
    for (const { def, config, port } of parsed) {
      const flog = log.child({ function: def.name });
      const metrics = createMetrics(def.name);
      const fn = await def.create(config, { log: flog, metrics });
      const { server, port: bound } = await serveHttp(fn.app.fetch, { hostname: hostConfig.PIONEER_HOST, port, cfg: hostConfig });
      served.push({ server, fn });
      const hosted: HostedFunction = { fn, metrics, port: bound, url: `http://${hostConfig.PIONEER_HOST}:${bound}` };
      functions.set(def.name, hosted);
      if (fn.trigger) {
        hosted.trigger = hostKafkaTrigger({ kafka, trigger: fn.trigger, log: flog, sessionTimeout: hostConfig.PIONEER_KAFKA_SESSION_TIMEOUT_MS });
        await hosted.trigger.start();
      }
      flog.info({ url: hosted.url }, 'listening');
    }
    if (withFrontDoor) {
      const door = frontDoorApp(functions);
      const { server, port } = await serveHttp(door.fetch, { hostname: hostConfig.PIONEER_HOST, port: hostConfig.PIONEER_FRONT_DOOR_PORT, cfg: hostConfig });
      // the functions behind it end their own long-lived responses when they drain
      served.push({ server, fn: {} });
      frontDoor = { port, url: `http://${hostConfig.PIONEER_HOST}:${port}` };
      log.info({ url: frontDoor.url }, 'front door listening');
    }
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    functions,
    ...(frontDoor ? { frontDoor } : {}),
    url(name) {
      const h = functions.get(name);
      if (!h) throw new Error(`function ${name} is not hosted here`);
      return h.url;
    },
    stop,
  };
}
