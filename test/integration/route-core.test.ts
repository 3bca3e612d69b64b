/**
 * The routing core (platform/routing/route-core.ts) against the real Redis: the route's index and a replay's
 * one-subscription matcher pick the same events (types, source, filters, budget), appends are once per source
 * offset, a deleted subscription is skipped, and each tenant is appended by its own call, never in a pipeline;
 * the calls of a batch leave together.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Command } from 'ioredis';
import { createRedis, type PioneerRedis } from '../../platform/redis/client.ts';
import { exportKeys, keys } from '../../platform/redis/keys.ts';
import { createRouteCore, type RouteCore } from '../../platform/routing/route-core.ts';
import { compileSubscription, createSubscriptionIndex, matcherOf, type SubscriptionIndex } from '../../platform/store/subscription-index.ts';
import type { Subscription, SubscriptionStore } from '../../platform/store/subscriptions.ts';
import type { InboundEvent } from '../../platform/events/inbound.ts';
import { createLogger } from '../../platform/telemetry/logger.ts';
import { cloudEvent, deps, randomName } from '../support/helpers.ts';

const topic = randomName('src');
const REPLAY = 'pioneerreplay';
let redis: PioneerRedis;
let core: RouteCore;
const created: string[] = [];

before(() => {
  redis = createRedis(deps().redisUrl, { name: 'test-route-core' });
  core = createRouteCore({ redis, decoding: { maxRecordBytes: 1024 * 1024, mappings: {} }, maxLen: 1000, hotMs: 3600_000, resumableMs: 7 * 86_400_000 });
});
after(async () => {
  if (created.length > 0) await redis.del(...created);
  redis.disconnect();
});

function subscription(tenantId: string, fields: Partial<Subscription>): Subscription {
  return { id: randomName('sub'), tenant_id: tenantId, filters: [], created_at: '', updated_at: '', ...fields };
}

/** The subscriptions' records in Redis (appends need them) and the route's index over them. */
async function indexOf(tenants: string[], subs: Subscription[]): Promise<SubscriptionIndex> {
  for (const s of subs) {
    await redis.set(keys.subscription(s.tenant_id, s.id), JSON.stringify(s));
    created.push(keys.subscription(s.tenant_id, s.id), keys.stream(s.tenant_id, s.id), keys.positions(s.tenant_id, s.id));
  }
  const store = {
    reloadIfChanged: async () => ({ mark: { version: '1', at: Date.now() }, tenants, subs }),
    existingTenants: async () => [],
  } as unknown as SubscriptionStore;
  const index = createSubscriptionIndex({ store, log: createLogger({ level: 'silent' }) });
  await index.refresh(true);
  return index;
}

/** Records of one partition from offset `from` on, as the Kafka binding decodes a structured record. */
function records(events: Record<string, unknown>[], from = 0): InboundEvent[] {
  return events.map((event, i) => {
    const json = JSON.stringify(event);
    const offset = String(from + i);
    return {
      event: event as InboundEvent['event'],
      json,
      record: { key: null, value: Buffer.from(json), headers: {} },
      position: { topic, partition: 0, offset },
    };
  });
}

async function streamOf(s: Subscription): Promise<Record<string, unknown>[]> {
  return (await redis.xrange(keys.stream(s.tenant_id, s.id), '-', '+')).map(([, f]) => JSON.parse(f[3]!));
}

test('the route and a replay match by types, source and filters alike; re-appending the same offsets adds nothing', async () => {
  const t = randomName('ten');
  const other = randomName('ten');
  const subs = [
    subscription(t, { types: ['payment.sent'] }),
    subscription(t, { types: ['payment.sent'], source: '/bank/a' }),
    subscription(t, { filters: [{ sql: 'amount > 100' }] }),
    subscription(t, { types: ['balance.snapshot', 'payment.sent'], filters: [{ exact: { subject: 'acct-1' } }, { not: { prefix: { source: '/bank/b' } } }] }),
    // ran out of budget on the long subject: dead-lettered for it, by both. Every type, so that it is judged last:
    // the tenant's subscriptions share one budget per event, and those judged after it would be set aside too
    subscription(t, { filters: [{ sql: "subject LIKE '%a_a_a_a_a_a_a_a_a_a_a_a_b%'" }] }),
  ];
  const index = await indexOf([t], subs); // `other` is no tenant
  const events = [
    cloudEvent(t, 'payment.sent', { n: 0 }, { source: '/bank/a', amount: 500, subject: 'acct-1' }),
    cloudEvent(t, 'payment.sent', { n: 1 }, { source: '/bank/b', amount: 5, subject: 'acct-1' }),
    cloudEvent(t, 'balance.snapshot', { n: 2 }, { source: '/bank/a', amount: 500, subject: 'acct-1' }),
    cloudEvent(t, 'balance.snapshot', { n: 3 }, { source: '/bank/a', amount: 5, subject: 'acct-2' }),
    cloudEvent(other, 'payment.sent', { n: 4 }, { source: '/bank/a', amount: 500, subject: 'acct-1' }),
    cloudEvent(t, 'payment.sent', { n: 5 }, { source: '/bank/b', amount: 500, subject: 'a'.repeat(300_000) }),
    { specversion: '1.0', id: 'x', source: '/bank/a', type: 'payment.sent' }, // no tenantid: malformed
  ];
  const batch = records(events, 10);

  const routed = await core.route({ topic, partition: 0, records: batch, matcher: index });
  assert.deepEqual(routed.deadLetters.map((d) => [d.cause, d.item.position?.offset, d.subscription]), [
    ['malformed', '16', undefined],
    ['unknownTenant', '14', undefined],
    ['budgetExceeded', '15', subs[4]!.id],
  ]);
  assert.equal(routed.budgetExceeded, 1);
  const live = await Promise.all(subs.map(streamOf));
  const ns = (list: Record<string, unknown>[]) => list.map((e) => (e['data'] as { n: number }).n);
  assert.deepEqual(live.map(ns), [[0, 1, 5], [0], [0, 2, 5], [0, 2], []]);
  assert.equal(routed.added, 9);
  assert.equal(routed.matched, 9);
  assert.equal(routed.skipped, 0);
  assert.deepEqual(routed.deleted, []);
  assert.equal(live[0]![0]!['id'], events[0]!['id'], 'stored as the source record carried it');

  // the same offsets again (a re-delivery): nothing appended, every match skipped
  const again = await core.route({ topic, partition: 0, records: batch, matcher: index });
  assert.deepEqual([again.added, again.skipped], [0, 9]);

  // each subscription replayed on its own matcher: the same events, marked, deduplicated against the replay's progress
  for (const [i, sub] of subs.entries()) {
    const replayId = randomName('rpl');
    const progress = exportKeys.replayProgress(t, sub.id, replayId);
    created.push(progress);
    const replay = {
      topic, partition: 0, records: batch, matcher: matcherOf([compileSubscription(sub)]),
      dedupKey: () => progress, replay: replayId,
    };
    const first = await core.route(replay);
    assert.equal(first.added, live[i]!.length, `subscription ${i}`);
    assert.equal(first.matched, live[i]!.length);
    assert.deepEqual(first.deadLetters.map((d) => d.cause), i === 4 ? ['malformed', 'budgetExceeded'] : ['malformed']);
    const second = await core.route(replay);
    assert.deepEqual([second.added, second.skipped], [0, live[i]!.length], 'a retried replay batch is not appended twice');
    const stream = await streamOf(sub);
    const replayed = stream.filter((e) => e[REPLAY] === replayId);
    assert.deepEqual(ns(replayed), ns(live[i]!), `subscription ${i}: the replay picked what the route picked`);
    assert.equal(stream.length, live[i]!.length * 2);
  }
});

test('a subscription deleted meanwhile is skipped; the others of its tenant are appended', async () => {
  const t = randomName('ten');
  const [kept, gone] = [subscription(t, {}), subscription(t, {})];
  const index = await indexOf([t], [kept, gone]);
  await redis.del(keys.subscription(t, gone.id));
  const routed = await core.route({ topic, partition: 0, records: records([cloudEvent(t, 'demo', {}), cloudEvent(t, 'demo', {})]), matcher: index });
  assert.deepEqual(routed.deleted, [gone.id]);
  assert.deepEqual([routed.added, routed.skipped], [2, 0]);
  assert.equal((await streamOf(kept)).length, 2);
  assert.equal(await redis.exists(keys.stream(t, gone.id)), 0);
});

test('two tenants in one batch are appended by one call each, on its own hash tag, sent together, never in a pipeline or transaction', async () => {
  const [a, b] = [randomName('ten'), randomName('ten')];
  const subs = [subscription(a, {}), subscription(a, { types: ['demo'] }), subscription(b, {})];
  const index = await indexOf([a, b], subs);
  const calls: { keys: string[]; corked: boolean }[] = [];
  const spy = createRedis(deps().redisUrl, { name: 'test-route-core-spy' });
  await spy.ping();
  const sendCommand = spy.sendCommand.bind(spy);
  spy.sendCommand = ((command: Command, stream?: Parameters<typeof sendCommand>[1]) => {
    if (command.name === 'evalsha') {
      const args = command.args as string[];
      calls.push({ keys: args.slice(2, 2 + Number(args[1])), corked: spy.stream.writableCorked > 0 });
    }
    return sendCommand(command, stream);
  }) as typeof spy.sendCommand;
  spy.pipeline = () => assert.fail('a pipeline across tenants');
  spy.multi = () => assert.fail('a transaction across tenants');
  try {
    const spied = createRouteCore({ redis: spy, decoding: { maxRecordBytes: 1024 * 1024, mappings: {} }, maxLen: 1000, hotMs: 3600_000, resumableMs: 7 * 86_400_000 });
    const batch = records([cloudEvent(a, 'demo', {}), cloudEvent(b, 'demo', {}), cloudEvent(a, 'other', {}), cloudEvent(b, 'demo', {})]);
    const routed = await spied.route({ topic, partition: 0, records: batch, matcher: index });
    assert.deepEqual([routed.added, routed.skipped], [5, 0]);
    assert.equal(calls.length, 2);
    assert.ok(calls.every((c) => c.corked), 'the calls leave in one write');
    const tags = calls.map((c) => new Set(c.keys.map((k) => /^\{t:[^}]+\}/.exec(k)![0])));
    assert.deepEqual(tags.map((s) => [...s]).sort(), [[`{t:${a}}`], [`{t:${b}}`]].sort());
    assert.deepEqual((await Promise.all(subs.map(streamOf))).map((s) => s.length), [2, 1, 2]);
  } finally {
    spy.disconnect();
  }
});
