/**
 * The customer portal at /portal on the front door: one HTML page, its ES modules and stylesheet from portal/,
 * and Preact with htm as one ES module from node_modules (`htm/preact/standalone.module.js`): the platform
 * serves every byte, there is no CDN and no build step. The files are read once, when the front door starts;
 * only those names are served, so no path reaches the disk.
 *
 * Every answer carries a strict Content-Security-Policy: scripts, styles and connections from this origin only,
 * no inline script or style attribute in markup, no plugins, no framing, no form posting elsewhere, and DOM
 * sinks that take HTML refused (Trusted Types) so that an event's text can only ever be text. The page calls the
 * API of the same origin with the key the user typed, which it keeps in sessionStorage (docs/portal.md).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Hono } from 'hono';

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

/** The portal's files: every file of `dir` by name, and the vendored Preact + htm module. */
export function portalAssets(dir = resolve(dirname(fileURLToPath(import.meta.url)), '../../portal')): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type) assets.set(`/portal/${name}`, { body: readFileSync(join(dir, name)), type });
  }
  // the browser's build (`standalone.module.js`, no bare imports) lies beside the one Node's `import` resolves
  const standalone = dirname(fileURLToPath(import.meta.resolve('htm/preact/standalone')));
  assets.set('/portal/vendor/preact-htm.js', { body: readFileSync(join(standalone, 'standalone.module.js')), type: TYPES['.js']! });
  return assets;
}

/** Serves the portal on `door`: `/portal` (and `/portal/`) is the page, `/portal/<file>` its assets. */
export function mountPortal(door: Hono, assets = portalAssets()): void {
  const page = assets.get('/portal/index.html');
  if (!page) throw new Error('portal: portal/index.html is missing');
  const answer = (a: Asset) => new Response(new Uint8Array(a.body), { status: 200, headers: { ...HEADERS, 'content-type': a.type } });
  door.get('/portal', () => answer(page));
  door.get('/portal/', () => answer(page));
  door.get('/portal/*', (c, next) => {
    const a = assets.get(c.req.path);
    return a ? answer(a) : next();
  });
}
