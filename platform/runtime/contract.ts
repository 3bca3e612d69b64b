/**
 * The contract every function implements, whatever hosts it (adapters/local, adapters/knative,
 * adapters/openfaas). A function is an HTTP app (its API, if any, plus /healthz, /readyz, /metrics) and,
 * when Kafka-triggered, a handler of CloudEvent batches of one source partition in order.
 */
import type { z } from 'zod';
import type { Registry } from 'prom-client';
import type { App } from '../http/app.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { BatchResult, EventBatch } from '../events/inbound.ts';

export interface KafkaTrigger {
  /** Topics the function consumes. */
  topics: string[];
  /** Consumer group: every instance of the function shares it, one consumer per partition. */
  groupId: string;
  /** Handles one partition's batch; resolves only when its effects are durable (then the host commits). */
  handle(batch: EventBatch): Promise<BatchResult | void>;
}

export interface PioneerFunction {
  readonly name: string;
  readonly app: App;
  readonly trigger?: KafkaTrigger;
  /**
   * Called when the host stops taking requests, before it waits for the ones in flight: ends long-lived
   * responses (event streams) so that they do not hold the shutdown up. The function still serves until close().
   */
  drain?(): void | Promise<void>;
  /** Stops taking work and closes connections; in-flight work is finished first. */
  close(): Promise<void>;
}

export interface FunctionDeps {
  log: Logger;
  metrics: Registry;
}

export interface FunctionDefinition<S extends z.ZodType = z.ZodType> {
  name: string;
  /** Every environment variable the function reads (parsed at start-up by platform/config). */
  config: S;
  /** The port it listens on when hosted locally and no PORT is given. */
  defaultPort: number;
  create(config: z.infer<S>, deps: FunctionDeps): Promise<PioneerFunction>;
}

export function defineFunction<S extends z.ZodType>(def: FunctionDefinition<S>): FunctionDefinition<S> {
  return def;
}
