/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): secrets `whsec_<base64>`, the headers
 * `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`
 * (space-separated, one per active secret while a rotated secret overlaps), made with the `standardwebhooks`
 * package so that receivers verify with the same library.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

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
    'webhook-signature': secrets.map((s) => new Webhook(s).sign(webhookId, at, body)).join(' '),
  };
}
