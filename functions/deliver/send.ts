/**
 * One HTTP POST to a webhook endpoint: connects only to addresses the URL policy allows (checked in the DNS
 * lookup the socket uses, and for IP literals here), never follows redirects, gives up after `timeoutMs`
 * (connection, response and body together) and reads at most a small part of the response body. Connections are
 * kept alive and shared by the endpoints of one host, at most `connectionsPerHost` of them: an endpoint has one
 * request in flight at most, so the cap only makes the endpoints of a host that serves many of them take turns.
 */
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { addressRefusal, checkUrlForm, EndpointRefusedError, policyLookup, type UrlPolicy } from '../../platform/webhooks/url-policy.ts';

export interface SendResult {
  /** HTTP status, or null when no response came */
  status: number | null;
  latencyMs: number;
  /** the Retry-After header as sent */
  retryAfter: string | null;
  /** why it failed; absent on 2xx */
  error?: string;
  kind: 'success' | 'http_error' | 'timeout' | 'network_error' | 'refused';
}

const BODY_SNIPPET = 256;
const URLS_KEPT = 10_000;

export function createSender(opts: { policy: UrlPolicy; timeoutMs: number; connectionsPerHost: number }) {
  const { policy, timeoutMs, connectionsPerHost } = opts;
  const lookup = policyLookup(policy);
  const agents = {
    http: new http.Agent({ keepAlive: true, maxSockets: connectionsPerHost }),
    https: new https.Agent({ keepAlive: true, maxSockets: connectionsPerHost }),
  };

  /** The verdict on each sink URL lately sent to (it depends on the URL and the policy only), at most URLS_KEPT. */
  const checked = new Map<string, URL | string>();

  /** The URL to send to, or why it is refused (its form, or an IP literal the policy refuses). */
  function check(rawUrl: string): URL | string {
    let verdict = checked.get(rawUrl);
    if (verdict !== undefined) return verdict;
    try {
      const url = checkUrlForm(rawUrl, policy);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const refusal = isIP(host) ? addressRefusal(host, policy) : null;
      verdict = refusal ?? url;
    } catch (err) {
      verdict = (err as Error).message;
    }
    if (checked.size >= URLS_KEPT) checked.delete(checked.keys().next().value!);
    checked.set(rawUrl, verdict);
    return verdict;
  }

  function send(rawUrl: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const url = check(rawUrl);
    if (typeof url === 'string') return Promise.resolve({ status: null, latencyMs: 0, retryAfter: null, error: `refused: ${url}`, kind: 'refused' });
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise<SendResult>((resolve) => {
      let settled = false;
      const finish = (r: SendResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(r);
      };
      const req = mod.request(url, {
        method: 'POST',
        agent: url.protocol === 'https:' ? agents.https : agents.http,
        lookup,
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)), 'user-agent': 'Pioneer-Webhooks/1' },
      });
      const timer = setTimeout(() => {
        finish({ status: null, latencyMs: elapsed(), retryAfter: null, error: `timeout: no complete response within ${timeoutMs} ms`, kind: 'timeout' });
        req.destroy();
      }, timeoutMs);
      req.on('error', (err) => {
        if (err instanceof EndpointRefusedError)
          finish({ status: null, latencyMs: elapsed(), retryAfter: null, error: `refused: ${err.message}`, kind: 'refused' });
        else finish({ status: null, latencyMs: elapsed(), retryAfter: null, error: `network: ${(err as NodeJS.ErrnoException).code ?? err.message}`, kind: 'network_error' });
      });
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const retryAfter = typeof res.headers['retry-after'] === 'string' ? res.headers['retry-after'] : null;
        let snippet = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (snippet.length < BODY_SNIPPET) snippet += chunk.slice(0, BODY_SNIPPET - snippet.length);
        });
        res.on('error', () => finish({ status, latencyMs: elapsed(), retryAfter, error: 'network: response cut off', kind: 'network_error' }));
        res.on('end', () => {
          if (status >= 200 && status < 300) return finish({ status, latencyMs: elapsed(), retryAfter, kind: 'success' });
          const why = status >= 300 && status < 400 ? `redirect to ${res.headers['location'] ?? '?'} (redirects are not followed)` : `HTTP ${status}`;
          finish({ status, latencyMs: elapsed(), retryAfter, error: snippet ? `${why}: ${snippet.replace(/\s+/g, ' ').trim()}` : why, kind: 'http_error' });
        });
      });
      req.end(body);
    });
  }

  return {
    send,
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

export type Sender = ReturnType<typeof createSender>;
