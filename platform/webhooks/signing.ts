/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): secrets `whsec_<base64>`, the headers
 * `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`
 * (space-separated, one per active secret while a rotated secret overlaps). The HMAC is node:crypto's: the
 * `standardwebhooks` package computes SHA-256 in JavaScript and decodes the secret on every call, which was a
 * tenth of a webhook attempt's CPU; its verify() is what the tests check every signature with, and a test
 * compares this signature with the package's own sign() on random secrets and bodies.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';

export const SECRET_PREFIX = 'whsec_';

/** A new endpoint secret: whsec_ and 32 random bytes in base64. */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

/**
 * The webhook-id of an event: stable for the event whatever happens (every retry, a redelivery from the dead
 * letters, an event the route derived again after Redis lost it under a new cursor), so receivers can
 * de-duplicate on it. Derived from the CloudEvent's `source` and `id`, which identify it (CloudEvents 1.0).
 */
export function webhookIdOf(source: string, id: string): string {
  return 'msg_' + createHash('sha256').update(source).update('\0').update(id).digest('base64url').slice(0, 32);
}

export interface SignedHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/** The three Standard Webhooks headers for `body`, signed with each of `secrets` (current first). */
export function signHeaders(secrets: readonly string[], webhookId: string, at: Date, body: string): SignedHeaders {
  if (secrets.length === 0) throw new Error('an endpoint needs at least one secret to sign with');
  return {
    'webhook-id': webhookId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': secrets.map((s) => sign(s, webhookId, at, body)).join(' '),
  };
}

/** The keys of the secrets signed with lately (a whsec_ secret's base64 part, decoded), at most KEYS_KEPT. */
const decodedKeys = new Map<string, Buffer>();
const KEYS_KEPT = 10_000;

function keyOf(secret: string): Buffer {
  let key = decodedKeys.get(secret);
  if (key === undefined) {
    key = Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64');
    if (decodedKeys.size >= KEYS_KEPT) decodedKeys.delete(decodedKeys.keys().next().value!);
    decodedKeys.set(secret, key);
  }
  return key;
}

/** `v1,` and the base64 HMAC-SHA256 of `<id>.<unix seconds>.<body>` under the secret's key (Standard Webhooks). */
export function sign(secret: string, webhookId: string, at: Date, body: string): string {
  const hmac = createHmac('sha256', keyOf(secret));
  hmac.update(`${webhookId}.${Math.floor(at.getTime() / 1000)}.`);
  hmac.update(body);
  return 'v1,' + hmac.digest('base64');
}
