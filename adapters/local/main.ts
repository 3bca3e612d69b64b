/**
 * Runs functions locally in this process: `tsx adapters/local/main.ts [name ...]` (default: all of them).
 * Run with every function (no names), it also serves the front door: the whole API on PIONEER_FRONT_DOOR_PORT
 * (default 8080); with names, only when PIONEER_FRONT_DOOR_PORT is set.
 * Configuration comes from the environment (docs/configuration.md); a bad variable stops it with one line.
 */
import { ConfigError } from '../../platform/config/env.ts';
import { FUNCTIONS, functionsNamed } from '../../functions/registry.ts';
import { startLocalHost } from './host.ts';

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  const definitions = functionsNamed(names.length ? names : Object.keys(FUNCTIONS));
  const host = await startLocalHost({ definitions, ...(names.length ? {} : { frontDoor: true }) });
  for (const [name, h] of host.functions) process.stdout.write(`pioneer: ${name} listening on ${h.url}\n`);
  if (host.frontDoor) process.stdout.write(`pioneer: the API (every function, by path) on ${host.frontDoor.url}\n`);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`pioneer: ${signal}: finishing in-flight work and stopping\n`);
    host.stop().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`pioneer: stop failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) process.stderr.write(`pioneer: ${err.message}\n`);
  else process.stderr.write(`pioneer: failed to start: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(2);
});
