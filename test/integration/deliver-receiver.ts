/**
 * A webhook receiver for the deliver tests: an HTTP server on 127.0.0.1 that verifies every request with the
 * `standardwebhooks` package against the endpoint's secret(s), records it, and answers as the test's
 * `respond` says (status, headers, or a hang).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { api, createTenant, ownService, waitFor } from '../support/helpers.ts';

export interface Received {
  /** data.n of the CloudEvent */
  n: number;
  key: string | undefined;
  webhookId: string;
  timestamp: string;
  signatures: string[];
  contentType: string;
  /** the secrets the request verified with ([] when none did) */
  verifiedWith: string[];
  at: number;
  /** the CloudEvent's own time (ms) */
  eventTime: number;
  body: string;
  /** how many requests for this n came before this one */
  repeat: number;
}

export type Reply = { status: number; headers?: Record<string, string> } | 'hang';
export type Respond = (r: Received) => Reply | Promise<Reply>;

export interface Receiver {
  url: string;
  received: Received[];
  secrets: string[];
  respond: Respond;
  /** the n of each first receipt, in arrival order */
  firstReceipts(): number[];
  close(): Promise<void>;
}

export async function startReceiver(respond: Respond = () => ({ status: 204 })): Promise<Receiver> {
  const hanging = new Set<ServerResponse>();
  const rec: Receiver = {
    url: '',
    received: [],
    secrets: [],
    respond,
    firstReceipts() {
      const seen = new Set<number>();
      const out: number[] = [];
      for (const r of rec.received) if (!seen.has(r.n)) seen.add(r.n), out.push(r.n);
      return out;
    },
    close: async () => {},
  };
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
    const verifiedWith = rec.secrets.filter((s) => {
      try {
        new Webhook(s).verify(body, headers);
        return true;
      } catch {
        return false;
      }
    });
    let event: { data?: { n?: number }; partitionkey?: string; time?: string } = {};
    try {
      event = JSON.parse(body);
    } catch {
      // recorded with n = -1
    }
    const n = event.data?.n ?? -1;
    const r: Received = {
      n,
      key: event.partitionkey,
      webhookId: headers['webhook-id'] ?? '',
      timestamp: headers['webhook-timestamp'] ?? '',
      signatures: (headers['webhook-signature'] ?? '').split(' ').filter(Boolean),
      contentType: headers['content-type'] ?? '',
      verifiedWith,
      at: Date.now(),
      eventTime: event.time ? Date.parse(event.time) : NaN,
      body,
      repeat: rec.received.filter((x) => x.n === n).length,
    };
    rec.received.push(r);
    const reply = await rec.respond(r);
    if (reply === 'hang') {
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return;
    }
    res.writeHead(reply.status, reply.headers ?? {});
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  rec.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  rec.close = async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return rec;
}

/**
 * A redis-server of the test file's own. Every deliver instance on a Redis works all of its endpoints (that is
 * how instances share the work), so a file whose deliver runs with its own timings must not share Redis with
 * another file's deliver.
 */
export function ownRedis(): { url: string; stop: () => void; kill9: () => void; start: () => string } {
  const service = ownService('redis');
  const url = service.start();
  return { url, stop: service.stop, kill9: service.kill9, start: service.start };
}

/** Env for functions that accept and call receivers on 127.0.0.1 over http, with fast timings. */
export function deliverEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    PIONEER_WEBHOOK_ALLOW_HTTP: 'true',
    PIONEER_WEBHOOK_ALLOW_NETWORKS: 'loopback',
    PIONEER_DELIVER_RETRY_SCHEDULE: '0,200ms,200ms,200ms,200ms,200ms',
    PIONEER_DELIVER_RETRY_JITTER: '0',
    PIONEER_DELIVER_TIMEOUT_MS: '500',
    PIONEER_DELIVER_POLL_MS: '20',
    PIONEER_DELIVER_IDLE_POLL_MAX_MS: '160',
    PIONEER_DELIVER_RECHECK_MS: '100',
    PIONEER_DELIVER_LEASE_MS: '1500',
    PIONEER_DELIVER_CLAIM_MS: '200',
    ...overrides,
  };
}

/** A tenant and one subscription of `type` pushing to `receiver`, whose secret the receiver verifies with. */
export async function subscribe(subscriptionsUrl: string, deliverUrl: string, adminKey: string, receiver: Receiver, type: string) {
  const tenant = await createTenant(subscriptionsUrl, adminKey);
  const sub = await api(subscriptionsUrl, tenant.key, 'POST', '/v1/subscriptions', { types: [type], sink: receiver.url });
  if (sub.status !== 201) throw new Error(`subscription creation failed: ${sub.status} ${JSON.stringify(sub.body)}`);
  const secret = await api(deliverUrl, tenant.key, 'GET', `/v1/subscriptions/${sub.body.id}/endpoint/secret`);
  if (secret.status !== 200) throw new Error(`secret: ${secret.status} ${JSON.stringify(secret.body)}`);
  receiver.secrets.push(secret.body.secret);
  return { tenant, subId: sub.body.id as string, secret: secret.body.secret as string };
}

/** Waits until every n in `ns` reached the receiver with a 2xx answer at least once (by the respond rules). */
export function waitForAll(receiver: Receiver, ns: number[], timeout = 30000): Promise<true> {
  return waitFor(() => ns.every((n) => receiver.received.some((r) => r.n === n)) || undefined, { timeout, message: `events ${ns.join(',')} at the receiver` });
}
