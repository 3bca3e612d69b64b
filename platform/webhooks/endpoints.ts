/**
 * Webhook endpoints in Redis: a subscription with a `sink` has one endpoint, worked by one deliver instance
 * at a time. Keys (all tenant keys, hash-tagged {t:T}; built in platform/redis/keys.ts):
 *   {t:T}:ep:<sub>            hash   id (ep_...), secret, secret_previous + secret_previous_until (ms; a rotated
 *                                    secret signs beside the new one until then), state (enabled |
 *                                    disabled), disabled_reason, disabled_at (ms), cursor (the last stream entry
 *                                    delivered or dead-lettered), head ("live:<cursor>" | "replay:<cursor>": the
 *                                    event being attempted), attempt (attempts made at the head), next_at (ms:
 *                                    when the head is tried again; its absence means now), created_at
 *   {t:T}:ep:<sub>:lease      string the deliver instance working the endpoint; PX lease, renewed by its owner;
 *                                    every state change of a delivery checks it (a fence against a stale owner)
 *   {t:T}:attempts:<sub>      list   recent attempts, JSON, newest first, capped (LTRIM)
 *   {t:T}:dead:<sub>          stream dead letters: cursor, type, event, reason, attempts, webhook_id, dead_at (ms);
 *                                    approximate MAXLEN cap. The route's append (append-events-n.lua) adds the
 *                                    events a subscription's transform failed on, with kind "transform" (no
 *                                    cursor, 0 attempts), which a replay of dead letters leaves
 *   {t:T}:redeliver:<sub>     list   dead letters queued by a replay (JSON {cursor, type, event}), delivered in
 *                                    order before the live stream continues after `cursor`
 * The state machine lives in Lua (ensure-endpoint, step-endpoint, replay-deadletters,
 * switch-endpoint, rotate-secret, reseal-secrets), so a timer (next_at) and the position survive restarts of
 * deliver and Redis. This module is the one that calls them, and the one that takes, renews and releases the
 * endpoint's lease (through platform/redis/leases.ts): deliver's lanes and pipeline work through the store.
 *
 * Secrets are stored sealed (platform/crypto/secret-box.ts: `enc:v1:<key id>:<iv>:<ciphertext>`), bound to the
 * tenant, subscription and endpoint ids, and opened only in this module: the scripts receive them sealed and
 * copy them as they are. A `whsec_` value in clear, written by a version before sealing, is read as it is and
 * sealed when it is next written: a rotation, or `npm run secrets:reencrypt` (reseal below).
 */
import { newId } from '../ids.ts';
import { PioneerError } from '../errors.ts';
import { keys } from '../redis/keys.ts';
import { serversOf, type PioneerRedis } from '../redis/client.ts';
import * as leases from '../redis/leases.ts';
import { SecretBoxError, type SecretBox } from '../crypto/secret-box.ts';
import { generateSecret, SECRET_PREFIX } from './signing.ts';

/** Every key of a subscription's endpoint, its attempts and dead letters included: deleted with the subscription. */
export function endpointKeys(tenantId: string, subId: string): string[] {
  return [
    keys.endpoint(tenantId, subId), keys.endpointLease(tenantId, subId), keys.deliveryAttempts(tenantId, subId),
    keys.deadLetters(tenantId, subId), keys.redeliver(tenantId, subId),
  ];
}

export interface EndpointRecord {
  id: string;
  /** the current secret, opened ('' when it does not open: see `unopened`) */
  secret: string;
  secret_previous?: string;
  secret_previous_until?: number;
  /** why a stored secret does not open (changed in Redis, moved, or sealed with a key no longer configured) */
  unopened?: { secret?: SecretBoxError; secret_previous?: SecretBoxError };
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

/** A dead letter queued by a replay, waiting at the head of its endpoint (delivered before the live stream). */
export interface QueuedEvent {
  cursor: string;
  type: string;
  /** structured CloudEvent JSON, as stored */
  event: string;
}

/**
 * What endpoints.step found when asked to begin the next attempt: an attempt counted at the endpoint's head (`queued`: the dead letter a replay queued,
 * null for the live event the caller named), or the endpoint read with nothing begun (disabled, waiting for its
 * next attempt, its secrets to check, or events to read after its cursor), or the lease is another's, or the
 * endpoint is gone. `storedSecrets` names the stored secrets, for the next call once they are known to open.
 */
export type AttemptBegun =
  | { kind: 'begun'; endpoint: EndpointRecord; storedSecrets: string; attempt: number; queued: QueuedEvent | null }
  | { kind: 'idle'; endpoint: EndpointRecord; storedSecrets: string }
  | { kind: 'lost' }
  | { kind: 'missing' };

/** The outcome of an attempt, to record at the endpoint's head ("live:<cursor>" | "replay:<cursor>"). */
export interface AttemptOutcome {
  head: string;
  outcome: 'delivered' | 'retry' | 'dead' | 'gone';
  nextAtMs: number;
  /** the attempt record (AttemptRecord JSON) pushed on the attempts list */
  record: string;
  attemptsKept: number;
  /** why the endpoint is disabled or the event dead-lettered */
  reason: string;
  /** the event, its type and webhook-id: read for `dead` only (empty strings otherwise) */
  event: string;
  type: string;
  webhookId: string;
  deadLettersMax: number;
}

/** How an attempt ended in Redis: recorded; the lease is another's (nothing written); the head moved on meanwhile (nothing written). */
export type AttemptFinished = 'recorded' | 'lost' | 'moved';

/** What a sealed secret of an endpoint is bound to: a value copied to another endpoint does not open. */
export function secretContext(tenantId: string, subId: string, endpointId: string): string {
  return `webhook-secret/${tenantId}/${subId}/${endpointId}`;
}

/** The tenant and subscription of an endpoint hash's key (the inverse of keys.endpoint); null for other keys. */
export function endpointKeyParts(key: string): { tenantId: string; subId: string } | null {
  const m = /^\{t:([^}]+)\}:ep:([^:]+)$/.exec(key);
  return m ? { tenantId: m[1]!, subId: m[2]! } : null;
}

/** A stored secret in clear (written before secrets were sealed), or sealed with a key that no longer seals. */
function needsSealing(stored: string, box: SecretBox): boolean {
  return box.keyIdOf(stored) !== box.sealingKeyId;
}

/**
 * The endpoint a hash holds, its secrets opened with `openSecret`; null when the hash holds none. A secret that
 * does not open is recorded in `unopened`, so the endpoint's state can still be shown, changed and rotated;
 * whatever needs the secret (currentSecret, signingSecrets) fails with the reason.
 */
export function parseEndpoint(raw: Record<string, string>, openSecret: (stored: string) => string): EndpointRecord | null {
  if (!raw['id'] || !raw['secret']) return null;
  const num = (k: string) => (raw[k] === undefined ? undefined : Number(raw[k]));
  const unopened: NonNullable<EndpointRecord['unopened']> = {};
  const open = (field: 'secret' | 'secret_previous', stored: string) => {
    try {
      return openSecret(stored);
    } catch (err) {
      if (!(err instanceof SecretBoxError)) throw err;
      unopened[field] = err;
      return '';
    }
  };
  return {
    id: raw['id'],
    secret: open('secret', raw['secret']),
    ...(raw['secret_previous'] ? { secret_previous: open('secret_previous', raw['secret_previous']), secret_previous_until: num('secret_previous_until') } : {}),
    ...(unopened.secret || unopened.secret_previous ? { unopened } : {}),
    state: raw['state'] === 'disabled' ? 'disabled' : 'enabled',
    ...(raw['disabled_reason'] ? { disabled_reason: raw['disabled_reason'], disabled_at: num('disabled_at') } : {}),
    cursor: raw['cursor'] ?? '0-0',
    ...(raw['head'] ? { head: raw['head'] } : {}),
    attempt: Number(raw['attempt'] ?? 0),
    ...(raw['next_at'] ? { next_at: Number(raw['next_at']) } : {}),
    created_at: raw['created_at'] ?? '',
  };
}

/** The endpoint's current secret in clear; the reason when it does not open. */
export function currentSecret(ep: EndpointRecord): string {
  if (ep.unopened?.secret) throw ep.unopened.secret;
  return ep.secret;
}

/** The secrets that sign now: the current one, and the previous one during its overlap window. */
export function signingSecrets(ep: EndpointRecord, now: number): string[] {
  const out = [currentSecret(ep)];
  if (ep.secret_previous !== undefined && (ep.secret_previous_until ?? 0) > now) {
    if (ep.unopened?.secret_previous) throw ep.unopened.secret_previous;
    out.push(ep.secret_previous);
  }
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

export function createEndpointStore(redis: PioneerRedis, box: SecretBox) {
  /** A stored secret's plaintext: a whsec_ value in clear as it is, a sealed one opened under its endpoint. */
  function openSecret(tenantId: string, subId: string, endpointId: string, stored: string): string {
    return stored.startsWith(SECRET_PREFIX) ? stored : box.open(stored, secretContext(tenantId, subId, endpointId));
  }

  /** The stored form of `stored` under the sealing key (itself when it already is); it must open. */
  function sealedAgain(tenantId: string, subId: string, endpointId: string, stored: string): string {
    const plaintext = openSecret(tenantId, subId, endpointId, stored);
    return needsSealing(stored, box) ? box.seal(plaintext, secretContext(tenantId, subId, endpointId)) : stored;
  }

  /** The stored form `seal` gives, or '' when the secret does not open. */
  function openable(seal: () => string): string {
    try {
      return seal();
    } catch (err) {
      if (err instanceof SecretBoxError) return '';
      throw err;
    }
  }

  const store = {
    /** The endpoint an endpoint hash (read by the caller, e.g. in a transaction) holds, its secrets opened. */
    fromHash(tenantId: string, subId: string, raw: Record<string, string>): EndpointRecord | null {
      const id = raw['id'];
      return id ? parseEndpoint(raw, (stored) => openSecret(tenantId, subId, id, stored)) : null;
    },

    /** Takes the endpoint's lease for `owner` (a deliver instance) when nobody holds it. */
    async takeLease(tenantId: string, subId: string, { owner, ttlMs }: { owner: string; ttlMs: number }): Promise<boolean> {
      return (await leases.tryTake(redis, { key: keys.endpointLease(tenantId, subId), owner, ttlMs })).taken;
    },

    /** Extends the endpoint's lease; false when `owner` no longer holds it. */
    renewLease(tenantId: string, subId: string, { owner, ttlMs }: { owner: string; ttlMs: number }): Promise<boolean> {
      return leases.renew(redis, { key: keys.endpointLease(tenantId, subId), owner, ttlMs });
    },

    /** Gives the endpoint's lease up, so another instance can take it at once. */
    releaseLease(tenantId: string, subId: string, { owner }: { owner: string }): Promise<boolean> {
      return leases.release(redis, { key: keys.endpointLease(tenantId, subId), owner });
    },

    /**
     * One step of an endpoint's delivery in one call (step-endpoint-5.lua): records the outcome of the attempt at
     * its head, when `outcome` is given, and begins the attempt at its next head, when `begin` is given.
     *
     * The outcome: `delivered` advances, `retry` waits until `nextAtMs`, `dead` dead-letters the event, advances
     * and disables, `gone` disables and keeps the head; fenced by the lease (but for `delivered`, a fact) and by
     * the head ('moved': it was reset meanwhile, nothing written; 'lost': the lease is another's, nothing begun).
     *
     * The next attempt is counted before the event is sent, so that one cut short by a crash counts too: its head
     * is the first dead letter a replay queued, else `begin.live`, the event the caller read after `begin.after`,
     * when that is still the endpoint's cursor; only while `owner` holds the lease, the endpoint is enabled and not
     * waiting for its next attempt time, and the caller has checked that the stored secrets open
     * (`begin.checkedSecrets`, a previous answer's `storedSecrets`). Otherwise nothing is counted and the endpoint
     * comes back as read ('idle'), for the caller to see why.
     */
    async step(
      tenantId: string,
      subId: string,
      a: { owner: string; nowMs: number; outcome?: AttemptOutcome; begin?: { after: string; live: string; checkedSecrets: string } },
    ): Promise<{ recorded: AttemptFinished | null; begun: AttemptBegun | null }> {
      const o = a.outcome;
      const res = await redis.stepEndpoint(
        keys.endpoint(tenantId, subId), keys.endpointLease(tenantId, subId), keys.deliveryAttempts(tenantId, subId),
        keys.deadLetters(tenantId, subId), keys.redeliver(tenantId, subId),
        a.owner, String(a.nowMs),
        o?.head ?? '', o?.outcome ?? '', String(o?.nextAtMs ?? 0), o?.record ?? '', String(o?.attemptsKept ?? 0),
        o?.reason ?? '', o?.event ?? '', o?.type ?? '', o?.webhookId ?? '', String(o?.deadLettersMax ?? 0),
        a.begin ? 'begin' : '', a.begin?.after ?? '', a.begin?.live ?? '', a.begin?.checkedSecrets ?? '',
      );
      const recorded = res[0] === 0 ? null : res[0] === -1 ? 'lost' : res[0] === -3 ? 'moved' : 'recorded';
      if (res[0] === -1) return { recorded, begun: a.begin ? { kind: 'lost' } : null };
      if (!a.begin) return { recorded, begun: null };
      if (res[1] === -1) return { recorded, begun: { kind: 'lost' } };
      if (res[1] === -2) return { recorded, begun: { kind: 'missing' } };
      const [, status, attempt, fields, queued] = res as [number, 0 | 1, number, string[], string | null | undefined];
      const raw: Record<string, string> = {};
      for (let i = 0; i < fields.length; i += 2) raw[fields[i]!] = fields[i + 1]!;
      const endpoint = store.fromHash(tenantId, subId, raw);
      if (!endpoint) return { recorded, begun: { kind: 'missing' } };
      const storedSecrets = `${raw['secret'] ?? ''}\n${raw['secret_previous'] ?? ''}`;
      if (status === 0) return { recorded, begun: { kind: 'idle', endpoint, storedSecrets } };
      return { recorded, begun: { kind: 'begun', endpoint, storedSecrets, attempt, queued: queued ? (JSON.parse(queued) as QueuedEvent) : null } };
    },

    /** Creates the endpoint of a subscription with a sink, once; delivery starts at the stream's start or end. */
    async ensure(tenantId: string, subId: string, from: 'start' | 'end'): Promise<boolean> {
      const id = newId('ep');
      const secret = box.seal(generateSecret(), secretContext(tenantId, subId, id));
      const created = await redis.ensureEndpoint(keys.endpoint(tenantId, subId), keys.stream(tenantId, subId), id, secret, from, new Date().toISOString());
      return created === 1;
    },

    async get(tenantId: string, subId: string): Promise<EndpointRecord | null> {
      return store.fromHash(tenantId, subId, await redis.hgetall(keys.endpoint(tenantId, subId)));
    },

    async setState(tenantId: string, subId: string, state: 'enabled' | 'disabled', reason = 'disabled through the API'): Promise<boolean> {
      return (await redis.switchEndpoint(keys.endpoint(tenantId, subId), state, reason, String(Date.now()))) === 1;
    },

    /**
     * A new secret; the previous one keeps signing for `overlapMs` (sealed again on the way when it was stored
     * in clear or with an older key). A previous secret that does not open (its key is gone) is dropped: the
     * rotation is how a tenant gets a working secret again. Null when there is no endpoint.
     */
    async rotate(tenantId: string, subId: string, overlapMs: number): Promise<{ secret: string; previousUntil: number } | null> {
      const key = keys.endpoint(tenantId, subId);
      for (let tries = 0; tries < 5; tries++) {
        const [id, current] = await redis.hmget(key, 'id', 'secret');
        if (!id || !current) return null;
        const secret = generateSecret();
        const previousUntil = Date.now() + overlapMs;
        const previous = openable(() => sealedAgain(tenantId, subId, id, current));
        const ok = await redis.rotateSecret(key, box.seal(secret, secretContext(tenantId, subId, id)), String(previousUntil), current, previous);
        if (ok === 1) return { secret, previousUntil };
        if (ok === 0) return null;
        // -1: rotated (or the sink replaced) meanwhile; read it again
      }
      throw new PioneerError('the endpoint secret kept changing during its rotation', { code: 'conflict', retriable: true });
    },

    /**
     * Seals the endpoint's stored secrets with the sealing key where they are in clear or sealed with another
     * key. `gone` when there is no endpoint (any more).
     */
    async reseal(tenantId: string, subId: string): Promise<'resealed' | 'current' | 'gone'> {
      const key = keys.endpoint(tenantId, subId);
      for (let tries = 0; tries < 5; tries++) {
        const [id, secret, previous] = await redis.hmget(key, 'id', 'secret', 'secret_previous');
        if (!id || !secret) return 'gone';
        // every secret is opened, also one already sealed with the sealing key: one that does not open fails here
        const secretSealed = sealedAgain(tenantId, subId, id, secret);
        const previousSealed = previous ? sealedAgain(tenantId, subId, id, previous) : '';
        if (secretSealed === secret && previousSealed === (previous ?? '')) return 'current';
        const ok = await redis.resealSecrets(key, secret, secretSealed, previous ?? '', previousSealed);
        if (ok === 1) return 'resealed';
        if (ok === 0) return 'gone';
      }
      throw new PioneerError('the endpoint secret kept changing while it was sealed again', { code: 'conflict', retriable: true });
    },

    /**
     * The key id each stored secret of an endpoint is sealed with (`clear` for one in clear); [] when there is
     * no endpoint. A SecretBoxError when one does not open.
     */
    async sealedWith(tenantId: string, subId: string): Promise<string[]> {
      const [id, ...stored] = await redis.hmget(keys.endpoint(tenantId, subId), 'id', 'secret', 'secret_previous');
      if (!id) return [];
      const present = stored.filter((v): v is string => !!v);
      for (const v of present) openSecret(tenantId, subId, id, v);
      return present.map((v) => box.keyIdOf(v) ?? 'clear');
    },

    /** Every endpoint in Redis (SCAN, in batches of about `count` keys): for re-sealing all secrets. */
    async *scan(count = 500): AsyncGenerator<{ tenantId: string; subId: string }> {
      // SCAN walks one server: on a Redis Cluster, every master in turn
      for (const node of serversOf(redis)) {
        let cursor = '0';
        do {
          const [next, found] = await node.scan(cursor, 'MATCH', keys.endpoint('*', '*'), 'COUNT', count, 'TYPE', 'hash');
          cursor = next;
          for (const k of found) {
            const parts = endpointKeyParts(k);
            if (parts) yield parts;
          }
        } while (cursor !== '0');
      }
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
  return store;
}

export type EndpointStore = ReturnType<typeof createEndpointStore>;
