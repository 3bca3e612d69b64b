/**
 * Routing, once for the route function (live source batches) and for replays (a past interval re-derived for
 * one subscription): decode source records into events or dead letters, match each event against a
 * SubscriptionMatcher (the route's index of every subscription, or a replay's one), and append the matches,
 * each once, to the subscriptions' streams (append-events-n.lua). Appends go in one call per tenant (all its
 * keys share the tenant's hash tag, one Redis Cluster slot), which carries each event once however many of the
 * tenant's subscriptions get it; the calls of a source batch go in one pipeline (one per master on a Cluster),
 * never in one transaction. It returns counts: the callers keep metrics and logs.
 *
 * A subscription's transform may look reference records up (`$lookup`): its lookups are bound to the
 * subscription's tenant (the event's), through `lookups` (platform/reference/lookups.ts: a short in-process cache
 * in front of Redis). A lookup Redis cannot answer rejects the batch, which is retried whole; it never sets the
 * event aside.
 */
import { MalformedRecordError } from '../errors.ts';
import type { CloudEventJson } from '../events/cloudevent.ts';
import type { InboundEvent } from '../events/inbound.ts';
import { sourceEventOf, type SourceDecoding } from '../events/route-decoding.ts';
import { oneLine, withMember } from '../events/event-text.ts';
import { BUDGET_EXCEEDED_REASON } from '../filters/subscription-filter.ts';
import { TransformError, type CompiledTransform } from '../transforms/transform.ts';
import { createReferenceLookups, type ReferenceLookups, type ReferenceReader } from '../reference/lookups.ts';
import { appendKeys, appendToStreams, waitForReplicas, type PioneerRedis, type StreamBatch, type StreamEvent } from '../redis/client.ts';
import type { FlowCounter } from '../insights/flow.ts';
import { positionField } from '../redis/keys.ts';
import type { IndexedSubscription, SubscriptionMatcher } from '../store/subscription-index.ts';
import type { Subscription } from '../store/subscriptions.ts';

/** Why a record is set aside: it cannot be decoded, its tenant does not exist, or one subscription's filters ran out of budget on it. */
export type DeadLetterCause = 'malformed' | 'unknownTenant' | 'budgetExceeded';

export interface DeadLetter {
  item: InboundEvent;
  cause: DeadLetterCause;
  reason: string;
  /** the subscriptions the record is set aside for (budgetExceeded; at most NAMED_SUBSCRIPTIONS, comma-separated); absent when it is for all */
  subscription?: string;
}

/** How many subscription ids a budget dead letter names; the reason gives how many there were. */
const NAMED_SUBSCRIPTIONS = 20;

function budgetDeadLetter(item: InboundEvent, ids: string[]): DeadLetter {
  const named = ids.slice(0, NAMED_SUBSCRIPTIONS).join(',');
  const who = ids.length === 1 ? `subscription ${named}` : `${ids.length} subscriptions (${named}${ids.length > NAMED_SUBSCRIPTIONS ? ', …' : ''})`;
  return { item, cause: 'budgetExceeded', reason: `${who}: ${BUDGET_EXCEEDED_REASON}`, subscription: named };
}

export interface DecodedEvent {
  item: InboundEvent;
  event: CloudEventJson;
}

/** Source records to routable events (platform/events/route-decoding.ts); those that never will be are dead letters. */
function decodeRecords(records: Iterable<InboundEvent>, topic: string, decoding: SourceDecoding): { events: DecodedEvent[]; deadLetters: DeadLetter[] } {
  const events: DecodedEvent[] = [];
  const deadLetters: DeadLetter[] = [];
  for (const item of records) {
    try {
      events.push({ item, event: sourceEventOf(item, topic, decoding) });
    } catch (err) {
      if (!(err instanceof MalformedRecordError)) throw err;
      deadLetters.push({ item, cause: 'malformed', reason: err.message });
    }
  }
  return { events, deadLetters };
}

export interface MatchOptions {
  /** the hash a subscription's appends are deduplicated against: its own positions unless given (a replay: its progress) */
  dedupKey?: (sub: Subscription) => string;
  /** the replay whose events these are: each is marked with REPLAY_EXTENSION = this id (storedText) */
  replay?: string;
}

/** The CloudEvent extension marking a re-delivered event: its value is the replay id. */
export const REPLAY_EXTENSION = 'pioneerreplay';

/**
 * The text stored for an event, from the event and the text it came as (the record's own JSON when decoding left
 * it unchanged, so its numbers keep every digit: docs/ingest.md); a replay's events carry its mark, added to that
 * text (an event that carries a mark already, a replay of a replay's output, is marked anew through its parsed
 * form). The route, replays and the cold tier store and serve the same text for the same record.
 */
export function storedText(event: CloudEventJson, text: string, replay: string | undefined): string {
  if (!replay) return text;
  return event[REPLAY_EXTENSION] === undefined ? withMember(oneLine(text), REPLAY_EXTENSION, replay) : JSON.stringify({ ...event, [REPLAY_EXTENSION]: replay });
}

/** One subscription's share of a source batch. */
interface SubscriptionBatch {
  subscriptionId: string;
  batch: StreamBatch;
}

/** The text stored for an event of a subscription with a transform, or why it is set aside. */
async function transformed(
  event: CloudEventJson, transform: CompiledTransform, replay: string | undefined, references?: ReferenceReader,
): Promise<{ json: string } | { reason: string }> {
  try {
    const json = await transform.apply(event, references);
    return { json: replay ? storedText(event, json, replay) : json };
  } catch (err) {
    if (!(err instanceof TransformError)) throw err;
    return { reason: `transform ${err.message}` };
  }
}

export interface Matches {
  /** per tenant, its subscriptions' batches, each in source order */
  byTenant: Map<string, Map<string, SubscriptionBatch>>;
  /** (event, subscription) pairs matched */
  matched: number;
  /** (event, subscription) pairs whose filters ran out of their work budget (each one a dead letter) */
  budgetExceeded: number;
  /** (event, subscription) pairs whose transform failed: set aside in the subscription's dead letters */
  transformFailed: number;
  /** records of tenants that do not exist, and records set aside for a subscription whose filters ran out of budget */
  deadLetters: DeadLetter[];
}

/**
 * Matches decoded events, in source order, and gathers each subscription's batch. `byOffset`: the events carry
 * their source offsets, which deduplicate them (their "<source> <id>" is not sent then).
 */
async function matchEvents(events: readonly DecodedEvent[], matcher: SubscriptionMatcher, lookups: ReferenceLookups, byOffset: boolean, opts: MatchOptions = {}): Promise<Matches> {
  const out: Matches = { byTenant: new Map(), matched: 0, budgetExceeded: 0, transformFailed: 0, deadLetters: [] };
  const hour = Math.floor(Date.now() / 3600_000);
  // a record for a tenant that does not exist can never be delivered: it is dead-lettered, not dropped
  const unknown = matcher.unknownTenants ? await matcher.unknownTenants(new Set(events.map((d) => d.event.tenantid!))) : new Set<string>();
  const exceeded: IndexedSubscription[] = [];
  for (const { item, event } of events) {
    const tenantId = event.tenantid!;
    if (unknown.has(tenantId)) {
      out.deadLetters.push({ item, cause: 'unknownTenant', reason: `tenantid: no tenant '${tenantId.slice(0, 200)}'` });
      continue;
    }
    const matches = matcher.match(tenantId, event, exceeded);
    if (exceeded.length > 0) {
      // filters that could not judge the event within their budget: set the record aside for those
      // subscriptions, with the reason, rather than drop it for them silently; one dead letter per record, however
      // many of the tenant's subscriptions it names
      out.deadLetters.push(budgetDeadLetter(item, exceeded.map(({ sub }) => sub.id)));
      out.budgetExceeded += exceeded.length;
      exceeded.length = 0;
    }
    if (matches.length === 0) continue;
    out.matched += matches.length;
    // the record's own bytes when they are the stored text: nothing to encode again
    const json = item.bytes !== undefined && !opts.replay ? item.bytes : storedText(event, item.json ?? JSON.stringify(event), opts.replay);
    // one object for every subscription that gets the event as it is: a call sends it once for all of them
    const stored: StreamEvent = { offset: item.position?.offset ?? '', dedupId: byOffset ? '' : `${event.source} ${event.id}`, type: event.type, json };
    for (const { sub, spec, transform } of matches) {
      let subs = out.byTenant.get(sub.tenant_id);
      if (!subs) out.byTenant.set(sub.tenant_id, (subs = new Map()));
      let entry = subs.get(sub.id);
      if (!entry) {
        const keys = opts.dedupKey ? appendKeys(sub.tenant_id, sub.id, hour, opts.dedupKey(sub)) : appendKeys(sub.tenant_id, sub.id, hour);
        subs.set(sub.id, (entry = { subscriptionId: sub.id, batch: { keys, spec, replay: opts.replay ?? '', events: [] } }));
      }
      if (!transform) entry.batch.events.push(stored);
      else {
        // lookups bound to the subscription's tenant, which is the event's: no other tenant's records
        const shaped = await transformed(event, transform, opts.replay, transform.looksUp ? lookups.readerFor(sub.tenant_id) : undefined);
        if ('json' in shaped) entry.batch.events.push({ ...stored, json: shaped.json });
        else {
          // set aside in the subscription's dead letters with the reason, never delivered untransformed
          entry.batch.events.push({ ...stored, setAside: shaped.reason });
          out.transformFailed++;
        }
      }
    }
  }
  return out;
}

/** One event `deriveEvent` gives: what route() appended for the record. */
export interface DerivedEvent {
  offset: string;
  type: string;
  /** the stored text, or the record's bytes when they are that text (as route() appends them) */
  json: string | Buffer;
}

/** A source record that one tenant's subscription matches: the record, its event, and the match. */
export interface MatchedRecord {
  item: InboundEvent;
  event: CloudEventJson;
  match: IndexedSubscription;
}

/**
 * Decodes one source record and matches it against `matcher` for `tenantId` as route() does: the match of the
 * (first) subscription it is appended to, or null when route() would append nothing for that tenant (it does not
 * decode, it is another tenant's, it does not match, or the filters could not judge it within the budget).
 * Synchronous: a reader holding one record at a time (a snapshot) decides with it whether to keep the record.
 */
export function matchRecord(item: InboundEvent, input: { topic: string; decoding: SourceDecoding; matcher: SubscriptionMatcher; tenantId: string }): MatchedRecord | null {
  const event = tenantEventOf(item, input);
  if (event === null) return null;
  const [match] = input.matcher.match(input.tenantId, event);
  return match ? { item, event, match } : null;
}

/** The record's event when it decodes and is `tenantId`'s (matchRecord's first half), else null. */
function tenantEventOf(item: InboundEvent, input: { topic: string; decoding: SourceDecoding; tenantId: string }): CloudEventJson | null {
  let event: CloudEventJson;
  try {
    event = sourceEventOf(item, input.topic, input.decoding);
  } catch (err) {
    if (err instanceof MalformedRecordError) return null;
    throw err;
  }
  return event.tenantid === input.tenantId ? event : null;
}

/** What recordPrefilter reads of a source record: its value and its headers as the Kafka client hands them over. */
export interface RecordBytes {
  value: Buffer | null;
  headers?: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
}

const BACKSLASH = 0x5c;

/**
 * A necessary condition of matchRecord for one tenant's subscription, told from a record's bytes without decoding
 * it: false only for a record from which matchRecord (so route()) can derive no event of `tenantId` of one of
 * `types` (any type when `types` is empty), whatever the subscription's source and filters say. Readers that derive
 * one tenant's events again from the source topics (the cold tier, snapshots) pass over most of a busy topic's
 * records with it, and decode and match the rest with matchRecord: what they derive is what route() derived.
 * It follows decodeKafkaRecord (platform/events/kafka-binding.ts) and sourceEventOf:
 *
 * - a topic with a mapping derives the tenant from the mapping: true;
 * - a header name that is not lower case: true (decoding lower-cases names, and which of two spellings wins is
 *   left to it);
 * - a binary-mode record (a `ce_specversion` header): its `ce_tenantid` header is the tenant and its `ce_type`
 *   header one of the types, each header's last value as text, as decoding takes them;
 * - any other record is a structured CloudEvent or none (which matches nothing without a mapping): its value holds
 *   the bytes of the tenant id and of one of the types, as the JSON strings `tenantid` and `type` hold them
 *   written literally; a value with a backslash (an escape may spell them otherwise) is true;
 * - a tenant id or type with U+FFFD (what decoding makes of invalid UTF-8) is always true.
 *
 * Changing how records decode (kafka-binding.ts, route-decoding.ts) or match (types) changes this with it.
 */
export function recordPrefilter(tenantId: string, types: readonly string[], decoding: SourceDecoding): (topic: string, record: RecordBytes) => boolean {
  if (tenantId.includes('\uFFFD') || types.some((t) => t.includes('\uFFFD'))) return () => true;
  const tenantBytes = Buffer.from(tenantId);
  const typeBytes = types.map((t) => Buffer.from(t));
  const typeSet = new Set(types);
  const lastText = (v: Buffer | string | (Buffer | string)[] | undefined): string | undefined => {
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    return last === undefined ? undefined : typeof last === 'string' ? last : last.toString('utf8');
  };
  return (topic, record) => {
    if (decoding.mappings[topic]) return true;
    const headers = record.headers;
    if (headers) {
      for (const name in headers) if (name.toLowerCase() !== name) return true;
      if (lastText(headers['ce_specversion']) !== undefined) {
        if (lastText(headers['ce_tenantid']) !== tenantId) return false;
        if (typeSet.size === 0) return true;
        const type = lastText(headers['ce_type']);
        return type !== undefined && typeSet.has(type);
      }
    }
    const v = record.value;
    if (v === null) return false;
    if (v.includes(BACKSLASH)) return true;
    if (!v.includes(tenantBytes)) return false;
    if (typeBytes.length === 0) return true;
    for (const t of typeBytes) if (v.includes(t)) return true;
    return false;
  };
}

/**
 * The text route() appends for a matched record: the stored text, or what the subscription's transform makes of
 * the event; null when the transform fails on it (route() sets such an event aside, never appends it). Its lookups
 * read the tenant's reference records through `references`, as they are now.
 */
export async function appendedText({ item, event, match }: MatchedRecord, replay?: string, references?: ReferenceReader): Promise<string | null> {
  if (!match.transform) return storedText(event, item.json ?? JSON.stringify(event), replay);
  const shaped = await transformed(event, match.transform, replay, references);
  return 'json' in shaped ? shaped.json : null;
}

/**
 * The event one subscription gets from a source record (of one partition, given in offset order), decoded, matched
 * and stored as route() does, without appending it: the cold tier derives runs of a subscription's entries again
 * with it. A record that does not decode, an event its filters could not judge within the budget and an event its
 * transform fails on give null, as in route() (which dead-letters or sets them aside). Synchronous unless the
 * subscription has a transform: a cold read derives thousands of records a step, most without one. A transform's
 * lookups read the tenant's reference records as they are now (`references`), not as they were when route()
 * appended the event.
 */
export function deriveEvent(
  item: InboundEvent,
  input: { topic: string; decoding: SourceDecoding; matcher: SubscriptionMatcher; tenantId: string; replay?: string; references?: ReferenceReader },
): DerivedEvent | null | Promise<DerivedEvent | null> {
  // matchRecord's steps, without its object: a cold read derives thousands of records a step
  const event = tenantEventOf(item, input);
  if (event === null) return null;
  const match = input.matcher.match(input.tenantId, event)[0];
  if (match === undefined) return null;
  const offset = item.position?.offset ?? '';
  if (!match.transform) {
    const json = item.bytes !== undefined && !input.replay ? item.bytes : storedText(event, item.json ?? JSON.stringify(event), input.replay);
    return { offset, type: event.type, json };
  }
  // as route() stores it; an event its transform fails on again was set aside then, not appended
  return appendedText({ item, event, match }, input.replay, input.references).then((json) => (json === null ? null : { offset, type: event.type, json }));
}

export interface AppendTotals {
  added: number;
  /** events skipped as appended before (re-deliveries) */
  skipped: number;
  /** subscriptions deleted meanwhile: nothing was appended to them */
  deleted: string[];
  /** Cluster masters whose replicas did not confirm the appends in time (the appends stand; a failover now may lose them) */
  unreplicated: number;
}

/** How long the route waits for a replica of each master it appended to before it moves its position on. */
export const REPLICA_WAIT_MS = 1000;

/**
 * Appends the matches of one source batch: the calls of every tenant in one appendToStreams (one pipeline, one
 * per master on a Cluster; never a transaction). `field` is the batch's position field, "" when positions are unknown.
 * A failure rejects: the batch is retried whole, and what was appended already is skipped then.
 */
async function appendMatches(redis: PioneerRedis, byTenant: Matches['byTenant'], target: { field: string } & BufferLimits, flow?: FlowCounter): Promise<AppendTotals> {
  const now = Date.now();
  const to = { field: target.field, maxLen: target.maxLen, hotFromMs: now - target.hotMs, resumableFromMs: now - target.resumableMs };
  const tenantIds = [...byTenant.keys()];
  const tenants = [...byTenant.values()].map((subs) => [...subs.values()]);
  const outcomes = await appendToStreams(redis, to, tenants.map((subs) => subs.map((s) => s.batch)));
  const totals: AppendTotals = { added: 0, skipped: 0, deleted: [], unreplicated: 0 };
  const written: string[] = [];
  outcomes.forEach((results, t) => {
    let added = 0;
    results.forEach((r, i) => {
      if (r.deleted) totals.deleted.push(tenants[t]![i]!.subscriptionId);
      added += r.added;
      totals.skipped += r.skipped;
      if (flow && r.added > 0) countRouted(flow, tenantIds[t]!, tenants[t]![i]!.batch, r.skipped);
    });
    totals.added += added;
    if (added > 0) written.push(tenants[t]![0]!.batch.keys[1]);
  });
  // a replica of each master written to has the appends before the route records its position (on a Cluster);
  // a batch that only skipped what was appended before wrote nothing to wait for
  totals.unreplicated = await waitForReplicas(redis, written, REPLICA_WAIT_MS);
  return totals;
}

/**
 * Counts the types of what a subscription's batch appended: re-deliveries skipped are the batch's first events
 * (offsets at or before the subscription's position), events set aside by the transform are not appended.
 */
function countRouted(flow: FlowCounter, tenantId: string, batch: StreamBatch, skipped: number): void {
  const ev = batch.events;
  const types: string[] = [];
  for (let j = skipped; j < ev.length; j++) if (ev[j]!.setAside === undefined) types.push(ev[j]!.type);
  flow.addEach(tenantId, types);
}

/** How much of a subscription's events Redis holds, and for how long its cursors resume (docs/operations.md). */
export interface BufferLimits {
  /** a stream's size cap (entries) */
  maxLen: number;
  /** how long a stream keeps its entries in Redis (the hot window) */
  hotMs: number;
  /** how long the marks of appended runs are kept: how far back a cursor resumes, from the source topics */
  resumableMs: number;
}

export interface RouteCoreOptions extends BufferLimits {
  redis: PioneerRedis;
  decoding: SourceDecoding;
  /** where transforms look reference records up; default: a cache of REFERENCE_CACHE_MS over `redis` */
  lookups?: ReferenceLookups;
  /** counts what is appended per tenant, type and minute (the route's; replays are not counted) */
  flow?: FlowCounter;
}

export interface RouteInput extends MatchOptions {
  /** the source topic and partition the records come from, in offset order */
  topic: string;
  partition: number;
  records: readonly InboundEvent[];
  matcher: SubscriptionMatcher;
}

export interface RouteOutcome extends AppendTotals {
  /** records set aside, in source order: malformed ones first, then unknown tenants and exceeded budgets */
  deadLetters: DeadLetter[];
  matched: number;
  budgetExceeded: number;
  /** (event, subscription) pairs set aside in the subscription's dead letters: its transform failed */
  transformFailed: number;
}

export interface RouteCore {
  /** Decodes, matches and appends one source batch. */
  route(input: RouteInput): Promise<RouteOutcome>;
}

export function createRouteCore(opts: RouteCoreOptions): RouteCore {
  const { redis, decoding, lookups = createReferenceLookups({ redis }), flow, ...limits } = opts;
  return {
    async route({ topic, partition, records, matcher, ...matchOpts }) {
      const decoded = decodeRecords(records, topic, decoding);
      // one position field per batch: every record of a batch comes from the same partition, or none has one
      const field = records[0]?.position ? positionField(topic, partition) : '';
      const matches = await matchEvents(decoded.events, matcher, lookups, field !== '', matchOpts);
      const totals = matches.byTenant.size > 0 ? await appendMatches(redis, matches.byTenant, { field, ...limits }, flow) : { added: 0, skipped: 0, deleted: [], unreplicated: 0 };
      return { ...totals, deadLetters: [...decoded.deadLetters, ...matches.deadLetters], matched: matches.matched, budgetExceeded: matches.budgetExceeded, transformFailed: matches.transformFailed };
    },
  };
}
