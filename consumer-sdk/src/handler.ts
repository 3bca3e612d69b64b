/**
 * What customers implement: a handler receives batches of events (what arrived together, capped) and resolves
 * once they are safely handed over. A rejection stops progress: the same batch is retried with backoff, never
 * skipped, and the checkpoint moves only after the handler resolved.
 */

/** A structured CloudEvent 1.0 as the gateway sends it (with Pioneer's `tenantid` and `partitionkey`). */
export interface CloudEvent {
  specversion: string;
  id: string;
  source: string;
  type: string;
  subject?: string;
  time?: string;
  datacontenttype?: string;
  dataschema?: string;
  data?: unknown;
  data_base64?: string;
  tenantid?: string;
  partitionkey?: string;
  [extension: string]: unknown;
}

/** One event of a subscription stream with its cursor (resume after it with Last-Event-ID). */
export interface Delivery {
  cursor: string;
  event: CloudEvent;
  /** the event's JSON exactly as the gateway sent it (forward it without encoding it again) */
  json?: string;
}

export interface HandlerContext {
  subscription: string;
  /** aborted when the consumer must stop at once (a second signal); a graceful stop lets the batch finish */
  signal: AbortSignal;
  /** 1 for the first try of this batch, then 2, 3, … while it is retried */
  attempt: number;
}

/** An entry a handler already holds beyond the checkpoint (found when it recovers after a crash). */
export interface HeldEntry {
  cursor: string;
  source: string;
  id: string;
  time?: string | undefined;
}

export interface Handler {
  handle(batch: Delivery[], ctx: HandlerContext): Promise<void>;
  /**
   * Optional, for handlers that can tell what they already hold (FileSink): called once at start with the
   * checkpoint's cursor; returns the entries written after it (ascending, at most `limit`, the newest ones)
   * so the consumer advances its checkpoint to them instead of handing them over again.
   */
  recover?(after: string | null, limit: number): Promise<HeldEntry[]>;
  close?(): Promise<void>;
}

export type HandlerFunction = (batch: Delivery[], ctx: HandlerContext) => Promise<void>;

export function toHandler(h: Handler | HandlerFunction): Handler {
  return typeof h === 'function' ? { handle: h } : h;
}
