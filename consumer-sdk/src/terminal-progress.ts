/**
 * A progress line for a person at a terminal: one line on stderr, redrawn in place (carriage return, erase the
 * line) by a timer every `intervalMs` (four times a second by default), for `seed` and for `run` while it catches
 * up. The JSON log lines share stderr: `log()` erases the progress line, writes the log line and draws the
 * progress again below it, so neither tears the other.
 *
 * Mode `auto` draws only when the stream is a terminal, so files, pipes and log collectors never get it;
 * `always` draws on any stream (a recording, a test), `never` not at all (PIONEER_PROGRESS in the CLI).
 *
 * Hand-written rather than a spinner library: the SDK has no runtime dependencies.
 */
import { ConsumerError } from './errors.ts';

export type ProgressMode = 'auto' | 'always' | 'never';

const MODES: readonly string[] = ['auto', 'always', 'never'];

/** The mode named by `value` (unset or empty: auto); a bad value is a configuration error naming `from`. */
export function parseProgressMode(value: string | undefined, from = 'PIONEER_PROGRESS'): ProgressMode {
  if (value === undefined || value.trim() === '') return 'auto';
  const v = value.trim().toLowerCase();
  if (!MODES.includes(v)) throw new ConsumerError('bad_config', `${from}: must be auto, always or never, got ${JSON.stringify(value)}`);
  return v as ProgressMode;
}

/** What the line is drawn on: process.stderr, or anything with `write` in tests. */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface TerminalProgress {
  /** false when nothing is drawn (mode never, or auto on a stream that is not a terminal) */
  readonly enabled: boolean;
  /** writes `line` (a whole log line, newline included) to the stream without tearing the progress line */
  log(line: string): void;
  /** stops the timer; with `keep`, draws the line's final state once more and ends it with a newline */
  stop(opts?: { keep?: boolean }): void;
}

/** Carriage return, then erase the whole line (ECMA-48 EL 2). */
export const ERASE_LINE = '\r\x1b[2K';

/**
 * Starts drawing `render()` (an empty string draws nothing) on `stream`, at most every `intervalMs`.
 */
export function startTerminalProgress({
  stream,
  mode,
  render,
  intervalMs = 250,
}: {
  stream: ProgressStream;
  mode: ProgressMode;
  render: () => string;
  intervalMs?: number;
}): TerminalProgress {
  const enabled = mode === 'always' || (mode === 'auto' && stream.isTTY === true);
  if (!enabled) return { enabled, log: (line) => void stream.write(line), stop: () => {} };
  // a line wider than the terminal wraps, and the carriage return would then redraw only its last part
  const fit = (line: string) => (stream.columns && line.length >= stream.columns ? line.slice(0, stream.columns - 1) : line);
  let shown = '';
  let stopped = false;
  const draw = () => {
    const line = fit(render());
    if (line === shown) return;
    stream.write(ERASE_LINE + line);
    shown = line;
  };
  const timer = setInterval(draw, intervalMs);
  timer.unref();
  return {
    enabled,
    log(line) {
      stream.write(shown && !stopped ? ERASE_LINE + line + shown : line);
    },
    stop({ keep = true } = {}) {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      const line = keep ? fit(render()) : '';
      if (line) stream.write(ERASE_LINE + line + '\n');
      else if (shown) stream.write(ERASE_LINE);
      shown = '';
    },
  };
}

/** Events per second over the last `windowMs`, from a running count sampled whenever a line is drawn. */
export class RateMeter {
  private samples: { at: number; count: number }[] = [];

  constructor(private readonly windowMs = 3000) {}

  /** Records `count` at `now` and returns the rate over the window (0 until two samples are apart). */
  sample(count: number, now = Date.now()): number {
    this.samples.push({ at: now, count });
    while (this.samples.length > 2 && now - this.samples[1]!.at >= this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const ms = now - first.at;
    return ms > 0 ? ((count - first.count) * 1000) / ms : 0;
  }

  reset(): void {
    this.samples = [];
  }
}

/** 1234567 → "1,234,567" */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** A duration for people: "850 ms", "12.3 s", "3m 12s", "2h 05m". */
export function formatDuration(ms: number): string {
  const m = Math.max(0, ms);
  if (m < 1000) return `${Math.round(m)} ms`;
  if (m < 60_000) return `${(m / 1000).toFixed(1)} s`;
  const s = Math.floor(m / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}
