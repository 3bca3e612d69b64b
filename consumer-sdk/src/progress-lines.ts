/**
 * The progress lines the CLI draws on a terminal (terminal-progress.ts): each a render function that reads where
 * its command stands, keeps its own rate, and returns the line to draw ('' for nothing yet).
 *
 *   seed writing    412,000 / 1,000,000 events (41%)  85,300 ev/s  at 1767225600123-4  588,000 left, about 6.9 s
 *   run  12,345 ev/s  1,234,567 events this run  at 1767225600123-4  3m 12s behind
 *   run  waiting for events  1,234,567 events this run  at 1767225600123-4 (stored 3m 12s ago)
 *
 * How far `run` is behind is the age of the event at its position, by the time the gateway stored it (the cursor's
 * first part): while events stream in, that is how far the consumer trails the newest one. Once no event came for
 * `idleMs` the consumer has caught up, and the age only says how long the subscription has been quiet.
 */
import { cursorTime } from './cursor.ts';
import type { ConsumerStats } from './consumer.ts';
import type { SeedProgress } from './seed.ts';
import { formatCount, formatDuration, RateMeter } from './terminal-progress.ts';

export function seedProgressLine(progress: () => SeedProgress | null, now: () => number = Date.now): () => string {
  const meter = new RateMeter();
  meter.sample(0, now());
  let phase: SeedProgress['phase'] = 'verifying';
  let drawnAt = now();
  return () => {
    const p = progress();
    if (!p) return '';
    if (p.phase !== phase) {
      // the phase began since the last line was drawn, and counts from 0 again
      meter.reset();
      meter.sample(0, drawnAt);
      phase = p.phase;
    }
    const rate = meter.sample(p.read, (drawnAt = now()));
    const left = Math.max(0, p.total - p.read);
    const pct = p.total > 0 ? Math.floor((p.read * 100) / p.total) : 100;
    const parts = [
      `seed ${p.phase.padEnd(9)}`,
      `${formatCount(p.read)} / ${formatCount(p.total)} events (${pct}%)`,
      `${formatCount(rate)} ev/s`,
      `at ${p.cursor ?? '-'}`,
      `${formatCount(left)} left${rate > 0 && left > 0 ? `, about ${formatDuration((left / rate) * 1000)}` : ''}`,
    ];
    if (p.skipped > 0) parts.push(`${formatCount(p.skipped)} already held`);
    return parts.join('  ');
  };
}

export function runProgressLine(
  status: () => ConsumerStats,
  { now = Date.now, idleMs = 2000 }: { now?: () => number; idleMs?: number } = {},
): () => string {
  const meter = new RateMeter();
  meter.sample(0, now());
  let handled = 0;
  let changedAt = -Infinity;
  return () => {
    const s = status();
    const t = now();
    if (s.handled !== handled) {
      changedAt = t;
      handled = s.handled;
    }
    const rate = meter.sample(s.handled, t);
    const age = s.cursor ? t - cursorTime(s.cursor) : null;
    const events = `${formatCount(s.handled)} events this run`;
    const reconnects = s.reconnects > 0 ? `  ${formatCount(s.reconnects)} reconnect${s.reconnects === 1 ? '' : 's'}` : '';
    if (t - changedAt < idleMs)
      return `run  ${formatCount(rate)} ev/s  ${events}  at ${s.cursor}  ${formatDuration(age ?? 0)} behind${reconnects}`;
    const at = s.cursor ? `at ${s.cursor} (stored ${formatDuration(age ?? 0)} ago)` : 'at the start of the buffer';
    return `run  waiting for events  ${events}  ${at}${reconnects}`;
  };
}
