/**
 * The local host: runs any set of functions in one Node process, each on its own HTTP port, with a kafkajs
 * consumer standing in for the Kafka trigger of Kafka-triggered functions. SIGTERM/SIGINT stop taking work,
 * finish the batch in hand, commit and close.
 */
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { z } from 'zod';
import { commonSchema, loadConfig, env as envParsers } from '../../platform/config/env.ts';
import { createLogger, type Logger } from '../../platform/telemetry/logger.ts';
import { createMetrics } from '../../platform/telemetry/metrics.ts';
import { createKafka, kafkaSecurity } from '../../platform/kafka/client.ts';
import type { FunctionDefinition, PioneerFunction } from '../../platform/runtime/contract.ts';
import { hostKafkaTrigger, type KafkaTriggerHost } from './kafka-trigger.ts';
import { shutdownSchema, stopServing } from '../http/serving.ts';

export interface HostedFunction {
  fn: PioneerFunction;
  url: string;
  port: number;
  trigger?: KafkaTriggerHost;
}

export interface LocalHost {
  functions: Map<string, HostedFunction>;
  url(name: string): string;
  stop(): Promise<void>;
}

export const hostSchema = commonSchema.omit({ PIONEER_REDIS_URL: true }).extend(shutdownSchema.shape).extend({
  PIONEER_HOST: z.string().default('127.0.0.1'),
  PIONEER_KAFKA_SESSION_TIMEOUT_MS: envParsers.int(6000, 300000).default(10000),
});

function listen(app: PioneerFunction['app'], hostname: string, port: number): Promise<{ server: ServerType; port: number }> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname, port }, (info: AddressInfo) => resolve({ server, port: info.port }));
    server.once('error', reject);
  });
}

/**
 * Starts `definitions` with configuration from `env`. A function's port is `PIONEER_<NAME>_PORT`
 * (0 picks a free one), default its definition's port. Throws ConfigError naming a bad variable.
 */
export async function startLocalHost(opts: {
  definitions: FunctionDefinition[];
  env?: Record<string, string | undefined>;
  log?: Logger;
}): Promise<LocalHost> {
  const env = opts.env ?? process.env;
  const hostConfig = loadConfig(hostSchema, env);
  const log = opts.log ?? createLogger({ level: hostConfig.PIONEER_LOG_LEVEL });
  const metrics = createMetrics();
  const functions = new Map<string, HostedFunction>();
  const served: { server: ServerType; fn: PioneerFunction }[] = [];
  // parse every function's configuration before starting anything: one bad variable stops the host at once
  const parsed = opts.definitions.map((def) => {
    const portVar = `PIONEER_${def.name.toUpperCase()}_PORT`;
    const port = loadConfig(z.object({ [portVar]: envParsers.port().default(def.defaultPort) }), env)[portVar] as number;
    return { def, config: loadConfig(def.config, env), port };
  });
  const kafka = createKafka({ brokers: hostConfig.PIONEER_KAFKA_BROKERS, clientId: hostConfig.PIONEER_KAFKA_CLIENT_ID, log, ...kafkaSecurity(hostConfig) });

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
      const fn = await def.create(config, { log: flog, metrics });
      const { server, port: bound } = await listen(fn.app, hostConfig.PIONEER_HOST, port);
      served.push({ server, fn });
      const hosted: HostedFunction = { fn, port: bound, url: `http://${hostConfig.PIONEER_HOST}:${bound}` };
      functions.set(def.name, hosted);
      if (fn.trigger) {
        hosted.trigger = hostKafkaTrigger({ kafka, trigger: fn.trigger, log: flog, sessionTimeout: hostConfig.PIONEER_KAFKA_SESSION_TIMEOUT_MS });
        await hosted.trigger.start();
      }
      flog.info({ url: hosted.url }, 'listening');
    }
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    functions,
    url(name) {
      const h = functions.get(name);
      if (!h) throw new Error(`function ${name} is not hosted here`);
      return h.url;
    },
    stop,
  };
}
