/**
 * Faults for the cluster pass: a Redis master or a Kafka partition leader killed with SIGKILL, waited for until the
 * cluster moved its work elsewhere, and started again (scripts/redis.sh and scripts/kafka.sh on the clusters'
 * directories, which the cluster pass of scripts/test.sh names).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { ROOT, kafkaClient, waitFor } from '../support/helpers.ts';
import { keys } from '../../platform/redis/keys.ts';

const run = promisify(execFile);
export const REDIS_DIR = process.env['PIONEER_TEST_REDIS_CLUSTER_DIR'];
export const KAFKA_DIR = process.env['PIONEER_TEST_KAFKA_CLUSTER_DIR'];
export const CLUSTER_PASS = Boolean(REDIS_DIR && KAFKA_DIR && process.env['PIONEER_TEST_REDIS_CLUSTER_NODES'] && process.env['PIONEER_TEST_KAFKA_BROKERS']);

/** bash scripts/<kind>.sh ARGS..., without blocking the event loop (the platform runs in this process) */
export async function script(kind: 'redis' | 'kafka', ...args: string[]): Promise<string> {
  const { stdout } = await run('bash', [join(ROOT, 'scripts', `${kind}.sh`), ...args], { cwd: ROOT, timeout: 150000 });
  return stdout.trim();
}

export interface Fault {
  /** kills the node; resolves when it is dead */
  kill(): Promise<void>;
  /** starts it again and waits until the cluster is whole; safe to call when it runs */
  restore(): Promise<void>;
  /** when to restore after the kill (ms), or a condition to wait for first */
  restoreAfter(): Promise<void>;
  describe(): string;
}

/** [host:port of the master, slot ranges] per master, as the node at `port` sees the cluster */
async function clusterMasters(ports: string[]): Promise<{ addr: string; failed: boolean; slots: [number, number][] }[]> {
  for (const port of ports) {
    const r = new Redis(Number(port), '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1000, retryStrategy: () => null });
    try {
      await r.connect();
      const text = (await r.cluster('NODES')) as string;
      return text
        .trim()
        .split('\n')
        .map((line) => line.split(' '))
        .filter((f) => f[2]!.includes('master'))
        .map((f) => ({
          addr: f[1]!.split('@')[0]!,
          failed: /fail/.test(f[2]!),
          slots: f.slice(8).filter((s) => /^\d/.test(s)).map((s) => {
            const [a, b] = s.split('-');
            return [Number(a), Number(b ?? a)] as [number, number];
          }),
        }));
    } catch {
      // that node is down: ask the next
    } finally {
      r.disconnect();
    }
  }
  throw new Error('no cluster node answered');
}

async function keySlot(port: string, key: string): Promise<number> {
  const r = new Redis(Number(port), '127.0.0.1', { maxRetriesPerRequest: 1 });
  try {
    return Number(await r.cluster('KEYSLOT', key));
  } finally {
    r.disconnect();
  }
}

const masterOf = (masters: Awaited<ReturnType<typeof clusterMasters>>, slot: number) =>
  masters.find((m) => !m.failed && m.slots.some(([a, b]) => slot >= a && slot <= b))?.addr;

export function redisMasterFault(tenantId: string) {
  const ports = process.env['PIONEER_TEST_REDIS_CLUSTER_NODES']!.split(',').map((s) => s.split(':')[1]!);
  return async (): Promise<Fault> => {
    const slot = await keySlot(ports[0]!, keys.tenantTag(tenantId));
    const master = masterOf(await clusterMasters(ports), slot);
    assert.ok(master, `a master serves slot ${slot}`);
    const port = master.split(':')[1]!;
    let killed = false;
    let promotedAfter = 0;
    return {
      describe: () => `the Redis master ${master} of slot ${slot} (the tenant's${promotedAfter ? `; its replica took over after ${(promotedAfter / 1000).toFixed(1)} s` : ''})`,
      async kill() {
        await script('redis', 'kill9-node', REDIS_DIR!, port);
        killed = true;
      },
      async restoreAfter() {
        // the replica takes over (cluster-node-timeout 3 s): then the old master comes back as its replica
        const from = Date.now();
        const others = ports.filter((x) => x !== port);
        await waitFor(async () => {
          const now = masterOf(await clusterMasters(others), slot);
          return now !== undefined && now !== master;
        }, { timeout: 60000, interval: 100, message: `a new master for slot ${slot}` });
        promotedAfter = Date.now() - from;
      },
      async restore() {
        if (!killed) return;
        await script('redis', 'start-node', REDIS_DIR!, port);
        killed = false;
      },
    };
  };
}

export function kafkaLeaderFault(topic: string) {
  return async (): Promise<Fault> => {
    const admin = kafkaClient().admin();
    await admin.connect();
    let broker: number;
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      const led = new Map<number, number>();
      for (const part of topics[0]!.partitions) led.set(part.leader, (led.get(part.leader) ?? 0) + 1);
      [[broker]] = [...led].sort((a, b) => b[1] - a[1]) as [[number, number]];
      assert.ok(broker >= 1 && broker <= 3, `broker ${broker} leads the most partitions of ${topic} (${JSON.stringify([...led])})`);
    } finally {
      await admin.disconnect();
    }
    let killed = false;
    let movedAfter = 0;
    return {
      describe: () => `Kafka broker ${broker} (leader of most partitions of ${topic}${movedAfter ? `; they had new leaders after ${(movedAfter / 1000).toFixed(1)} s` : ''})`,
      async kill() {
        await script('kafka', 'kill9-broker', KAFKA_DIR!, String(broker));
        killed = true;
      },
      async restoreAfter() {
        // the dead broker is fenced after broker.session.timeout.ms (6 s) and its partitions get new leaders
        const from = Date.now();
        await waitFor(async () => {
          const a = kafkaClient().admin();
          await a.connect();
          try {
            const { topics } = await a.fetchTopicMetadata({ topics: [topic] });
            return topics[0]!.partitions.every((part) => part.leader !== broker && part.leader >= 0);
          } finally {
            await a.disconnect();
          }
        }, { timeout: 60000, interval: 250, message: `new leaders for the partitions broker ${broker} led` });
        movedAfter = Date.now() - from;
      },
      async restore() {
        if (!killed) return;
        await script('kafka', 'start-broker', KAFKA_DIR!, String(broker));
        killed = false;
      },
    };
  };
}

