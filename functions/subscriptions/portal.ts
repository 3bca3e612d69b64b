/**
 * The customer portal at /portal, served by the subscriptions function: one HTML page, its ES modules and
 * stylesheet from portal/, and Preact with htm as one ES module from node_modules (`htm/preact/standalone.module.js`,
 * a production dependency): the platform serves every byte, there is no CDN and no build step. The portal is the
 * subscriptions function's because that function answers what a portal is signed in with (`GET /v1/keys/current`)
 * and is served by every host: locally through the front door, deployed through the Ingress's `/portal` path
 * (knative/ingress.yaml, openfaas-ingress.yaml), on the same origin as the API the page calls.
 *
 * The files are read once, when the function starts, and each is its own GET route (no wildcard), so only those
 * names are served, no path reaches the disk, and the hosts' routing tables (the front door's, the Ingresses'
 * checks) see the portal's paths as they see the API's. In the image the compiled module reads dist/portal,
 * which the Dockerfile copies there (the same two levels up as portal/ is from this file); where the files are
 * missing the function serves its API all the same, warns once at start-up and answers /portal 404 naming them.
 *
 * Every answer carries a strict Content-Security-Policy: scripts, styles and connections from this origin only,
 * no inline script or style attribute in markup, no plugins, no framing, no form posting elsewhere, and DOM
 * sinks that take HTML refused (Trusted Types) so that an event's text can only ever be text. The page calls the
 * API of the same origin with the key the user typed, which it keeps in sessionStorage (docs/portal.md).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpError } from '../../platform/errors.ts';
import { problemResponse, type App } from '../../platform/http/app.ts';
import type { Logger } from '../../platform/telemetry/logger.ts';

export const PORTAL_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  'trusted-types',
].join('; ');

/** The portal's own files: portal/ at the repository's root; in the image, dist/portal beside the compiled code. */
export const PORTAL_DIR = fileURLToPath(new URL('../../portal', import.meta.url));

/** What the portal serves from node_modules, by its path: the module Node resolves, and the browser's build
 *  (`standalone.module.js`, no bare imports) that lies beside it. Its package must be a production dependency,
 *  since the image installs only those (test/unit/deploy-manifests.test.ts checks both). */
export const PORTAL_VENDOR: Record<string, { specifier: string; file: string }> = {
  '/portal/vendor/preact-htm.js': { specifier: 'htm/preact/standalone', file: 'standalone.module.js' },
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

const HEADERS = {
  'content-security-policy': PORTAL_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cache-control': 'no-cache',
};

interface Asset {
  body: Buffer;
  type: string;
}

/** The portal's files: every file of `dir` by name, and the vendored Preact + htm module. Throws naming what is
 *  missing. */
export function portalAssets(dir = PORTAL_DIR): Map<string, Asset> {
  if (!existsSync(join(dir, 'index.html'))) throw new Error(`${join(dir, 'index.html')} is missing`);
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir).sort()) {
    const type = TYPES[extname(name)];
    if (type) assets.set(`/portal/${name}`, { body: readFileSync(join(dir, name)), type });
  }
  for (const [path, { specifier, file }] of Object.entries(PORTAL_VENDOR)) {
    let beside: string;
    try {
      beside = dirname(fileURLToPath(import.meta.resolve(specifier)));
    } catch {
      throw new Error(`${specifier} is not installed in node_modules`);
    }
    assets.set(path, { body: readFileSync(join(beside, file)), type: TYPES[extname(file)]! });
  }
  return assets;
}

/** The files, read once per process; or why they could not be. */
let read: Map<string, Asset> | Error | undefined;
function readOnce(): Map<string, Asset> | Error {
  try {
    read ??= portalAssets();
  } catch (err) {
    read = err as Error;
  }
  return read;
}

/**
 * Serves the portal on `app`: `/portal` (and `/portal/`) is the page, `/portal/<file>` each of its assets. An
 * installation without the portal's files (a build that did not copy portal/ beside its dist/) still serves the
 * API: the start-up log warns, and `/portal` answers 404 naming what is missing.
 */
export function mountPortal(app: App, log: Logger, assets: Map<string, Asset> | Error = readOnce()): void {
  if (assets instanceof Error) {
    log.warn({ err: { message: assets.message } }, `the portal is not served: ${assets.message}`);
    const missing = () => problemResponse(new HttpError(404, 'portal_not_installed', `the portal's files are not installed with this function: ${assets.message}`), '/portal');
    app.get('/portal', missing);
    app.get('/portal/', missing);
    return;
  }
  const page = assets.get('/portal/index.html')!;
  const answer = (a: Asset) => new Response(new Uint8Array(a.body), { status: 200, headers: { ...HEADERS, 'content-type': a.type } });
  app.get('/portal', () => answer(page));
  app.get('/portal/', () => answer(page));
  for (const [path, asset] of assets) app.get(path, () => answer(asset));
}
