#!/usr/bin/env node
// The pioneer-consumer command. The published package runs the compiled CLI (dist/, built by `npm run build`
// before packing). A checkout of the Pioneer repository holds the TypeScript sources and, after `npm ci`, tsx:
// there it runs the sources, so `npx pioneer-consumer` needs no build step and never runs a stale dist/.
import { existsSync } from 'node:fs';

const sources = new URL('../src/cli.ts', import.meta.url);
const compiled = new URL('../dist/cli.js', import.meta.url);

async function tsx() {
  try {
    return await import('tsx/esm/api');
  } catch {
    return null;
  }
}

const loader = existsSync(sources) ? await tsx() : null;
if (loader) {
  loader.register();
  await import(sources.href);
} else if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  process.stderr.write('pioneer-consumer: neither dist/cli.js nor tsx is there to run it: `npm run build -w consumer-sdk`, or `npm ci` in the repository\n');
  process.exit(1);
}
