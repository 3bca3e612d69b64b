/**
 * Replays: a subscription's events re-derived from the source topics for a past interval and appended to its
 * stream again, as new entries marked with the CloudEvent extension `pioneerreplay` = the replay id.
 *
 *   plan (offsets by timestamp per partition: [since, until) -> [from_offset, to_offset)) → read each partition
 *   with a consumer of the replay's own (group pioneer-replay-<id>, nothing committed, deleted afterwards) →
 *   decode, match the subscription (tenant, types, source, compiled filters) and append as the route does
 *   (platform/routing/route-core.ts; deduplicated against the replay's progress, once per replay and source
 *   record) → counts in Redis
 *
 * The interval is by Kafka record timestamp. Order: each partition is read in offset order and appended in
 * that order, so events of one partition key keep their source order. One replay runs per subscription at a
 * time: a lease (platform/jobs/records.ts, where the replay's record and progress are kept too) held and renewed
 * by the instance running it. If that instance dies the lease expires and the replay reads as `failed` (interrupted); what it appended
 * stays.
 */
import type { Consumer, Kafka } from 'kafkajs';
import { HttpError } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { activeReplayLease, expireReplayProgress, readReplay, replayProgressKey, saveReplay } from '../../platform/jobs/records.ts';
import { positionField } from '../../platform/routing/positions.ts';
import type { PioneerRedis } from '../../platform/redis/client.ts';
import { decodeKafkaRecord, headersToStrings } from '../../platform/events/kafka-binding.ts';
import type { SourceDecoding } from '../../platform/events/route-decoding.ts';
import type { InboundEvent } from '../../platform/events/inbound.ts';
import { createRouteCore, type BufferLimits } from '../../platform/routing/route-core.ts';
import { compileSubscription, matcherOf } from '../../platform/store/subscription-index.ts';
import type { Subscription } from '../../platform/store/subscriptions.ts';
import type { Logger } from '../../platform/telemetry/logger.ts';

export interface ReplayPartition {
  topic: string;
  partition: number;
  /** first offset to read (the first record at or after `since`) */
  from_offset: string;
  /** first offset not to read (the first record at or after `until`, or the end of the partition) */
  to_offset: string;
}

export interface ReplayCounts {
  /** source records read within the partitions' offset ranges */
  read: number;
  /** of those, records of the subscription's tenant matching its types, source and filters within the interval */
  matched: number;
  /** events appended to the stream (matched, less any appended before by a retried batch of this replay) */
  appended: number;
  /** records that can never be routed (the route dead-lettered them) */
  malformed: number;
  /** records of the interval the subscription's filters could not judge within the work budget (not appended) */
  budget_exceeded: number;
}

export interface Replay {
  id: string;
  subscription_id: string;
  status: 'running' | 'completed' | 'failed';
  since: string;
  until: string;
  created_at: string;
  completed_at: string | null;
  counts: ReplayCounts;
  partitions: ReplayPartition[];
  error: string | null;
}

export interface ReplayerOptions {
  redis: PioneerRedis;
  kafka: Kafka;
  log: Logger;
  topics: string[];
  decoding: SourceDecoding;
  limits: BufferLimits;
  leaseMs: number;
  recordTtlMs: number;
}

export function createReplayer(opts: ReplayerOptions) {
  const { redis, kafka, log, topics, decoding, leaseMs, recordTtlMs } = opts;
  const core = createRouteCore({ redis, decoding, ...opts.limits });
  const running = new Map<string, Promise<void>>();
  let closing = false;

  async function save(tenantId: string, r: Replay): Promise<void> {
    await saveReplay(redis, { tenantId, subId: r.subscription_id, record: r, ttlMs: recordTtlMs });
  }

  /** The earliest time every source topic still holds (now - the smallest retention.ms), or null (unlimited). */
  async function earliestAvailable(now: number): Promise<number | null> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const res = await admin.describeConfigs({ includeSynonyms: false, resources: topics.map((name) => ({ type: 2, name, configNames: ['retention.ms'] })) });
      let min: number | null = null;
      for (const r of res.resources) {
        const v = Number(r.configEntries.find((e) => e.configName === 'retention.ms')?.configValue ?? '-1');
        if (v >= 0 && (min === null || v < min)) min = v;
      }
      return min === null ? null : now - min;
    } finally {
      await admin.disconnect();
    }
  }

  async function plan(sinceMs: number, untilMs: number, untilGiven: boolean): Promise<ReplayPartition[]> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const out: ReplayPartition[] = [];
      for (const topic of topics) {
        const starts = await admin.fetchTopicOffsetsByTimestamp(topic, sinceMs);
        const ends = untilGiven ? await admin.fetchTopicOffsetsByTimestamp(topic, untilMs) : (await admin.fetchTopicOffsets(topic)).map((p) => ({ partition: p.partition, offset: p.high }));
        for (const s of starts) {
          const e = ends.find((x) => x.partition === s.partition);
          out.push({ topic, partition: s.partition, from_offset: s.offset, to_offset: e?.offset ?? s.offset });
        }
      }
      return out.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
    } finally {
      await admin.disconnect();
    }
  }

  /** Kafka unreachable: 503, retry later (nothing was started). */
  async function kafkaCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof HttpError) throw err;
      log.warn({ err }, 'Kafka unavailable for a replay');
      throw new HttpError(503, 'kafka_unavailable', `the source topics cannot be read now (${(err as Error).message}); retry`, { headers: { 'retry-after': '5' }, cause: err });
    }
  }

  /** Validated `since`/`until` (ms): starts the replay, or throws 400 (retention) / 409 (one running). */
  async function start(sub: Subscription, sinceMs: number, untilMs: number, untilGiven: boolean): Promise<Replay> {
    const tenantId = sub.tenant_id;
    const earliest = await kafkaCall(() => earliestAvailable(Date.now()));
    if (earliest !== null && sinceMs < earliest) {
      const at = new Date(earliest).toISOString();
      const err = HttpError.badRequest('since', `older than the source topics' Kafka retention can serve; the earliest available time is ${at}`, 'since_before_retention');
      err.extra['earliest_available'] = at;
      throw err;
    }
    const id = newId('rpl');
    const active = activeReplayLease(redis, { tenantId, subId: sub.id });
    const took = await active.tryTake({ owner: id, ttlMs: leaseMs });
    if (!took.taken) {
      throw new HttpError(409, 'replay_running', `a replay of this subscription is running (${took.holder}); wait for it to finish`, {
        extra: { replay_id: took.holder },
      });
    }
    let replay: Replay;
    try {
      const partitions = await kafkaCall(() => plan(sinceMs, untilMs, untilGiven));
      replay = {
        id, subscription_id: sub.id, status: 'running', since: new Date(sinceMs).toISOString(), until: new Date(untilMs).toISOString(),
        created_at: new Date().toISOString(), completed_at: null, counts: { read: 0, matched: 0, appended: 0, malformed: 0, budget_exceeded: 0 }, partitions, error: null,
      };
      await save(tenantId, replay);
    } catch (err) {
      await active.release({ owner: id }).catch(() => {});
      throw err;
    }
    const job = run(sub, replay, sinceMs, untilMs).finally(() => running.delete(id));
    running.set(id, job);
    return replay;
  }

  async function run(sub: Subscription, replay: Replay, sinceMs: number, untilMs: number): Promise<void> {
    const tenantId = sub.tenant_id;
    const rlog = log.child({ replay: replay.id, subscription: sub.id, tenant: tenantId });
    const active = activeReplayLease(redis, { tenantId, subId: sub.id });
    let lost = false;
    const renew = setInterval(() => {
      active.renew({ owner: replay.id, ttlMs: leaseMs }).then(
        (renewed) => { if (!renewed) lost = true; },
        (err) => rlog.warn({ err }, 'replay lease renewal failed'),
      );
    }, Math.max(100, Math.floor(leaseMs / 3)));
    renew.unref();
    rlog.info({ since: replay.since, until: replay.until, partitions: replay.partitions.length }, 'replay started');
    try {
      await readPartitions(sub, replay, sinceMs, untilMs, () => lost, rlog);
      if (lost) throw new Error('the replay lease was lost (this instance stalled longer than the lease)');
      replay.status = 'completed';
      rlog.info({ counts: replay.counts }, 'replay completed');
    } catch (err) {
      replay.status = 'failed';
      replay.error = closing ? 'interrupted: the instance running it shut down' : `${(err as Error).message}`;
      rlog.error({ err }, 'replay failed');
    } finally {
      clearInterval(renew);
      replay.completed_at = new Date().toISOString();
      await save(tenantId, replay).catch((err) => rlog.error({ err }, 'cannot record the end of the replay'));
      await active.release({ owner: replay.id }).catch(() => {});
      await expireReplayProgress(redis, { tenantId, subId: sub.id, replayId: replay.id, ttlMs: recordTtlMs }).catch(() => {});
    }
  }

  async function readPartitions(sub: Subscription, replay: Replay, sinceMs: number, untilMs: number, isLost: () => boolean, rlog: Logger): Promise<void> {
    const todo = new Map<string, ReplayPartition>();
    for (const p of replay.partitions) if (BigInt(p.to_offset) > BigInt(p.from_offset)) todo.set(positionField(p.topic, p.partition), p);
    if (todo.size === 0) return;
    // the subscription's types, source and filters exactly as the route's index matches them
    const matcher = matcherOf([compileSubscription(sub)]);
    const tenantId = sub.tenant_id;
    // dedup against the replay's own progress (a retried batch), not the subscription's positions
    const progress = replayProgressKey({ tenantId, subId: sub.id, replayId: replay.id });
    const groupId = `pioneer-replay-${replay.id}`;
    const consumer: Consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false, maxWaitTimeInMs: 200, retry: { retries: 8 } });
    let finish!: () => void;
    let fail!: (err: Error) => void;
    const finished = new Promise<void>((resolve, reject) => ((finish = resolve), (fail = reject)));
    const markDone = (topic: string, partition: number, lastOffset: string | null) => {
      const field = positionField(topic, partition);
      const p = todo.get(field);
      if (!p || lastOffset === null || BigInt(lastOffset) < BigInt(p.to_offset) - 1n) return;
      todo.delete(field);
      consumer.pause([{ topic, partitions: [partition] }]);
      if (todo.size === 0) finish();
    };
    // after each batch (also one of control records only, which never reaches eachBatch)
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => markDone(payload.topic, payload.partition, payload.lastOffset));
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) fail(payload.error);
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [...new Set(replay.partitions.map((p) => p.topic))], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
          if (isLost()) throw new Error('replay lease lost');
          const field = positionField(batch.topic, batch.partition);
          const p = todo.get(field);
          if (!p) return;
          const from = BigInt(p.from_offset);
          const to = BigInt(p.to_offset);
          const records: InboundEvent[] = [];
          for (const m of batch.messages) {
            const offset = BigInt(m.offset);
            if (offset < from) continue;
            if (offset >= to) break;
            replay.counts.read++;
            const ts = Number(m.timestamp);
            if (ts < sinceMs || ts >= untilMs) continue;
            records.push(decodeKafkaRecord(
              { key: m.key, value: m.value, headers: headersToStrings(m.headers), timestamp: m.timestamp },
              { topic: batch.topic, partition: batch.partition, offset: m.offset },
            ));
          }
          const routed = await core.route({ topic: batch.topic, partition: batch.partition, records, matcher, dedupKey: () => progress, replay: replay.id });
          replay.counts.malformed += routed.deadLetters.filter((d) => d.cause === 'malformed').length;
          replay.counts.budget_exceeded += routed.budgetExceeded;
          replay.counts.matched += routed.matched;
          if (routed.deleted.length > 0) {
            fail(new Error('the subscription was deleted'));
            return;
          }
          replay.counts.appended += routed.added;
          const last = batch.messages[batch.messages.length - 1];
          if (last) resolveOffset(last.offset);
          await save(tenantId, replay);
          await heartbeat();
        },
      });
      for (const p of todo.values()) consumer.seek({ topic: p.topic, partition: p.partition, offset: p.from_offset });
      const idle = replay.partitions.filter((p) => !todo.has(positionField(p.topic, p.partition)));
      for (const p of idle) consumer.pause([{ topic: p.topic, partitions: [p.partition] }]);
      const stopped = new Promise<void>((_, reject) => {
        const t = setInterval(() => {
          if (closing) reject(new Error('interrupted: the instance running it shut down'));
          else if (isLost()) reject(new Error('the replay lease was lost'));
          else return;
          clearInterval(t);
        }, 200);
        void finished.finally(() => clearInterval(t)).catch(() => {});
      });
      await Promise.race([finished, stopped]);
    } finally {
      await consumer.disconnect().catch((err) => rlog.warn({ err }, 'replay consumer disconnect failed'));
      const admin = kafka.admin();
      await admin
        .connect()
        .then(() => admin.deleteGroups([groupId]))
        .catch((err) => rlog.debug({ err }, 'could not delete the replay consumer group'))
        .finally(() => admin.disconnect().catch(() => {}));
    }
  }

  /** The replay, or null; a `running` replay whose lease is gone is reported as failed (interrupted). */
  async function get(tenantId: string, subId: string, replayId: string): Promise<Replay | null> {
    const [r, holder] = await Promise.all([readReplay<Replay>(redis, { tenantId, subId, replayId }), activeReplayLease(redis, { tenantId, subId }).holder()]);
    if (!r) return null;
    if (r.status === 'running' && holder !== r.id && !running.has(r.id)) {
      // the lease is released only after the final record is written: read again before calling it interrupted
      const again = (await readReplay<Replay>(redis, { tenantId, subId, replayId })) ?? r;
      if (again.status !== 'running') return again;
      return { ...again, status: 'failed', error: 'interrupted: the instance running it stopped; events it appended stay in the stream' };
    }
    return r;
  }

  return {
    start,
    get,
    async close(): Promise<void> {
      closing = true;
      await Promise.allSettled([...running.values()]);
    },
  };
}

export type Replayer = ReturnType<typeof createReplayer>;
