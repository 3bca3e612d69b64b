/**
 * `pioneer-consumer status`: where a consumer directory stands, read from its checkpoint and files; with the
 * server's URL and API key configured, also the lag, from the server's `GET /v1/stats`.
 */
import { join } from 'node:path';
import { createCheckpointStore } from './checkpoint.ts';
import { cursorTime } from './cursor.ts';
import { FileSink, type SinkFile } from './file-sink.ts';

export const CHECKPOINT_FILE = 'checkpoint.json';

export interface ConsumerStatus {
  dir: string;
  subscription: string | null;
  cursor: string | null;
  /** when the gateway stored the event at the cursor */
  cursorTime: string | null;
  lastEventTime: string | null;
  events: number;
  checkpointUpdatedAt: string | null;
  /** from the server's stats: null when no server is configured */
  lag: Lag | { error: string } | null;
  files: { name: string; bytes: number; modified: string }[];
  totalBytes: number;
}

export interface Lag {
  /** the newest event the server holds for the subscription */
  newestCursor: string | null;
  newestTime: string | null;
  /** how far the position is behind the newest event, by the time the server stored each (0 when caught up) */
  seconds: number;
  /** events the subscription's buffer holds in all (processed or not) */
  buffered: number;
}

/** The subscription's lag from the server's stats; an error message instead when it cannot be had. */
async function fetchLag(server: { url: string; apiKey: string }, subscription: string | null, cursor: string | null): Promise<Lag | { error: string }> {
  if (!subscription) return { error: 'no checkpoint yet: the subscription is not known' };
  try {
    const res = await fetch(new URL('/v1/stats', server.url), { headers: { authorization: `Bearer ${server.apiKey}` }, signal: AbortSignal.timeout(5000) });
    if (!res.ok) return { error: `the server answered ${res.status}` };
    const body = (await res.json()) as { data: { id: string; buffered: number; newest_cursor: string | null; newest_time: string | null }[] };
    const sub = body.data.find((d) => d.id === subscription);
    if (!sub) return { error: `the server does not know subscription ${subscription}` };
    const behind = sub.newest_cursor && cursor ? Math.max(0, cursorTime(sub.newest_cursor) - cursorTime(cursor)) : sub.newest_cursor ? Date.now() - cursorTime(sub.newest_cursor) : 0;
    return { newestCursor: sub.newest_cursor, newestTime: sub.newest_time, seconds: behind / 1000, buffered: sub.buffered };
  } catch (err) {
    return { error: `the server could not be asked: ${(err as Error).message}` };
  }
}

export async function readStatus({
  dir,
  filePrefix = 'events',
  server,
}: {
  dir: string;
  filePrefix?: string;
  /** the gateway to ask for the lag; none: no lag */
  server?: { url: string; apiKey: string };
}): Promise<ConsumerStatus> {
  const cp = await createCheckpointStore(join(dir, CHECKPOINT_FILE)).load();
  const files: SinkFile[] = await new FileSink({ dir, prefix: filePrefix }).files();
  return {
    dir,
    subscription: cp?.subscription ?? null,
    cursor: cp?.cursor ?? null,
    cursorTime: cp?.cursor ? new Date(cursorTime(cp.cursor)).toISOString() : null,
    lastEventTime: cp?.lastEventTime ?? null,
    events: cp?.events ?? 0,
    checkpointUpdatedAt: cp?.updatedAt ?? null,
    lag: server ? await fetchLag(server, cp?.subscription ?? null, cp?.cursor ?? null) : null,
    files: files.map((f) => ({ name: f.name, bytes: f.size, modified: f.modified.toISOString() })),
    totalBytes: files.reduce((n, f) => n + f.size, 0),
  };
}

export function formatStatus(s: ConsumerStatus, now = Date.now()): string {
  const ago = (iso: string | null) => (iso ? `${iso} (${Math.max(0, Math.round((now - Date.parse(iso)) / 1000))} s ago)` : '-');
  const lines = [
    `directory      ${s.dir}`,
    `subscription   ${s.subscription ?? '- (no checkpoint yet)'}`,
    `position       ${s.cursor ?? '- (start of the buffer)'}${s.cursorTime ? `  stored ${ago(s.cursorTime)}` : ''}`,
    `last event     ${ago(s.lastEventTime)}`,
    `events         ${s.events}`,
    `checkpointed   ${ago(s.checkpointUpdatedAt)}`,
    `lag            ${formatLag(s.lag)}`,
    `files          ${s.files.length} (${formatBytes(s.totalBytes)})`,
    ...s.files.map((f) => `  ${f.name}  ${formatBytes(f.bytes)}  ${f.modified}`),
  ];
  return lines.join('\n') + '\n';
}

function formatLag(lag: ConsumerStatus['lag']): string {
  if (lag === null) return '- (set PIONEER_URL and PIONEER_API_KEY to ask the server)';
  if ('error' in lag) return `- (${lag.error})`;
  return `${lag.seconds.toFixed(1)} s behind the newest event (${lag.newestCursor ?? 'none'}); ${lag.buffered} events buffered`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}
