/**
 * The only module that reads process.env. Every function declares one zod schema of its variables;
 * `loadConfig` parses it once at start-up and fails with one line naming each bad variable.
 */
import { z } from 'zod';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function loadConfig<S extends z.ZodType>(schema: S, env: Record<string, string | undefined> = process.env): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const name = issue.path.join('.');
    const value = env[name];
    const problem = value === undefined || value === '' ? 'is required' : `is invalid (${issue.message})`;
    return `${name} ${problem}`;
  });
  throw new ConfigError(`invalid configuration: ${lines.join('; ')}`);
}

/** Reusable variable parsers. */
export const env = {
  url: (protocols: string[]) =>
    z.string().refine((v) => {
      try {
        return protocols.includes(new URL(v).protocol.replace(':', ''));
      } catch {
        return false;
      }
    }, `expected a ${protocols.join('/')} URL`),
  brokers: () =>
    z
      .string()
      .regex(/^[^,\s:]+:\d+(,[^,\s:]+:\d+)*$/, 'expected host:port[,host:port...]')
      .transform((v) => v.split(',')),
  int: (min: number, max: number) => z.coerce.number().int().min(min).max(max),
  bool: () => z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1'),
  port: () => z.coerce.number().int().min(0).max(65535),
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  list: () => z.string().transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean)),
};

/** Variables every function shares. */
export const commonSchema = z.object({
  PIONEER_LOG_LEVEL: env.logLevel().default('info'),
  /** one Redis server; required unless PIONEER_REDIS_CLUSTER_NODES is set */
  PIONEER_REDIS_URL: env.url(['redis', 'rediss']).optional(),
  /** seed nodes of a Redis Cluster (host:port,...); when set, replaces PIONEER_REDIS_URL */
  PIONEER_REDIS_CLUSTER_NODES: env.brokers().optional(),
  PIONEER_KAFKA_BROKERS: env.brokers(),
  PIONEER_KAFKA_CLIENT_ID: z.string().min(1).default('pioneer'),
  /** the Kafka client library of the Kafka trigger, producers and admin calls (platform/kafka/types.ts) */
  PIONEER_KAFKA_CLIENT: z.enum(['kafkajs', 'platformatic']).default('kafkajs'),
  /** TLS to the brokers (the system's CA store) */
  PIONEER_KAFKA_SSL: env.bool().default(false),
  PIONEER_KAFKA_SASL_MECHANISM: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']).optional(),
  PIONEER_KAFKA_SASL_USERNAME: z.string().min(1).optional(),
  PIONEER_KAFKA_SASL_PASSWORD: z.string().min(1).optional(),
});
export type CommonConfig = z.infer<typeof commonSchema>;

/** The variables that say where Redis is, for `commonSchema.pick(...)` (platform/redis/client.ts reads them). */
export const REDIS_VARIABLES = { PIONEER_REDIS_URL: true, PIONEER_REDIS_CLUSTER_NODES: true } as const;

/**
 * `schema.refine(...requireRedis)`: one of PIONEER_REDIS_URL and PIONEER_REDIS_CLUSTER_NODES is set. Checked even
 * when other variables are missing too, so that the one line at start-up names every missing variable.
 */
export const requireRedis: [
  (cfg: { PIONEER_REDIS_URL?: string | undefined; PIONEER_REDIS_CLUSTER_NODES?: string[] | undefined }) => boolean,
  { path: string[]; message: string; when: () => boolean },
] = [
  (cfg) => cfg.PIONEER_REDIS_URL !== undefined || cfg.PIONEER_REDIS_CLUSTER_NODES !== undefined,
  { path: ['PIONEER_REDIS_URL'], message: 'is required (or PIONEER_REDIS_CLUSTER_NODES for a Redis Cluster)', when: () => true },
];
