/**
 * The CLI's configuration, from (later wins) defaults, a JSON file (`--config`), the environment and flags.
 * The only module of the SDK that reads `process.env`. A bad value stops the CLI with one message naming
 * where it came from (file key, variable or flag).
 *
 *   key (JSON file)        variable                        flag
 *   url                    PIONEER_URL                     --url
 *   apiKey                 PIONEER_API_KEY                 (none: keep keys out of the process list)
 *   subscription           PIONEER_SUBSCRIPTION            --subscription
 *   dir                    PIONEER_DIR                     --dir
 *   startAfter             PIONEER_START_AFTER             --start-after
 *   heartbeatMs            PIONEER_HEARTBEAT_MS            --heartbeat-ms
 *   maxBatchEvents         PIONEER_MAX_BATCH_EVENTS        --max-batch-events
 *   maxBatchWaitMs         PIONEER_MAX_BATCH_WAIT_MS       --max-batch-wait-ms
 *   maxFileBytes           PIONEER_MAX_FILE_BYTES          --max-file-bytes
 *   filePrefix             PIONEER_FILE_PREFIX             --file-prefix
 *   recentIdsWindow        PIONEER_RECENT_IDS_WINDOW       --recent-ids-window
 *   progressIntervalMs     PIONEER_PROGRESS_INTERVAL_MS    --progress-interval-ms
 *   retryInitialMs         PIONEER_RETRY_INITIAL_MS        --retry-initial-ms
 *   retryMaxMs             PIONEER_RETRY_MAX_MS            --retry-max-ms
 *   logLevel               PIONEER_LOG_LEVEL               --log-level
 */
import { readFileSync } from 'node:fs';
import { ConsumerError } from './errors.ts';
import { isCursor } from './cursor.ts';
import { isLogLevel, type LogLevel } from './logger.ts';

export interface ConsumerConfig {
  url: string;
  apiKey: string;
  subscription: string;
  dir: string;
  startAfter: string | null;
  heartbeatMs: number;
  maxBatchEvents: number;
  maxBatchWaitMs: number;
  maxFileBytes: number;
  filePrefix: string;
  recentIdsWindow: number;
  progressIntervalMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
  logLevel: LogLevel;
}

type Kind = 'string' | 'url' | 'cursor' | 'level' | { min: number; max: number };

interface Setting {
  key: keyof ConsumerConfig;
  env: string;
  flag: string | null;
  kind: Kind;
  fallback: ConsumerConfig[keyof ConsumerConfig] | undefined;
  /** needed by `run` */
  required?: boolean;
}

const int = (min: number, max: number) => ({ min, max });

export const SETTINGS: readonly Setting[] = [
  { key: 'url', env: 'PIONEER_URL', flag: '--url', kind: 'url', fallback: undefined, required: true },
  { key: 'apiKey', env: 'PIONEER_API_KEY', flag: null, kind: 'string', fallback: undefined, required: true },
  { key: 'subscription', env: 'PIONEER_SUBSCRIPTION', flag: '--subscription', kind: 'string', fallback: undefined, required: true },
  { key: 'dir', env: 'PIONEER_DIR', flag: '--dir', kind: 'string', fallback: undefined, required: true },
  { key: 'startAfter', env: 'PIONEER_START_AFTER', flag: '--start-after', kind: 'cursor', fallback: null },
  { key: 'heartbeatMs', env: 'PIONEER_HEARTBEAT_MS', flag: '--heartbeat-ms', kind: int(100, 600_000), fallback: 15_000 },
  { key: 'maxBatchEvents', env: 'PIONEER_MAX_BATCH_EVENTS', flag: '--max-batch-events', kind: int(1, 100_000), fallback: 500 },
  { key: 'maxBatchWaitMs', env: 'PIONEER_MAX_BATCH_WAIT_MS', flag: '--max-batch-wait-ms', kind: int(0, 60_000), fallback: 0 },
  { key: 'maxFileBytes', env: 'PIONEER_MAX_FILE_BYTES', flag: '--max-file-bytes', kind: int(1024, Number.MAX_SAFE_INTEGER), fallback: 256 * 1024 * 1024 },
  { key: 'filePrefix', env: 'PIONEER_FILE_PREFIX', flag: '--file-prefix', kind: 'string', fallback: 'events' },
  { key: 'recentIdsWindow', env: 'PIONEER_RECENT_IDS_WINDOW', flag: '--recent-ids-window', kind: int(0, 1_000_000), fallback: 10_000 },
  { key: 'progressIntervalMs', env: 'PIONEER_PROGRESS_INTERVAL_MS', flag: '--progress-interval-ms', kind: int(0, 3_600_000), fallback: 10_000 },
  { key: 'retryInitialMs', env: 'PIONEER_RETRY_INITIAL_MS', flag: '--retry-initial-ms', kind: int(1, 600_000), fallback: 250 },
  { key: 'retryMaxMs', env: 'PIONEER_RETRY_MAX_MS', flag: '--retry-max-ms', kind: int(1, 3_600_000), fallback: 30_000 },
  { key: 'logLevel', env: 'PIONEER_LOG_LEVEL', flag: '--log-level', kind: 'level', fallback: 'info' },
];

export interface ParsedArgs {
  command: string | undefined;
  flags: Map<string, string>;
}

/** `<command> [--flag value | --flag=value] …`; an unknown flag is a configuration error. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const known = new Set(['--config', '--json', '--help', '--file', '--manifest', ...SETTINGS.flatMap((s) => (s.flag ? [s.flag] : []))]);
  const flags = new Map<string, string>();
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      if (command !== undefined) throw new ConsumerError('bad_config', `unexpected argument "${a}"`);
      command = a;
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq < 0 ? a : a.slice(0, eq);
    if (!known.has(name)) throw new ConsumerError('bad_config', `unknown flag ${name} (see pioneer-consumer --help)`);
    if (name === '--json' || name === '--help') {
      flags.set(name, 'true');
      continue;
    }
    const value = eq < 0 ? argv[++i] : a.slice(eq + 1);
    if (value === undefined) throw new ConsumerError('bad_config', `${name} needs a value`);
    flags.set(name, value);
  }
  return { command, flags };
}

/**
 * Builds the configuration for `command` ('run' needs url, key, subscription and dir; 'status' only dir).
 * `env` and `readFile` are parameters so tests can pass their own.
 */
export function loadConfig({
  command = 'run',
  flags = new Map<string, string>(),
  env = process.env as Record<string, string | undefined>,
  readFile = (path: string) => readFileSync(path, 'utf8'),
}: { command?: string; flags?: Map<string, string>; env?: Record<string, string | undefined>; readFile?: (path: string) => string } = {}): ConsumerConfig {
  let file: Record<string, unknown> = {};
  const configPath = flags.get('--config') ?? env['PIONEER_CONFIG'];
  if (configPath) {
    let text: string;
    try {
      text = readFile(configPath);
    } catch (err) {
      throw new ConsumerError('bad_config', `cannot read the config file ${configPath}: ${(err as Error).message}`);
    }
    try {
      const parsed = JSON.parse(text) as unknown;
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
      file = parsed as Record<string, unknown>;
    } catch (err) {
      throw new ConsumerError('bad_config', `the config file ${configPath} is not a JSON object: ${(err as Error).message}`);
    }
    const knownKeys = new Set<string>(SETTINGS.map((s) => s.key));
    for (const k of Object.keys(file)) if (!knownKeys.has(k)) throw new ConsumerError('bad_config', `${configPath}: unknown key "${k}"`);
  }

  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    let raw: unknown;
    let from: string;
    if (s.flag && flags.has(s.flag)) [raw, from] = [flags.get(s.flag), s.flag];
    else if (env[s.env] !== undefined && env[s.env] !== '') [raw, from] = [env[s.env], s.env];
    else if (file[s.key] !== undefined && file[s.key] !== null) [raw, from] = [file[s.key], `${configPath}: ${s.key}`];
    else {
      const needed = s.required && (command === 'run' || s.key === 'dir');
      if (needed && s.fallback === undefined) {
        throw new ConsumerError(
          'bad_config',
          `${s.env} is not set: give ${s.flag ? `${s.flag}, ` : ''}the variable ${s.env} or "${s.key}" in the --config file`,
        );
      }
      out[s.key] = s.fallback ?? null;
      continue;
    }
    out[s.key] = convert(s, raw, from);
  }
  const cfg = out as unknown as ConsumerConfig;
  if (cfg.retryMaxMs < cfg.retryInitialMs) throw new ConsumerError('bad_config', `retryMaxMs (${cfg.retryMaxMs}) must not be below retryInitialMs (${cfg.retryInitialMs})`);
  return cfg;
}

function convert(s: Setting, raw: unknown, from: string): unknown {
  const fail = (what: string) => new ConsumerError('bad_config', `${from}: ${what}, got ${JSON.stringify(raw)}`);
  if (typeof s.kind === 'object') {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (!Number.isSafeInteger(n) || n < s.kind.min || n > s.kind.max) throw fail(`must be an integer from ${s.kind.min} to ${s.kind.max}`);
    return n;
  }
  if (typeof raw !== 'string' || raw.trim() === '') throw fail('must be a non-empty string');
  const v = raw.trim();
  switch (s.kind) {
    case 'url':
      if (!/^https?:\/\/[^/\s]+/.test(v)) throw fail('must be an http(s) URL such as https://pioneer.example.com');
      return v;
    case 'cursor':
      if (!isCursor(v)) throw fail('must be a cursor like 1767225600000-0');
      return v;
    case 'level':
      if (!isLogLevel(v)) throw fail('must be one of debug, info, warn, error, silent');
      return v;
    default:
      return v;
  }
}
