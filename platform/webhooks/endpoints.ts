/**
 * Webhook endpoints in Redis: a subscription with a `sink` has one endpoint, worked by one deliver instance
 * at a time. Keys (all tenant keys, hash-tagged {t:T}; built in platform/redis/keys.ts):
 *   {t:T}:ep:<sub>            hash   id (ep_...), secret (whsec_...), secret_previous + secret_previous_until (ms;
 *                                    a rotated secret signs beside the new one until then), state (enabled |
 *                                    disabled), disabled_reason, disabled_at (ms), cursor (the last stream entry
 *                                    delivered or dead-lettered), head ("live:<cursor>" | "replay:<cursor>": the
 *                                    event being attempted), attempt (attempts made at the head), next_at (ms:
 *                                    when the head is tried again; its absence means now), created_at
 *   {t:T}:ep:<sub>:lease      string the deliver instance working the endpoint; PX lease, renewed by its owner;
 *                                    every state change of a delivery checks it (a fence against a stale owner)
 *   {t:T}:attempts:<sub>      list   recent attempts, JSON, newest first, capped (LTRIM)
 *   {t:T}:dead:<sub>          stream dead letters: cursor, type, event, reason, attempts, webhook_id, dead_at (ms);
 *                                    approximate MAXLEN cap
 *   {t:T}:redeliver:<sub>     list   dead letters queued by a replay (JSON {cursor, type, event}), delivered in
 *                                    order before the live stream continues after `cursor`
 * The state machine lives in Lua (ensure-endpoint, begin-attempt, finish-attempt, replay-deadletters,
 * switch-endpoint, rotate-secret), so a timer (next_at) and the position survive restarts of deliver and Redis.
 */
import { newId } from '../ids.ts';
import { keys } from '../redis/keys.ts';
import type { PioneerRedis } from '../redis/client.ts';
import { generateSecret } from './signing.ts';

/** Every key of a subscription's endpoint, its attempts and dead letters included: deleted with the subscription. */
export function endpointKeys(tenantId: string, subId: string): string[] {
  return [
    keys.endpoint(tenantId, subId), keys.endpointLease(tenantId, subId), keys.deliveryAttempts(tenantId, subId),
    keys.deadLetters(tenantId, subId), keys.redeliver(tenantId, subId),
  ];
}

export interface EndpointRecord {
  id: string;
  secret: string;
  secret_previous?: string;
  secret_previous_until?: number;
  state: 'enabled' | 'disabled';
  disabled_reason?: string;
  disabled_at?: number;
  cursor: string;
  head?: string;
  attempt: number;
  next_at?: number;
  created_at: string;
}

export interface AttemptRecord {
  id: string;
  time: string;
  /** the stream cursor of the event */
  cursor: string;
  webhook_id: string;
  /** 1 for the event's first attempt */
  attempt: number;
  /** from the live stream or a dead-letter replay */
  source: 'live' | 'replay';
  /** HTTP status, null when no response came (timeout, connection error, refused address) */
  status: number | null;
  outcome: 'delivered' | 'retry' | 'dead' | 'gone';
  latency_ms: number;
  error?: string;
  next_attempt_at?: string;
}

export interface DeadLetter {
  id: string;
  cursor: string;
  type: string;
  event: unknown;
  reason: string;
  attempts: number;
  webhook_id: string;
  dead_at: string;
}

export function parseEndpoint(raw: Record<string, string>): EndpointRecord | null {
  if (!raw['id'] || !raw['secret']) return null;
  const num = (k: string) => (raw[k] === undefined ? undefined : Number(raw[k]));
  return {
    id: raw['id'],
    secret: raw['secret'],
    ...(raw['secret_previous'] ? { secret_previous: raw['secret_previous'], secret_previous_until: num('secret_previous_until') } : {}),
    state: raw['state'] === 'disabled' ? 'disabled' : 'enabled',
    ...(raw['disabled_reason'] ? { disabled_reason: raw['disabled_reason'], disabled_at: num('disabled_at') } : {}),
    cursor: raw['cursor'] ?? '0-0',
    ...(raw['head'] ? { head: raw['head'] } : {}),
    attempt: Number(raw['attempt'] ?? 0),
    ...(raw['next_at'] ? { next_at: Number(raw['next_at']) } : {}),
    created_at: raw['created_at'] ?? '',
  };
}

/** The secrets that sign now: the current one, and the previous one during its overlap window. */
export function signingSecrets(ep: EndpointRecord, now: number): string[] {
  const out = [ep.secret];
  if (ep.secret_previous && (ep.secret_previous_until ?? 0) > now) out.push(ep.secret_previous);
  return out;
}

/** What the API shows of an endpoint (never a secret). */
export function endpointView(ep: EndpointRecord, url: string | undefined) {
  const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
  return {
    id: ep.id,
    url: url ?? null,
    state: ep.state,
    ...(ep.state === 'disabled' ? { disabled_reason: ep.disabled_reason ?? null, disabled_at: iso(ep.disabled_at) ?? null } : {}),
    cursor: ep.cursor,
    pending: ep.head ? { head: ep.head, attempts: ep.attempt, next_attempt_at: iso(ep.next_at) ?? null } : null,
    previous_secret_expires_at: ep.secret_previous_until && ep.secret_previous_until > Date.now() ? iso(ep.secret_previous_until) : null,
    created_at: ep.created_at,
  };
}

export function createEndpointStore(redis: PioneerRedis) {
  return {
    /** Creates the endpoint of a subscription with a sink, once; delivery starts at the stream's start or end. */
    async ensure(tenantId: string, subId: string, from: 'start' | 'end'): Promise<boolean> {
      const created = await redis.ensureEndpoint(
        keys.endpoint(tenantId, subId), keys.stream(tenantId, subId), newId('ep'), generateSecret(), from, new Date().toISOString(),
      );
      return created === 1;
    },

    async get(tenantId: string, subId: string): Promise<EndpointRecord | null> {
      return parseEndpoint(await redis.hgetall(keys.endpoint(tenantId, subId)));
    },

    async setState(tenantId: string, subId: string, state: 'enabled' | 'disabled', reason = 'disabled through the API'): Promise<boolean> {
      return (await redis.switchEndpoint(keys.endpoint(tenantId, subId), state, reason, String(Date.now()))) === 1;
    },

    /** A new secret; the previous one keeps signing for `overlapMs`. Null when there is no endpoint. */
    async rotate(tenantId: string, subId: string, overlapMs: number): Promise<{ secret: string; previousUntil: number } | null> {
      const secret = generateSecret();
      const previousUntil = Date.now() + overlapMs;
      const ok = await redis.rotateSecret(keys.endpoint(tenantId, subId), secret, String(previousUntil));
      return ok === 1 ? { secret, previousUntil } : null;
    },

    async attempts(tenantId: string, subId: string, limit: number): Promise<AttemptRecord[]> {
      const raw = await redis.lrange(keys.deliveryAttempts(tenantId, subId), 0, limit - 1);
      return raw.map((r) => JSON.parse(r) as AttemptRecord);
    },

    /** Dead letters oldest first, after the dead-letter id `after` when given. */
    async deadLetters(tenantId: string, subId: string, limit: number, after?: string): Promise<DeadLetter[]> {
      const raw = (await redis.xrange(keys.deadLetters(tenantId, subId), after ? `(${after}` : '-', '+', 'COUNT', limit)) as [string, string[]][];
      return raw.map(([id, fields]) => {
        const f: Record<string, string> = {};
        for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
        let event: unknown = f['event'];
        try {
          event = JSON.parse(f['event'] ?? 'null');
        } catch {
          // kept as stored
        }
        return {
          id,
          cursor: f['cursor'] ?? '',
          type: f['type'] ?? '',
          event,
          reason: f['reason'] ?? '',
          attempts: Number(f['attempts'] ?? 0),
          webhook_id: f['webhook_id'] ?? '',
          dead_at: new Date(Number(f['dead_at'] ?? 0)).toISOString(),
        };
      });
    },

    /** Queues up to `max` dead letters for redelivery ahead of the live stream and enables the endpoint. */
    async replay(tenantId: string, subId: string, max: number): Promise<number | null> {
      const n = await redis.replayDeadletters(keys.deadLetters(tenantId, subId), keys.redeliver(tenantId, subId), keys.endpoint(tenantId, subId), String(max));
      return n < 0 ? null : n;
    },

    /** The endpoint's state (secret, position, pending attempt): when a subscription's sink is removed. */
    async removeEndpoint(tenantId: string, subId: string): Promise<void> {
      await redis.del(keys.endpoint(tenantId, subId), keys.redeliver(tenantId, subId));
    },

  };
}

export type EndpointStore = ReturnType<typeof createEndpointStore>;
