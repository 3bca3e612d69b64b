/**
 * The delivery of one event to one endpoint, its attempt counted by the lane (endpoints.step), as named
 * steps: prepare (sign the body) -> send (one POST) -> onSuccess (advance the endpoint) | onFailure (retry at the time retryDelay gives,
 * disable on 410, dead-letter when the schedule is exhausted). Every state change goes through the endpoint
 * store (platform/webhooks/endpoints.ts), fenced by the endpoint's lease, so an instance that lost the endpoint
 * cannot move it.
 */
import { newId } from '../../platform/ids.ts';
import type { Logger } from '../../platform/telemetry/logger.ts';
import type { FlowCounter } from '../../platform/insights/flow.ts';
import type { Counter, Histogram } from '../../platform/telemetry/metrics.ts';
import { signHeaders, webhookIdOf } from '../../platform/webhooks/signing.ts';
import { signingSecrets, type AttemptBegun, type AttemptOutcome, type AttemptRecord, type EndpointRecord, type EndpointStore } from '../../platform/webhooks/endpoints.ts';
import { parseRetryAfter, retryDelay } from '../../platform/webhooks/retry-delay.ts';
import type { SendResult, Sender } from './send.ts';

/** How long a delivered event's outcome is retried against a Redis that is away before the step fails. */
const RECORD_DELIVERY_MS = 60_000;

/** The event at the head of an endpoint: the first queued dead letter of a replay, else the next live entry. */
export interface HeadEvent {
  from: 'live' | 'replay';
  cursor: string;
  type: string;
  /** structured CloudEvent JSON, as stored */
  event: string;
}

export interface Lane {
  tenantId: string;
  subId: string;
  sink: string;
  owner: string;
}

export interface Prepared {
  lane: Lane;
  head: HeadEvent;
  headId: string;
  attempt: number;
  webhookId: string;
  headers: Record<string, string>;
  body: string;
}

export interface PipelineConfig {
  schedule: number[];
  jitter: number;
  maxRetryAfterMs: number;
  attemptsKept: number;
  deadLettersMax: number;
}

export interface PipelineMetrics {
  attempts: Counter<'outcome'>;
  latency: Histogram<'outcome'>;
  deadLetters: Counter;
}

export type StepResult = 'delivered' | 'retry' | 'dead' | 'gone' | 'lost';

/** What an attempt ended in, and the endpoint's next attempt when the lane asked for it to begin (null if not). */
export interface Step {
  result: StepResult;
  next: AttemptBegun | null;
}

/**
 * The lane's next attempt, asked for as an attempt's outcome is recorded: `advanced` tells whether the
 * endpoint's cursor moves past the head (a live event delivered or dead-lettered). Null: begin none.
 */
export type NextAttempt = (advanced: boolean) => Promise<{ after: string; live: string; checkedSecrets: string } | null>;

/** The webhook-id of a stored event: from its CloudEvent source and id, else (unparsable) its cursor. */
export function webhookIdOfEntry(event: string, subId: string, cursor: string): string {
  try {
    const ce = JSON.parse(event) as { source?: unknown; id?: unknown };
    if (typeof ce.source === 'string' && typeof ce.id === 'string') return webhookIdOf(ce.source, ce.id);
  } catch {
    // fall through
  }
  return webhookIdOf(`pioneer:${subId}`, cursor);
}

export function createDeliveryPipeline(deps: {
  endpoints: EndpointStore;
  sender: Sender;
  cfg: PipelineConfig;
  metrics: PipelineMetrics;
  log: Logger;
  /** counts what is delivered per tenant, type and minute */
  flow?: FlowCounter;
  random?: () => number;
}) {
  const { endpoints, sender, cfg, metrics, log, flow, random = Math.random } = deps;

  /** prepare: signs the body for the attempt the lane counted (endpoints.step) before sending. */
  function prepare(lane: Lane, ep: EndpointRecord, head: HeadEvent, attempt: number): Prepared {
    const headId = `${head.from}:${head.cursor}`;
    const webhookId = webhookIdOfEntry(head.event, lane.subId, head.cursor);
    const now = new Date();
    const headers = {
      'content-type': 'application/cloudevents+json; charset=utf-8',
      ...signHeaders(signingSecrets(ep, now.getTime()), webhookId, now, head.event),
    };
    return { lane, head, headId, attempt, webhookId, headers, body: head.event };
  }

  /** send: one POST. */
  function send(p: Prepared): Promise<SendResult> {
    return sender.send(p.lane.sink, p.headers, p.body);
  }

  function record(p: Prepared, r: SendResult, outcome: AttemptRecord['outcome'], nextAt?: number): string {
    const rec: AttemptRecord = {
      id: newId('att'),
      time: new Date().toISOString(),
      cursor: p.head.cursor,
      webhook_id: p.webhookId,
      attempt: p.attempt,
      source: p.head.from,
      status: r.status,
      outcome,
      latency_ms: r.latencyMs,
      ...(r.error ? { error: r.error } : {}),
      ...(nextAt !== undefined ? { next_attempt_at: new Date(nextAt).toISOString() } : {}),
    };
    return JSON.stringify(rec);
  }

  async function finish(
    p: Prepared, r: SendResult, outcome: 'delivered' | 'retry' | 'dead' | 'gone', next: NextAttempt | undefined,
    opts: { nextAt?: number; reason?: string } = {},
  ): Promise<Step> {
    const recordOutcome: AttemptOutcome = {
      head: p.headId, outcome, nextAtMs: opts.nextAt ?? 0, record: record(p, r, outcome, opts.nextAt), attemptsKept: cfg.attemptsKept,
      reason: opts.reason ?? '', deadLettersMax: cfg.deadLettersMax,
      // the event goes to Redis again only when it is dead-lettered: a delivered one is in its stream already
      ...(outcome === 'dead' ? { event: p.head.event, type: p.head.type, webhookId: p.webhookId } : { event: '', type: '', webhookId: '' }),
    };
    // the endpoint's next attempt begins in the same call, when the lane names it
    const begin = next ? await next(p.head.from === 'live' && (outcome === 'delivered' || outcome === 'dead')) : null;
    const call = () => endpoints.step(p.lane.tenantId, p.lane.subId, { owner: p.lane.owner, nowMs: Date.now(), outcome: recordOutcome, ...(begin ? { begin } : {}) });
    // A delivery that cannot be recorded would be sent again: keep trying to record it while Redis is away (a
    // failover, a restart), up to RECORD_DELIVERY_MS; the endpoint's next event waits meanwhile, so order holds.
    // Any other outcome is simply retried by the next step.
    let res: Awaited<ReturnType<typeof call>>;
    for (let tries = 0, deadline = Date.now() + RECORD_DELIVERY_MS; ; tries++) {
      try {
        res = await call();
        break;
      } catch (err) {
        if (outcome !== 'delivered' || Date.now() > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** tries, 2000)));
      }
    }
    if (res.recorded === 'lost') return { result: 'lost', next: null };
    if (outcome === 'delivered') flow?.add(p.lane.tenantId, p.head.type);
    // moved: the head was reset meanwhile (enabled, replayed); the next step reads the endpoint again
    return { result: outcome, next: res.begun };
  }

  /** onSuccess: the endpoint moves past the event. */
  function onSuccess(p: Prepared, r: SendResult, next?: NextAttempt): Promise<Step> {
    return finish(p, r, 'delivered', next);
  }

  /** onFailure: 410 disables the endpoint; otherwise the next attempt is scheduled, or the event dead-lettered. */
  async function onFailure(p: Prepared, r: SendResult, next?: NextAttempt): Promise<Step> {
    if (r.status === 410) return finish(p, r, 'gone', next, { reason: 'the endpoint answered 410 Gone' });
    const now = Date.now();
    const delay = retryDelay({
      schedule: cfg.schedule,
      attempts: p.attempt,
      retryAfterMs: parseRetryAfter(r.retryAfter, now),
      jitter: cfg.jitter,
      random: random(),
      maxRetryAfterMs: cfg.maxRetryAfterMs,
    });
    if (delay === null) {
      const step = await finish(p, r, 'dead', next, { reason: `${p.attempt} attempts failed; the last: ${r.error ?? `HTTP ${r.status}`}` });
      if (step.result === 'dead') metrics.deadLetters.inc();
      return step;
    }
    return finish(p, r, 'retry', next, { nextAt: now + delay });
  }

  /**
   * The whole pipeline for the head event of one endpoint, its attempt counted; `next` names the endpoint's
   * next attempt, begun in the call that records this one's outcome.
   */
  async function deliver(lane: Lane, ep: EndpointRecord, head: HeadEvent, attempt: number, next?: NextAttempt): Promise<Step> {
    const prepared = prepare(lane, ep, head, attempt);
    const result = await send(prepared);
    metrics.attempts.inc({ outcome: result.status === 410 ? 'gone' : result.kind });
    metrics.latency.observe({ outcome: result.kind }, result.latencyMs / 1000);
    const step = result.kind === 'success' ? await onSuccess(prepared, result, next) : await onFailure(prepared, result, next);
    log.debug({ subscription: lane.subId, cursor: head.cursor, attempt, status: result.status, step: step.result }, 'delivery attempt');
    return step;
  }

  return { prepare, send, onSuccess, onFailure, deliver };
}

export type DeliveryPipeline = ReturnType<typeof createDeliveryPipeline>;
