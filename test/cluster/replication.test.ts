/**
 * Replication is asynchronous on a Redis Cluster: a master that dies before its replica has a write loses it in
 * the failover. The route therefore waits (WAIT) until a replica of every master it appended to has the appends
 * before it moves its position on, so a failover cannot lose appends the route already counts as done. Shown
 * here with the routing core against the cluster pass's Redis Cluster: right after a batch is routed its events
 * are on the replica; with the replica stopped (SIGSTOP) the batch waits about REPLICA_WAIT_MS and says the
 * appends are not replicated, and once the replica runs again it has them.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { createRedis, type PioneerRedis } from '../../platform/redis/client.ts';
import { keys } from '../../platform/redis/keys.ts';
import { createRouteCore, REPLICA_WAIT_MS, type RouteCore } from '../../platform/routing/route-core.ts';
import { compileSubscription, matcherOf } from '../../platform/store/subscription-index.ts';
import type { Subscription } from '../../platform/store/subscriptions.ts';
import type { InboundEvent } from '../../platform/events/inbound.ts';
import { cloudEvent, deps, randomName } from '../support/helpers.ts';

const CLUSTER_DIR = process.env['PIONEER_TEST_REDIS_CLUSTER_DIR'];

if (deps().cluster && CLUSTER_DIR) {
  let redis: PioneerRedis;
  let core: RouteCore;
  let replica: PioneerRedis;
  let replicaPid = 0;
  const topic = randomName('src');
  const tenant = randomName('ten');
  const sub: Subscription = { id: randomName('sub'), tenant_id: tenant, filters: [], types: ['ledger.entry'], created_at: '', updated_at: '' };

  before(async () => {
    redis = createRedis(deps().redis, { name: 'test-replication' });
    core = createRouteCore({ redis, decoding: { maxRecordBytes: 1024 * 1024, mappings: {} }, maxLen: 1000, hotMs: 3600_000, resumableMs: 7 * 86_400_000 });
    await redis.set(keys.subscription(tenant, sub.id), JSON.stringify(sub));
    // the replica of the master serving the tenant's slot, and its process
    const nodes = (redis as unknown as Cluster).slots[calculateSlot(keys.stream(tenant, sub.id))]!;
    assert.ok(nodes.length >= 2, `the tenant's slot has a replica: ${nodes.join(', ')}`);
    const replicaAt = nodes[1]!;
    replica = createRedis(`redis://${replicaAt}`, { name: 'test-replica' });
    await replica.call('READONLY');
    const port = replicaAt.split(':')[1]!;
    for (const dir of readdirSync(CLUSTER_DIR)) {
      const own = join(CLUSTER_DIR, dir);
      try {
        if (readFileSync(join(own, 'port'), 'utf8').trim() === port) replicaPid = Number(readFileSync(join(own, 'redis.pid'), 'utf8'));
      } catch {
        // not a node's directory
      }
    }
    assert.ok(replicaPid > 0, `the replica's process (port ${port})`);
  });
  after(async () => {
    if (replicaPid) process.kill(replicaPid, 'SIGCONT');
    await redis?.del(keys.subscription(tenant, sub.id), keys.stream(tenant, sub.id), keys.positions(tenant, sub.id));
    redis?.disconnect();
    replica?.disconnect();
  });

  const batch = (from: number, n: number): InboundEvent[] =>
    Array.from({ length: n }, (_, i) => {
      const event = cloudEvent(tenant, 'ledger.entry', { seq: from + i }, { partitionkey: 'acct-1' });
      const json = JSON.stringify(event);
      return { event: event as InboundEvent['event'], json, record: { key: null, value: Buffer.from(json), headers: {} }, position: { offset: String(from + i) } } as InboundEvent;
    });
  const route = (records: InboundEvent[]) => core.route({ topic, partition: 0, records, matcher: matcherOf([compileSubscription(sub)]) });

  test("a routed batch is on the master's replica before the route moves on; a replica that does not answer makes the batch say so", { timeout: 60_000 }, async () => {
    const first = await route(batch(0, 5));
    assert.equal(first.added, 5);
    assert.equal(first.unreplicated, 0);
    // read at once from the replica: the appends are there already
    assert.equal(await replica.xlen(keys.stream(tenant, sub.id)), 5);

    process.kill(replicaPid, 'SIGSTOP');
    let second: Awaited<ReturnType<typeof route>>;
    const started = Date.now();
    try {
      second = await route(batch(5, 5));
    } finally {
      process.kill(replicaPid, 'SIGCONT');
    }
    const tookMs = Date.now() - started;
    assert.equal(second.added, 5, 'the appends stand on the master');
    assert.equal(second.unreplicated, 1, 'the batch says its master had no replica confirm it');
    assert.ok(tookMs >= REPLICA_WAIT_MS * 0.9, `the batch waited for the replica (${tookMs} ms)`);
    // the replica catches up once it runs again
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await replica.xlen(keys.stream(tenant, sub.id))) < 10) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await replica.xlen(keys.stream(tenant, sub.id)), 10);
  });
}
