/**
 * Every Redis key the platform uses is built here.
 *
 * Platform keys (not owned by one tenant):
 *   pioneer:apikey:<sha256>          hash   an API key by the hash of its secret: id, tenant, role, created
 *   pioneer:keyid:<key id>           string the sha256 of that key, so it can be revoked by id
 *   pioneer:tenants                  hash   tenant id -> tenant JSON
 *   pioneer:subscriptions:version    string counter bumped after every subscription change (instances poll it)
 *   pioneer:subscriptions:changes    stream the last ~10,000 changes: n (the counter after the bump), t (the tenant)
 *   pioneer:route:pos                hash   "<topic>/<partition>" -> next source offset the route must process
 *
 * Tenant keys carry the hash tag {t:<tenant id>} so that a tenant's keys share one Redis Cluster slot:
 *   {t:T}:subs                       set    the tenant's subscription ids
 *   {t:T}:sub:<sub>                  string the subscription JSON (platform/store/subscriptions.ts)
 *   {t:T}:stream:<sub>               stream the subscription's events (see platform/redis/streams.ts)
 *   {t:T}:pos:<sub>                  hash   source position -> last offset appended (idempotent append), and the
 *                                           trimmed and cold markers
 *   {t:T}:marks:<sub>                stream runs of appended entries and where they came from (the cold tier)
 *   {t:T}:specs:<sub>                hash   digest -> matching spec JSON, every spec the subscription had
 *   {t:T}:seen:<sub>:<hour>          set    source/id of events appended without a known position (expires)
 *   {t:T}:sse                        zset   the tenant's SSE slots: lease id -> expiry ms (platform/redis/sse-slots.ts)
 *
 * deliver (webhook push; platform/webhooks/endpoints.ts describes them):
 *   {t:T}:ep:<sub>                   hash   the subscription's webhook endpoint: id, secrets, state, cursor, head attempt, next_at
 *   {t:T}:ep:<sub>:lease             string the deliver instance working the endpoint (expires unless renewed)
 *   {t:T}:attempts:<sub>             list   recent delivery attempts (JSON, newest first, capped)
 *   {t:T}:dead:<sub>                 stream dead-lettered events, in the order they died (and events the route set
 *                                           aside because the subscription's transform failed on them)
 *   {t:T}:redeliver:<sub>            list   dead letters queued by a replay, delivered ahead of the live stream
 */

export const PLATFORM = 'pioneer';

export const keys = {
  apiKey: (sha256: string) => `${PLATFORM}:apikey:${sha256}`,
  apiKeyId: (keyId: string) => `${PLATFORM}:keyid:${keyId}`,
  tenants: () => `${PLATFORM}:tenants`,
  subscriptionsVersion: () => `${PLATFORM}:subscriptions:version`,
  subscriptionChanges: () => `${PLATFORM}:subscriptions:changes`,
  routePositions: () => `${PLATFORM}:route:pos`,

  tenantTag: (tenantId: string) => `{t:${tenantId}}`,
  tenantSubs: (tenantId: string) => `{t:${tenantId}}:subs`,
  subscription: (tenantId: string, subId: string) => `{t:${tenantId}}:sub:${subId}`,
  stream: (tenantId: string, subId: string) => `{t:${tenantId}}:stream:${subId}`,
  positions: (tenantId: string, subId: string) => `{t:${tenantId}}:pos:${subId}`,
  marks: (tenantId: string, subId: string) => `{t:${tenantId}}:marks:${subId}`,
  specs: (tenantId: string, subId: string) => `{t:${tenantId}}:specs:${subId}`,
  seen: (tenantId: string, subId: string, hour: number) => `{t:${tenantId}}:seen:${subId}:${hour}`,
  sseLeases: (tenantId: string) => `{t:${tenantId}}:sse`,

  // deliver
  endpoint: (tenantId: string, subId: string) => `{t:${tenantId}}:ep:${subId}`,
  endpointLease: (tenantId: string, subId: string) => `{t:${tenantId}}:ep:${subId}:lease`,
  deliveryAttempts: (tenantId: string, subId: string) => `{t:${tenantId}}:attempts:${subId}`,
  deadLetters: (tenantId: string, subId: string) => `{t:${tenantId}}:dead:${subId}`,
  redeliver: (tenantId: string, subId: string) => `{t:${tenantId}}:redeliver:${subId}`,
};

/** The key of one source partition's position in the route's and the subscriptions' position hashes. */
export function positionField(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

/*
 * ingest and the schema registry (owned by platform/ingest/rate-limit.ts, platform/ingest/dedup.ts and
 * platform/schemas/registry.ts):
 *   {t:T}:ingest:rate                hash   the tenant's ingest token bucket: tokens, at (ms) (take-tokens-1.lua)
 *   {t:T}:ingest:evt:<event id>      hash   source -> ingest record JSON, or "pending:<deadline ms>" while being
 *                                           produced (reserve-event-1.lua); expires after the dedup window
 *   {t:T}:schemas                    hash   CloudEvent type -> latest JSON Schema version number
 *   {t:T}:schema:<type>              hash   version number -> { type, version, schema, created_at } JSON
 */
export const ingestKeys = {
  rate: (tenantId: string) => `{t:${tenantId}}:ingest:rate`,
  event: (tenantId: string, eventId: string) => `{t:${tenantId}}:ingest:evt:${eventId}`,
  schemaLatest: (tenantId: string) => `{t:${tenantId}}:schemas`,
  schemaVersions: (tenantId: string, type: string) => `{t:${tenantId}}:schema:${type}`,
};

/*
 * exports and replays (owned by platform/jobs/records.ts; a replay's progress is written by the route core):
 *   {t:T}:export:<exp>               string the export's record JSON: status, interval, manifest when done, error
 *                                           (expires after PIONEER_EXPORT_TTL_HOURS; the file lives on disk)
 *   {t:T}:export:<exp>:lease         string held while an instance writes the export (expires unless renewed)
 *   {t:T}:replay:<sub>:<rpl>         string the replay's record JSON: status, interval, counts, error
 *                                           (expires after PIONEER_EXPORT_TTL_HOURS)
 *   {t:T}:replay:<sub>:<rpl>:pos     hash   "<topic>/<partition>" -> last source offset the replay appended
 *                                           (append-events-n.lua: a retried batch appends once)
 *   {t:T}:replay:<sub>:active        string the id of the replay running on the subscription: one at a time; a
 *                                           lease that expires unless the instance running it renews it
 *   {t:T}:snapshot:<sub>:active      string the id of the snapshot export running on the subscription: one at a
 *                                           time; a lease that expires unless the instance writing it renews it
 */
export const exportKeys = {
  export: (tenantId: string, exportId: string) => `{t:${tenantId}}:export:${exportId}`,
  exportLease: (tenantId: string, exportId: string) => `{t:${tenantId}}:export:${exportId}:lease`,
  replay: (tenantId: string, subId: string, replayId: string) => `{t:${tenantId}}:replay:${subId}:${replayId}`,
  replayProgress: (tenantId: string, subId: string, replayId: string) => `{t:${tenantId}}:replay:${subId}:${replayId}:pos`,
  activeReplay: (tenantId: string, subId: string) => `{t:${tenantId}}:replay:${subId}:active`,
  activeSnapshot: (tenantId: string, subId: string) => `{t:${tenantId}}:snapshot:${subId}:active`,
};

/*
 * insights (owned by platform/insights/store.ts, which describes them in full; apply-insights-1.lua writes them):
 *   {t:T}:ins:pos                    hash   "<topic>/<partition>" -> next source offset applied for the tenant, and
 *                                           "<topic>/<partition>:wm" -> the tenant's watermark on it (ms)
 *   {t:T}:ins:campaigns              set    campaign ids the tenant's events named (404 for any other)
 *   {t:T}:ins:b:<metric>:<res>:<n>:<campaign>   hash         bucket n of resolution h|d: its event count, and its
 *                                                             distinct customers exactly while few enough
 *   {t:T}:ins:g:<metric>:m:<hour>:<campaign>    hash         the minute buckets of an hour: "<minute>" its events,
 *                                                             "<minute>|<customer>" its customers while few enough,
 *                                                             "<minute>|" once too many (minute hashes b:...:m: of
 *                                                             earlier versions are read, not written)
 *   {t:T}:ins:u:<metric>:<res>:<n>:<campaign>   HyperLogLog  the same customers once too many for the hash
 *   {t:T}:ins:x:, {t:T}:ins:n:...               set, string  buckets written before the hash (read, not written)
 *   {t:T}:ins:clk:<customer>         zset   the customer's recent clicks, "<ms>|<campaign>" by event time
 *   {t:T}:ins:crt:<customer>         zset   the customer's recent cart.add events by event time
 *   {t:T}:ins:att:<customer>         zset   "<campaign>|<cart>" pairs already attributed, by cart time
 *   {t:T}:ins:flow:<minute>          hash   event type -> events of the tenant in that event-time minute
 * flow counts of the later stages (owned by platform/insights/flow.ts; route, deliver and gateway write them):
 *   {t:T}:ins:routed:<minute>        hash   event type -> entries the route appended to the tenant's streams
 *   {t:T}:ins:delivered:<minute>     hash   event type -> entries delivered (webhooks answered 2xx, SSE, pages)
 */
export const insightsKeys = {
  positions: (tenantId: string) => `{t:${tenantId}}:ins:pos`,
  campaigns: (tenantId: string) => `{t:${tenantId}}:ins:campaigns`,
  /** every other insights key of the tenant starts with this (the script builds them from it: one slot) */
  prefix: (tenantId: string) => `{t:${tenantId}}:ins:`,
  minutes: (tenantId: string, metric: string, hour: number, campaignId: string) => `{t:${tenantId}}:ins:g:${metric}:m:${hour}:${campaignId}`,
  distinct: (tenantId: string, metric: string, res: string, n: number, campaignId: string) => `{t:${tenantId}}:ins:u:${metric}:${res}:${n}:${campaignId}`,
  events: (tenantId: string, metric: string, res: string, n: number, campaignId: string) => `{t:${tenantId}}:ins:n:${metric}:${res}:${n}:${campaignId}`,
  flow: (tenantId: string, minute: number) => `{t:${tenantId}}:ins:flow:${minute}`,
  stageFlow: (tenantId: string, stage: 'routed' | 'delivered', minute: number) => `{t:${tenantId}}:ins:${stage}:${minute}`,
};

/*
 * reference data (owned by platform/reference/store.ts, which describes it in full; the reference function writes
 * it with put-references-1.lua, transforms' $lookup read it):
 *   {t:T}:ref:<table>                hash   lookup key -> the data of the latest record with that key (JSON)
 */
export const referenceKeys = {
  table: (tenantId: string, table: string) => `{t:${tenantId}}:ref:${table}`,
};
