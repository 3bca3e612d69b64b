/**
 * Encryption at rest for secrets the platform must read back (webhook signing secrets): AES-256-GCM with keys
 * from PIONEER_SECRET_KEYS, one or more `id:base64key` pairs (32-byte keys), comma-separated. The first key
 * seals; every key opens, so keys rotate: put a new key first, keep the old ones until every value has been
 * sealed again (`npm run secrets:reencrypt`, docs/operations.md).
 *
 * A sealed value is text: `enc:v1:<key id>:<base64 iv>:<base64 ciphertext and 16-byte tag>`, with a random
 * 12-byte IV. The caller names what the value belongs to (`context`, e.g. the tenant, subscription and endpoint
 * ids); it is authenticated with the value's header as additional data, so a value copied to another
 * endpoint, or given another key id, does not open.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { PioneerError } from '../errors.ts';

export const SEALED_PREFIX = 'enc:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const KEY_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export interface SecretKey {
  id: string;
  key: KeyObject;
}

/** A value that does not open: tampered with, moved, sealed with a key no longer configured, or malformed. */
export class SecretBoxError extends PioneerError {
  constructor(message: string, code: 'unknown_secret_key' | 'secret_not_opened' | 'malformed_sealed_value', cause?: unknown) {
    super(message, { code, retriable: false, cause });
  }
}

/**
 * The keys of a PIONEER_SECRET_KEYS value, the sealing key first. Throws an Error naming the entry at fault,
 * never the key material.
 */
export function parseSecretKeys(text: string): SecretKey[] {
  const entries = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (entries.length === 0) throw new Error('expected one or more id:base64key pairs, comma-separated');
  const seen = new Set<string>();
  return entries.map((entry, i) => {
    const at = entry.indexOf(':');
    const id = at < 0 ? '' : entry.slice(0, at);
    const encoded = at < 0 ? '' : entry.slice(at + 1);
    const which = `entry ${i + 1}${KEY_ID_RE.test(id) ? ` ("${id}")` : ''}`;
    if (at < 0) throw new Error(`${which}: expected id:base64key`);
    if (!KEY_ID_RE.test(id)) throw new Error(`${which}: the key id must be 1-64 letters, digits, '.', '_' or '-'`);
    if (seen.has(id)) throw new Error(`${which}: the key id appears twice`);
    seen.add(id);
    if (!BASE64_RE.test(encoded)) throw new Error(`${which}: the key is not base64`);
    const bytes = Buffer.from(encoded, 'base64');
    if (bytes.length !== KEY_BYTES) throw new Error(`${which}: the key is ${bytes.length} bytes, expected ${KEY_BYTES} (openssl rand -base64 32)`);
    return { id, key: createSecretKey(bytes) };
  });
}

/** The configuration variable; functions that read or write webhook secrets add it to their schema. */
export const secretKeysEnv = {
  PIONEER_SECRET_KEYS: z.string().transform((v, ctx) => {
    try {
      return parseSecretKeys(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  }),
};

export interface SecretBox {
  /** the id of the key that seals */
  readonly sealingKeyId: string;
  seal(plaintext: string, context: string): string;
  /** The plaintext of a sealed value; a SecretBoxError when it does not open under `context`. */
  open(sealed: string, context: string): string;
  /** The key id of a sealed value (null when the value is not sealed). */
  keyIdOf(value: string): string | null;
}

export function isSealed(value: string): boolean {
  return value.startsWith(SEALED_PREFIX);
}

/**
 * A box over `keys` (the first seals). Opened values are remembered (up to `memo` of them, keyed by value and
 * context, so a changed value or context is opened afresh): deliver reads an endpoint's secret on every poll.
 */
export function createSecretBox(keys: readonly SecretKey[], opts: { memo?: number } = {}): SecretBox {
  const { memo = 20_000 } = opts;
  const sealing = keys[0];
  if (!sealing) throw new Error('a secret box needs at least one key');
  const byId = new Map(keys.map((k) => [k.id, k.key]));
  const opened = new Map<string, string>();

  const aad = (header: string, context: string) => Buffer.from(`${header}\n${context}`, 'utf8');

  return {
    sealingKeyId: sealing.id,

    seal(plaintext, context) {
      const header = `${SEALED_PREFIX}${sealing.id}`;
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', sealing.key, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(aad(header, context));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `${header}:${iv.toString('base64')}:${body.toString('base64')}`;
    },

    open(sealed, context) {
      const memoKey = `${context}\n${sealed}`;
      const known = opened.get(memoKey);
      if (known !== undefined) return known;
      if (!isSealed(sealed)) throw new SecretBoxError(`not a sealed value (expected ${SEALED_PREFIX}...)`, 'malformed_sealed_value');
      const parts = sealed.slice(SEALED_PREFIX.length).split(':');
      if (parts.length !== 3) throw new SecretBoxError('malformed sealed value: expected enc:v1:<key id>:<iv>:<ciphertext>', 'malformed_sealed_value');
      const [keyId, ivText, bodyText] = parts as [string, string, string];
      const key = byId.get(keyId);
      if (!key)
        throw new SecretBoxError(
          `a stored secret is sealed with key "${keyId}", which PIONEER_SECRET_KEYS does not hold (it holds ${[...byId.keys()].map((k) => `"${k}"`).join(', ')}): put that key back`,
          'unknown_secret_key',
        );
      const iv = Buffer.from(ivText, 'base64');
      const body = Buffer.from(bodyText, 'base64');
      if (iv.length !== IV_BYTES || body.length < TAG_BYTES) throw new SecretBoxError('malformed sealed value: bad iv or ciphertext length', 'malformed_sealed_value');
      let plaintext: string;
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
        decipher.setAAD(aad(`${SEALED_PREFIX}${keyId}`, context));
        decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
        plaintext = Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
      } catch (err) {
        throw new SecretBoxError(`a stored secret sealed with key "${keyId}" does not open: it was changed, or belongs to another record`, 'secret_not_opened', err);
      }
      if (memo > 0) {
        if (opened.size >= memo) opened.delete(opened.keys().next().value!);
        opened.set(memoKey, plaintext);
      }
      return plaintext;
    },

    keyIdOf(value) {
      if (!isSealed(value)) return null;
      const end = value.indexOf(':', SEALED_PREFIX.length);
      return end < 0 ? null : value.slice(SEALED_PREFIX.length, end);
    },
  };
}
