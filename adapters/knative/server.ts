/**
 * Knative host: one function per container, HTTP on $PORT (Knative Serving sets it). A Kafka-triggered
 * function takes the CloudEvents its KafkaSource posts (`ordering: ordered`) on `POST /`.
 * Usage: PIONEER_FUNCTION=route node dist/adapters/knative/server.js   (or the function name as argument)
 */
import { ConfigError, loadConfig } from '../../platform/config/env.ts';
import { containerHostSchema, startFunction } from '../http/start-function.ts';
import { serveHttp, stopServing } from '../http/serving.ts';

async function main(): Promise<void> {
  const cfg = loadConfig(containerHostSchema, { ...process.env, PIONEER_FUNCTION: process.argv[2] ?? process.env['PIONEER_FUNCTION'] });
  const fn = await startFunction(cfg.PIONEER_FUNCTION);
  const { server, port } = await serveHttp(fn.app.fetch, { port: cfg.PORT, cfg });
  process.stdout.write(`pioneer: ${fn.name} listening on http://0.0.0.0:${port}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    stopServing(server, fn, cfg.PIONEER_SHUTDOWN_GRACE_MS)
      .then(() => fn.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          process.stderr.write(`pioneer: stop failed: ${(err as Error)?.message ?? err}\n`);
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`pioneer: ${err instanceof ConfigError ? err.message : `failed to start: ${(err as Error)?.stack ?? err}`}\n`);
  process.exit(2);
});
