/**
 * OpenFaaS host, following the node template's contract: `handler(event, context)` where `event` carries
 * body, headers, method, query and path, and `context` answers through status(), headers() and succeed()/fail().
 * Runs under of-watchdog in http mode. The kafka-connector posts one Kafka message per request (a structured
 * CloudEvent) to `POST /` of a Kafka-triggered function. The function is created once, on the first call.
 */
import type { PioneerFunction } from '../../platform/runtime/contract.ts';
import { startFunction } from '../http/start-function.ts';

export interface OpenFaasEvent {
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
  method: string;
  query: Record<string, string | string[] | undefined>;
  path: string;
}

export interface OpenFaasContext {
  status(code: number): OpenFaasContext;
  headers(headers: Record<string, string>): OpenFaasContext;
  succeed(value: unknown): unknown;
  fail(value: unknown): unknown;
}

function toBody(body: unknown): Buffer | undefined {
  if (body === undefined || body === null || body === '') return undefined;
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body);
  return Buffer.from(JSON.stringify(body)); // the template parses JSON bodies; send them on as JSON
}

/** The handler for function `name` (or an already created function, as the tests do). */
export function createOpenFaasHandler(source: string | PioneerFunction | Promise<PioneerFunction>) {
  let fn: Promise<PioneerFunction> | undefined = typeof source === 'string' ? undefined : Promise.resolve(source);
  return async function handle(event: OpenFaasEvent, context: OpenFaasContext): Promise<unknown> {
    fn ??= startFunction(source as string);
    const app = (await fn).app;
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(event.query ?? {})) for (const one of [v].flat()) if (one !== undefined) query.append(k, one);
    const headers = new Headers();
    for (const [k, v] of Object.entries(event.headers ?? {})) for (const one of [v].flat()) if (one !== undefined) headers.append(k, one);
    const qs = query.toString();
    const body = event.method === 'GET' || event.method === 'HEAD' ? undefined : toBody(event.body);
    const init: RequestInit = { method: event.method, headers, ...(body ? { body: new Uint8Array(body) } : {}) };
    const res = await app.fetch(new Request(`http://function${event.path || "/"}${qs ? `?${qs}` : ""}`, init));
    const out: Record<string, string> = {};
    res.headers.forEach((v, k) => (out[k] = v));
    const text = await res.text();
    return context.status(res.status).headers(out).succeed(text);
  };
}
