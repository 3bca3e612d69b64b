#!/usr/bin/env node
/**
 * pioneer-consumer: pulls one subscription into NDJSON files in a directory, with its checkpoint beside them.
 *
 *   pioneer-consumer run    [--config file.json] [--url …] [--subscription …] [--dir …] [--start-after cursor] …
 *   pioneer-consumer status [--config file.json] [--dir …] [--json]
 *   pioneer-consumer seed   --file export.ndjson.gz [--manifest manifest.json] [--dir …] [--subscription …]
 *
 * Logs are JSON lines on stderr; on a terminal, `seed` and `run` also draw a progress line there (PIONEER_PROGRESS:
 * auto, always, never). Exit status: 0 after a graceful stop (SIGTERM/SIGINT: the batch in hand is finished and
 * checkpointed), 2 bad configuration (a URL that is not the gateway too), 3 key refused, 4 subscription unknown
 * or deleted, 5 cursor expired, 6 seed refused (file and manifest disagree, or the checkpoint is ahead),
 * 1 anything else. A second signal exits at once (130); nothing is lost either way.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig, parseArgs, SETTINGS } from './config.ts';
import { ConsumerError, exitCodeOf } from './errors.ts';
import { createLogger, type Logger } from './logger.ts';
import { Consumer } from './consumer.ts';
import { FileSink } from './file-sink.ts';
import { lockDirectory } from './dir-lock.ts';
import { CHECKPOINT_FILE, formatStatus, readStatus } from './status.ts';
import { seedFromExport, type SeedProgress } from './seed.ts';
import { parseProgressMode, startTerminalProgress, type TerminalProgress } from './terminal-progress.ts';
import { runProgressLine, seedProgressLine } from './progress-lines.ts';

const HELP = `pioneer-consumer — pull a Pioneer subscription into NDJSON files

usage:
  pioneer-consumer run    [--config FILE] [flags]   stream into files until SIGTERM/SIGINT
  pioneer-consumer status [--config FILE] [--dir DIR] [--json]
  pioneer-consumer seed   --file EXPORT.ndjson.gz [--manifest MANIFEST.json] [--dir DIR]
                          write an export's events into the files and set the checkpoint to its end,
                          so that run continues live after it

settings (flag, variable, key in the --config JSON file):
${SETTINGS.map((s) => `  ${(s.flag ?? '').padEnd(24)}${s.env.padEnd(32)}${s.key}`).join('\n')}
  ${''.padEnd(24)}${'PIONEER_PROGRESS'.padEnd(32)}progress line on stderr: auto (on a terminal), always, never

exit status: 0 graceful stop, 2 bad configuration (also a URL that is not the gateway), 3 key refused,
4 subscription unknown or deleted, 5 cursor expired, 6 seed refused, 1 other errors
`;

async function main(argv: string[]): Promise<number> {
  let log: Logger = createLogger({ level: 'info' });
  let progress: TerminalProgress | null = null;
  try {
    const { command, flags } = parseArgs(argv);
    if (flags.has('--help') || command === 'help' || command === undefined) {
      process.stdout.write(HELP);
      return command === undefined && !flags.has('--help') ? 2 : 0;
    }
    if (command !== 'run' && command !== 'status' && command !== 'seed') throw new ConsumerError('bad_config', `unknown command "${command}" (run, status or seed)`);
    if (command !== 'seed' && (flags.has('--file') || flags.has('--manifest'))) throw new ConsumerError('bad_config', '--file and --manifest are flags of seed');
    const cfg = loadConfig({ command, flags });
    if (command === 'status') {
      log = createLogger({ level: cfg.logLevel });
      const s = await readStatus({ dir: cfg.dir, filePrefix: cfg.filePrefix, ...(cfg.url && cfg.apiKey ? { server: { url: cfg.url, apiKey: cfg.apiKey } } : {}) });
      process.stdout.write(flags.has('--json') ? JSON.stringify(s, null, 2) + '\n' : formatStatus(s));
      return 0;
    }
    // how the terminal shows progress is no setting of the consumer's: read here, like NO_COLOR
    const mode = parseProgressMode(process.env['PIONEER_PROGRESS']);
    let render = () => '';
    const line = startTerminalProgress({ stream: process.stderr, mode, render: () => render() });
    progress = line;
    log = createLogger({ level: cfg.logLevel, write: (text) => void line.log(text) });

    await mkdir(cfg.dir, { recursive: true });
    if (command === 'seed') {
      const file = flags.get('--file');
      if (!file) throw new ConsumerError('bad_config', 'seed needs --file <export.ndjson.gz>');
      const seedLock = await lockDirectory(cfg.dir);
      try {
        const manifest = flags.get('--manifest');
        let seeded: SeedProgress | null = null;
        render = seedProgressLine(() => seeded);
        const r = await seedFromExport({
          file, dir: cfg.dir, filePrefix: cfg.filePrefix, subscription: cfg.subscription, recentIdsWindow: cfg.recentIdsWindow, log,
          ...(manifest ? { manifest } : {}),
          onProgress: (p) => (seeded = p),
        });
        line.stop();
        process.stdout.write(JSON.stringify({ subscription: r.subscription, written: r.written, skipped: r.skipped, checkpoint: r.endCursor }) + '\n');
        return 0;
      } finally {
        await seedLock.release();
      }
    }
    const lock = await lockDirectory(cfg.dir);
    try {
      const backoff = { initialMs: cfg.retryInitialMs, maxMs: cfg.retryMaxMs, factor: 2, jitter: 0.5 };
      const consumer = new Consumer({
        url: cfg.url,
        apiKey: cfg.apiKey,
        subscription: cfg.subscription,
        handler: new FileSink({ dir: cfg.dir, prefix: cfg.filePrefix, maxFileBytes: cfg.maxFileBytes, log }),
        checkpoint: join(cfg.dir, CHECKPOINT_FILE),
        startAfter: cfg.startAfter,
        heartbeatMs: cfg.heartbeatMs,
        maxBatchEvents: cfg.maxBatchEvents,
        maxBatchWaitMs: cfg.maxBatchWaitMs,
        recentIdsWindow: cfg.recentIdsWindow,
        progressIntervalMs: cfg.progressIntervalMs,
        backoff,
        handlerBackoff: backoff,
        log,
      });
      render = runProgressLine(() => consumer.status());
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        signals++;
        if (signals > 1) {
          line.stop();
          log.warn('second signal: exiting now; the checkpoint is where the last finished batch left it', { signal });
          process.exit(130);
        }
        log.info('stopping: finishing the batch in hand', { signal });
        void consumer.stop();
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      await consumer.run();
      line.stop();
      const s = consumer.status();
      log.info('stopped gracefully', { cursor: s.cursor, handled: s.handled });
      return 0;
    } finally {
      await lock.release();
    }
  } catch (err) {
    progress?.stop({ keep: false });
    const code = exitCodeOf(err);
    if (err instanceof ConsumerError) log.error(err.message, { code: err.code, exit_status: code });
    else log.error(`unexpected error: ${(err as Error)?.stack ?? String(err)}`, { exit_status: code });
    return code;
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code));
