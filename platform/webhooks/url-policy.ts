/**
 * Which webhook endpoint URLs Pioneer may call. An endpoint must be https (unless the operator allows http)
 * and every address its host resolves to must be public: loopback, private (RFC 1918, fc00::/7), link-local
 * (169.254/16, fe80::/10), CGNAT (100.64/10) and unspecified addresses are refused unless the operator allows
 * that category. The check runs when a subscription's sink is set (a 400 naming `sink`) and again on every send
 * through `policyLookup`, the DNS lookup the HTTP client connects with, so a host that re-resolves to a
 * forbidden address later (DNS rebinding) is refused at connect time.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { z } from 'zod';
import { env } from '../config/env.ts';
import { HttpError, PioneerError } from '../errors.ts';

export const NETWORK_CATEGORIES = ['loopback', 'private', 'link-local', 'cgnat', 'unspecified'] as const;
export type NetworkCategory = (typeof NETWORK_CATEGORIES)[number];

export interface UrlPolicy {
  allowHttp: boolean;
  /** address categories the operator allows endpoints in */
  allowNetworks: ReadonlySet<NetworkCategory>;
}

/** The configuration variables of the policy; functions that check sinks add them to their schema. */
export const urlPolicyEnv = {
  PIONEER_WEBHOOK_ALLOW_HTTP: env.bool().default(false),
  PIONEER_WEBHOOK_ALLOW_NETWORKS: z
    .string()
    .default('')
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .pipe(z.array(z.enum([...NETWORK_CATEGORIES, 'all'], { message: `expected a comma-separated list of ${NETWORK_CATEGORIES.join(', ')} or all` }))),
};

export function urlPolicyOf(cfg: { PIONEER_WEBHOOK_ALLOW_HTTP: boolean; PIONEER_WEBHOOK_ALLOW_NETWORKS: string[] }): UrlPolicy {
  const nets = cfg.PIONEER_WEBHOOK_ALLOW_NETWORKS;
  return {
    allowHttp: cfg.PIONEER_WEBHOOK_ALLOW_HTTP,
    allowNetworks: new Set(nets.includes('all') ? NETWORK_CATEGORIES : (nets as NetworkCategory[])),
  };
}

const RANGES: [NetworkCategory, string, number, 'ipv4' | 'ipv6'][] = [
  ['unspecified', '0.0.0.0', 8, 'ipv4'],
  ['unspecified', '::', 128, 'ipv6'],
  ['loopback', '127.0.0.0', 8, 'ipv4'],
  ['loopback', '::1', 128, 'ipv6'],
  ['private', '10.0.0.0', 8, 'ipv4'],
  ['private', '172.16.0.0', 12, 'ipv4'],
  ['private', '192.168.0.0', 16, 'ipv4'],
  ['private', 'fc00::', 7, 'ipv6'],
  ['link-local', '169.254.0.0', 16, 'ipv4'],
  ['link-local', 'fe80::', 10, 'ipv6'],
  ['cgnat', '100.64.0.0', 10, 'ipv4'],
];

const LISTS = new Map<NetworkCategory, BlockList>();
for (const [category, net, prefix, family] of RANGES) {
  let list = LISTS.get(category);
  if (!list) LISTS.set(category, (list = new BlockList()));
  list.addSubnet(net, prefix, family);
}

/** The forbidden category `address` (an IP literal) falls in, or null when it is public. IPv4-mapped IPv6 counts as IPv4. */
export function categoryOf(address: string): NetworkCategory | null {
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  for (const [category, list] of LISTS) if (list.check(address, family)) return category;
  return null;
}

/** null when `address` may be called under `policy`, else why not. */
export function addressRefusal(address: string, policy: UrlPolicy): string | null {
  const category = categoryOf(address);
  if (category === null || policy.allowNetworks.has(category)) return null;
  return `${address} is a ${category} address; endpoints must be publicly reachable (the operator can allow ${category} addresses)`;
}

/** An endpoint refused by the policy: not retriable by itself (the same URL is refused again). */
export class EndpointRefusedError extends PioneerError {
  constructor(message: string) {
    super(message, { code: 'endpoint_refused', retriable: false });
  }
}

/** Checks the URL's form under `policy`; returns the parsed URL or throws EndpointRefusedError. */
export function checkUrlForm(raw: string, policy: UrlPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new EndpointRefusedError('not a valid URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new EndpointRefusedError('must be an https URL');
  if (url.protocol === 'http:' && !policy.allowHttp) throw new EndpointRefusedError('must be an https URL (plain http is not allowed on this platform)');
  if (url.username || url.password) throw new EndpointRefusedError('must not carry credentials (user:password@); verify the webhook signature instead');
  if (!url.hostname) throw new EndpointRefusedError('has no host');
  return url;
}

function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

function resolveAll(host: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) => dnsLookup(host, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));
}

/** Checks the URL's form and every address its host resolves to; throws EndpointRefusedError naming the problem. */
export async function checkEndpointUrl(raw: string, policy: UrlPolicy): Promise<URL> {
  const url = checkUrlForm(raw, policy);
  const host = hostOf(url);
  let addresses: string[];
  if (isIP(host)) addresses = [host];
  else {
    try {
      addresses = (await resolveAll(host)).map((a) => a.address);
    } catch (err) {
      throw new EndpointRefusedError(`host ${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? 'lookup failed'})`);
    }
    if (addresses.length === 0) throw new EndpointRefusedError(`host ${host} does not resolve`);
  }
  for (const address of addresses) {
    const refusal = addressRefusal(address, policy);
    if (refusal) throw new EndpointRefusedError(host === address ? refusal : `host ${host} resolves to ${refusal}`);
  }
  return url;
}

/** The API form of `checkEndpointUrl`: a 400 naming `field`. */
export async function assertSinkAllowed(raw: string, policy: UrlPolicy, field = 'sink'): Promise<void> {
  try {
    await checkEndpointUrl(raw, policy);
  } catch (err) {
    if (err instanceof EndpointRefusedError) throw HttpError.badRequest(field, err.message, 'invalid_sink');
    throw err;
  }
}

/**
 * A DNS lookup for the HTTP client that refuses forbidden addresses: the connection goes to exactly the
 * address checked here, so re-resolving the host (DNS rebinding) cannot reach a forbidden one.
 */
export function policyLookup(policy: UrlPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true, verbatim: true }, (err, addresses) => {
      if (err) return (callback as (e: Error | null, a: LookupAddress[]) => void)(err, []);
      const list = addresses as LookupAddress[];
      for (const a of list) {
        const refusal = addressRefusal(a.address, policy);
        if (refusal) return (callback as (e: Error | null, a: LookupAddress[]) => void)(new EndpointRefusedError(`host ${hostname} resolves to ${refusal}`), []);
      }
      if (options.all) return (callback as (e: Error | null, a: LookupAddress[]) => void)(null, list);
      const first = list[0];
      if (!first) return callback(new EndpointRefusedError(`host ${hostname} does not resolve`), '', 4);
      callback(null, first.address, first.family);
    });
  };
}
