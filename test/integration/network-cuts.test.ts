/**
 * Network cuts between the functions and their dependencies, made with a TCP proxy (test/support/tcp-proxy.ts)
 * in front of Redis or Kafka: a `cut` resets every connection and every new one, a `blackhole` keeps them open
 * but lets nothing through and answers nothing. Each fault lasts CUT_MS, then the proxy heals.
 *
 * Through both, a steady flow of source events (a sequence number per partition key) goes to a subscription read
 * over SSE by a reader that reconnects with Last-Event-ID, and (Redis) to a subscription pushed to a webhook
 * receiver. Per key, nothing may be lost, duplicated or reordered, at the reader and at the receiver: the attempt
 * in flight when a fault begins is recorded once Redis is back, not sent again. While a fault lasts, each function's /readyz answers 503 within
 * READY_ANSWER_MS naming the dependency it waits for; after healing it answers 200 again within READY_AGAIN_MS.
 * How long the streams and deliveries stalled is reported as diagnostics.
 *
 * Redis is the file's own redis-server (deliver works every endpoint of its Redis, so no other file's endpoints
 * are in its way). Kafka is a broker of the file's own that advertises the proxy's port
 * (scripts/kafka.sh, KAFKA_ADVERTISED_PORT): a client bootstrapping at the proxy is told the broker is there, so
 * all its connections go through it, while the test produces on the broker's direct listener.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Partitioners, type Producer } from 'kafkajs';
import {
  ROOT, api, cloudEvent, createTenant, createTopic, deps, freePort, kafkaClient, killProcess, platformEnv, randomName, readSse, routeEnv, sleep,
  spawnFunctions, structuredMessage, waitFor,
} from '../support/helpers.ts';
import { deliverEnv, ownRedis, startReceiver, subscribe, type Receiver } from './deliver-receiver.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { REDIS_READY_TIMEOUT_MS } from '../../platform/redis/client.ts';
import { KAFKA_READY_TIMEOUT_MS } from '../../platform/kafka/client.ts';

/** how long each fault lasts */
const CUT_MS = 5000;
/** /readyz answers within this during a fault (the dependencies' probes are bounded) ... */
const READY_ANSWER_MS = Math.max(REDIS_READY_TIMEOUT_MS, KAFKA_READY_TIMEOUT_MS);
/** ... plus what a loaded test machine and the HTTP round trip may add */
const MARGIN_MS = 1000;
/** after healing, /readyz answers 200 within this */
const READY_AGAIN_MS = 15000;
/** partition keys of the flow, one event each per tick */
const KEYS = ['k0', 'k1', 'k2', 'k3'];
const TICK_MS = 150;

const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch(() => {});
});

/**
 * The file's Kafka broker, started at once so that it boots (~15-25 s) while the Redis test runs: its PLAINTEXT
 * listener is behind `proxy`, advertised as the proxy's port; `direct` is its listener around the proxy.
 */
const kafkaDir = mkdtempSync(join(tmpdir(), 'pioneer-kafka-'));
const kafkaBroker: Promise<{ proxy: TcpProxy; direct: string }> = (async () => {
  const brokerPort = await freePort();
  const proxy = await startTcpProxy({ port: brokerPort });
  cleanups.push(() => proxy.close());
  const direct = await new Promise<string>((resolve, reject) =>
    execFile('bash', [join(ROOT, 'scripts/kafka.sh'), 'start', kafkaDir, String(brokerPort)], { env: { ...process.env, KAFKA_ADVERTISED_PORT: String(proxy.port) } }, (err, stdout, stderr) =>
      err ? reject(new Error(`the broker did not start: ${stderr}`)) : resolve(stdout.trim()),
    ),
  );
  return { proxy, direct };
})();
kafkaBroker.catch(() => {}); // awaited by the Kafka test
cleanups.push(async () => {
  await kafkaBroker.catch(() => {});
  await new Promise((r) => execFile('bash', [join(ROOT, 'scripts/kafka.sh'), 'stop', kafkaDir], r));
});

interface Got {
  n: number;
  key: string;
  seq: number;
  at: number;
}

/** A steady flow of `tick` events to `topic`: every TICK_MS one event per key, each key with its own sequence. */
function startFlow(brokers: string, topic: string, tenantId: string) {
  const producer: Producer = kafkaClient(brokers).producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true });
  const sent = new Map<string, number>(KEYS.map((k) => [k, 0]));
  let n = 0;
  let stopped = false;
  const running = (async () => {
    await producer.connect();
    try {
      while (!stopped) {
        const messages = KEYS.map((key) => structuredMessage(cloudEvent(tenantId, 'tick', { n: n++, key, seq: sent.get(key)! }, { partitionkey: key })));
        await producer.send({ topic, acks: -1, messages });
        for (const key of KEYS) sent.set(key, sent.get(key)! + 1);
        await sleep(TICK_MS);
      }
    } finally {
      await producer.disconnect();
    }
  })();
  return {
    sent,
    total: () => [...sent.values()].reduce((a, b) => a + b, 0),
    async stop() {
      stopped = true;
      await running;
    },
  };
}

/** Reads a subscription over SSE for as long as it runs, reconnecting with Last-Event-ID whenever the stream ends or fails. */
function startSseReader(url: string, key: string) {
  const got: Got[] = [];
  let last: string | undefined;
  const ac = new AbortController();
  let connects = 0;
  const refusals: string[] = [];
  const done = (async () => {
    while (!ac.signal.aborted) {
      let seen = 0;
      connects++;
      try {
        const res = await readSse(url, key, {
          lastEventId: last,
          timeout: 600000,
          signal: ac.signal,
          until: (events) => {
            for (; seen < events.length; seen++) {
              const ev = events[seen]!;
              const ce = JSON.parse(ev.data) as { data: { n: number; key: string; seq: number } };
              got.push({ n: ce.data.n, key: ce.data.key, seq: ce.data.seq, at: Date.now() });
              last = ev.id;
            }
            return ac.signal.aborted;
          },
        });
        if (res.status !== 200) refusals.push(`${res.status} ${(res.body as { code?: string } | null)?.code}`);
      } catch {
        // the stream failed mid-way: reconnect
      }
      if (!ac.signal.aborted) await sleep(200);
    }
  })();
  return {
    got,
    get connects() {
      return connects;
    },
    refusals,
    async stop() {
      ac.abort();
      await done;
    },
  };
}

/** Per key: every sequence number from 0 to what was sent, once, in order. Empty lists when so. */
function checkPerKey(got: Got[], sent: Map<string, number>) {
  const lost: string[] = [];
  const duplicated: string[] = [];
  const reordered: string[] = [];
  for (const [key, count] of sent) {
    const seqs = got.filter((g) => g.key === key).map((g) => g.seq);
    const seen = new Set<number>();
    for (let i = 0; i < seqs.length; i++) {
      if (seen.has(seqs[i]!)) duplicated.push(`${key}#${seqs[i]}`);
      seen.add(seqs[i]!);
      if (i > 0 && seqs[i]! < seqs[i - 1]!) reordered.push(`${key}#${seqs[i]} after #${seqs[i - 1]}`);
    }
    for (let s = 0; s < count; s++) if (!seen.has(s)) lost.push(`${key}#${s}`);
  }
  return { lost: lost.slice(0, 20), duplicated: duplicated.slice(0, 20), reordered: reordered.slice(0, 20) };
}

/** Every event sent reached `got` (each key's last sequence number). */
const allArrived = (got: Got[], sent: Map<string, number>) =>
  [...sent].every(([key, count]) => count === 0 || got.some((g) => g.key === key && g.seq === count - 1));

/** The longest pause between arrivals from `from` on, and how long after `healedAt` the first arrival came. */
function stall(arrivals: number[], from: number, healedAt: number) {
  const times = arrivals.filter((t) => t >= from - 2000).sort((a, b) => a - b);
  let longest = 0;
  for (let i = 1; i < times.length; i++) longest = Math.max(longest, times[i]! - times[i - 1]!);
  const resumed = times.find((t) => t >= healedAt);
  return { longestMs: longest, resumedAfterHealMs: resumed === undefined ? NaN : resumed - healedAt };
}

async function readyz(base: string) {
  const started = Date.now();
  const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(30000) });
  const body = (await res.json()) as { status: string; function: string; checks: Record<string, boolean> };
  return { status: res.status, body, ms: Date.now() - started };
}

/**
 * Applies `fault` for CUT_MS, then heals. Meanwhile, from half a second in, asks each function's /readyz over and
 * over and checks that it answers 503 in time with `dependency` false and every other check true. Then measures
 * how long each takes to answer 200 again.
 */
async function faultWindow(
  t: { diagnostic(msg: string): void },
  label: string,
  proxy: TcpProxy,
  fault: 'cut' | 'blackhole',
  functions: Record<string, string>,
  dependency: 'redis' | 'kafka',
): Promise<{ startedAt: number; healedAt: number; readyAgainMs: Record<string, number> }> {
  const startedAt = Date.now();
  proxy[fault]();
  const healAt = startedAt + CUT_MS;
  await sleep(500);
  const answers = await Promise.all(
    Object.entries(functions).map(async ([name, base]) => {
      const seen: Awaited<ReturnType<typeof readyz>>[] = [];
      // ask only while an answer (at most READY_ANSWER_MS + MARGIN_MS) still comes before the heal
      do {
        seen.push(await readyz(base));
        await sleep(300);
      } while (Date.now() + READY_ANSWER_MS + MARGIN_MS < healAt);
      return [name, seen] as const;
    }),
  );
  await sleep(Math.max(0, healAt - Date.now()));
  proxy.heal();
  const healedAt = Date.now();
  for (const [name, seen] of answers) {
    t.diagnostic(`${label}: ${name} /readyz -> ${seen.map((a) => `${a.status} ${JSON.stringify(a.body.checks)} in ${a.ms} ms`).join('; ')}`);
    for (const a of seen) {
      assert.equal(a.status, 503, `${label}: ${name} /readyz during the fault: ${a.status} ${JSON.stringify(a.body)}`);
      assert.equal(a.body.status, 'not ready');
      assert.equal(a.body.function, name);
      assert.equal(a.body.checks[dependency], false, `${label}: ${name} /readyz names ${dependency}: ${JSON.stringify(a.body.checks)}`);
      for (const [check, ok] of Object.entries(a.body.checks))
        if (check !== dependency) assert.equal(ok, true, `${label}: ${name} /readyz: only ${dependency} is down: ${JSON.stringify(a.body.checks)}`);
      assert.ok(a.ms <= READY_ANSWER_MS + MARGIN_MS, `${label}: ${name} /readyz answered after ${a.ms} ms (bound ${READY_ANSWER_MS} ms)`);
    }
  }
  const readyAgainMs: Record<string, number> = {};
  await Promise.all(
    Object.entries(functions).map(async ([name, base]) => {
      await waitFor(async () => (await readyz(base)).status === 200, { timeout: READY_AGAIN_MS, interval: 100, message: `${label}: ${name} /readyz 200 after healing` });
      readyAgainMs[name] = Date.now() - healedAt;
    }),
  );
  t.diagnostic(`${label}: /readyz 200 again after healing in ${Object.entries(readyAgainMs).map(([n, ms]) => `${n} ${ms} ms`).join(', ')}`);
  return { startedAt, healedAt, readyAgainMs };
}

/** Stops a function process: SIGTERM, and SIGKILL if it has not exited within 10 s. */
async function stopChild(child: ChildProcess): Promise<void> {
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
  await killProcess(child, 'SIGTERM');
  clearTimeout(timer);
}

test('Redis cut and black-holed: SSE and webhooks lose, duplicate and reorder no event; /readyz names redis meanwhile', { timeout: 150000 }, async (t) => {
  const t0 = Date.now();
  const phase = (what: string) => t.diagnostic(`${(Date.now() - t0) / 1000} s: ${what}`);
  const redis = ownRedis();
  cleanups.push(() => redis.stop());
  const proxy = await startTcpProxy({ port: Number(new URL(redis.url).port) });
  cleanups.push(() => proxy.close());
  const { brokers } = deps();
  const topic = randomName('cuts-redis');
  await createTopic(topic, 4);
  const names = ['subscriptions', 'route', 'gateway', 'deliver'];
  const env = platformEnv({
    ...routeEnv(topic),
    ...deliverEnv({
      // the receiver lives in this busy test process: a slow answer is retried for long, never dead-lettered
      PIONEER_DELIVER_TIMEOUT_MS: '3000',
      PIONEER_DELIVER_RETRY_SCHEDULE: '0,200ms,500ms,1s,2s,5s,10s,30s,60s',
    }),
    PIONEER_REDIS_URL: `redis://${proxy.address}`,
    PIONEER_KAFKA_BROKERS: brokers,
    ...Object.fromEntries(names.map((n) => [`PIONEER_${n.toUpperCase()}_PORT`, '0'])),
  });
  const fns = await spawnFunctions(names, env);
  cleanups.push(() => stopChild(fns.child));
  phase('functions listen');
  const receiver: Receiver = await startReceiver();
  cleanups.push(() => receiver.close());

  const { tenant } = await subscribe(fns.urls['subscriptions']!, fns.urls['deliver']!, env['PIONEER_ADMIN_KEY']!, receiver, 'tick');
  const pulled = await api(fns.urls['subscriptions']!, tenant.key, 'POST', '/v1/subscriptions', { types: ['tick'] });
  assert.equal(pulled.status, 201, JSON.stringify(pulled.body));
  await sleep(1500); // the route and deliver know both subscriptions

  const reader = startSseReader(`${fns.urls['gateway']}/v1/subscriptions/${pulled.body.id}/events`, tenant.consumerKey);
  cleanups.push(() => reader.stop());
  const flow = startFlow(brokers, topic, tenant.id);
  cleanups.push(() => flow.stop());
  await waitFor(() => reader.got.length >= 30 && receiver.received.length >= 30, { timeout: 30000, message: 'the flow at the SSE reader and the receiver' });
  const checked = { route: fns.urls['route']!, gateway: fns.urls['gateway']!, deliver: fns.urls['deliver']! };
  for (const [name, base] of Object.entries(checked)) assert.equal((await readyz(base)).status, 200, `${name} ready before the faults`);

  const windows: { label: string; startedAt: number; healedAt: number }[] = [];
  for (const fault of ['cut', 'blackhole'] as const) {
    const label = `Redis ${fault}`;
    phase(`${label}`);
    const w = await faultWindow(t, label, proxy, fault, checked, 'redis');
    windows.push({ label, ...w });
    // the flow reaches both ends again before the next fault
    const mark = flow.total();
    await waitFor(() => reader.got.some((g) => g.n >= mark) && receiver.received.some((r) => r.n >= mark), { timeout: 60000, message: `${label}: the flow again after healing` });
    await sleep(1500);
  }
  await flow.stop();
  phase('the flow stopped');
  await waitFor(() => allArrived(reader.got, flow.sent), { timeout: 60000, message: 'every event at the SSE reader' });
  const receipts = (repeats: boolean): Got[] =>
    receiver.received.filter((r) => repeats || r.repeat === 0).map((r) => ({ n: r.n, key: r.key!, seq: JSON.parse(r.body).data.seq as number, at: r.at }));
  await waitFor(() => allArrived(receipts(false), flow.sent), { timeout: 60000, message: 'every event at the receiver' });
  phase('every event arrived');
  await sleep(1500); // a duplicate would have arrived by now
  await reader.stop();

  for (const w of windows) {
    const sse = stall(reader.got.map((g) => g.at), w.startedAt, w.healedAt);
    const hooks = stall(receiver.received.map((r) => r.at), w.startedAt, w.healedAt);
    t.diagnostic(`${w.label}: SSE stalled ${sse.longestMs} ms (first event ${sse.resumedAfterHealMs} ms after healing); webhooks stalled ${hooks.longestMs} ms (first ${hooks.resumedAfterHealMs} ms after healing)`);
  }
  const repeats = receiver.received.flatMap((r, i) => (r.repeat > 0 ? [{ r, i, first: receiver.received.find((x) => x.n === r.n)! }] : []));
  t.diagnostic(`${flow.total()} events; SSE: ${reader.got.length} read over ${reader.connects} connections (refused: ${reader.refusals.join(', ') || 'none'}); receiver: ${receiver.received.length} requests`);
  for (const { r, first } of repeats) {
    const w = windows.find((x) => first.at >= x.startedAt - 2000 && first.at <= x.healedAt);
    t.diagnostic(`webhook repeated: ${r.key}#${JSON.parse(r.body).data.seq} (${r.webhookId}), first at ${w ? `${first.at - w.startedAt} ms into the ${w.label}` : 'outside the faults'}, again ${w ? `${r.at - w.healedAt} ms after healing` : ''}`);
  }

  assert.deepEqual(checkPerKey(reader.got, flow.sent), { lost: [], duplicated: [], reordered: [] }, 'SSE: per key, every event once and in order');
  assert.equal(reader.got.length, flow.total(), 'SSE: nothing else');
  assert.ok(receiver.received.every((r) => r.verifiedWith.length > 0), 'every webhook verified with the endpoint secret');
  // per webhook-id, which the receiver de-duplicates on (docs/webhooks.md): every event once, in order
  assert.deepEqual(checkPerKey(receipts(false), flow.sent), { lost: [], duplicated: [], reordered: [] }, 'webhooks: per key, every event once and in order');
  // an attempt answered while Redis was cut off is recorded once Redis is back, not sent again (docs/webhooks.md)
  assert.deepEqual(repeats.map(({ r }) => `${r.key}#${JSON.parse(r.body).data.seq}`), [], 'webhooks: no event sent twice');
  assert.equal(receiver.received.length, flow.total(), 'webhooks: nothing else');
});

test('Kafka cut and black-holed under the route: SSE loses, repeats and reorders nothing; the route and ingest /readyz name kafka meanwhile', { timeout: 180000 }, async (t) => {
  const t0 = Date.now();
  const phase = (what: string) => t.diagnostic(`${(Date.now() - t0) / 1000} s: ${what}`);
  const { proxy, direct } = await kafkaBroker;
  phase('the broker serves');
  const redis = ownRedis();
  cleanups.push(() => redis.stop());
  const topic = randomName('cuts-kafka');
  await createTopic(topic, 4, direct);
  const names = ['subscriptions', 'route', 'gateway', 'ingest'];
  const env = platformEnv({
    ...routeEnv(topic),
    PIONEER_INGEST_TOPIC: topic,
    PIONEER_REDIS_URL: redis.url,
    PIONEER_KAFKA_BROKERS: proxy.address,
    ...Object.fromEntries(names.map((n) => [`PIONEER_${n.toUpperCase()}_PORT`, '0'])),
  });
  const fns = await spawnFunctions(names, env);
  cleanups.push(() => stopChild(fns.child));
  phase('functions listen');
  const tenant = await createTenant(fns.urls['subscriptions']!, env['PIONEER_ADMIN_KEY']!);
  const sub = await api(fns.urls['subscriptions']!, tenant.key, 'POST', '/v1/subscriptions', { types: ['tick'] });
  assert.equal(sub.status, 201, JSON.stringify(sub.body));
  await sleep(1500); // the route knows the subscription

  const reader = startSseReader(`${fns.urls['gateway']}/v1/subscriptions/${sub.body.id}/events`, tenant.consumerKey);
  cleanups.push(() => reader.stop());
  const flow = startFlow(direct, topic, tenant.id);
  cleanups.push(() => flow.stop());
  await waitFor(() => reader.got.length >= 30, { timeout: 30000, message: 'the flow at the SSE reader' });
  const route = { route: fns.urls['route']!, ingest: fns.urls['ingest']! };
  for (const [name, base] of Object.entries(route)) assert.equal((await readyz(base)).status, 200, `${name} is ready before the faults`);
  assert.ok(proxy.open > 0, 'the route reaches Kafka through the proxy');

  const windows: { label: string; startedAt: number; healedAt: number }[] = [];
  for (const fault of ['cut', 'blackhole'] as const) {
    const label = `Kafka ${fault}`;
    phase(`${label}`);
    const w = await faultWindow(t, label, proxy, fault, route, 'kafka');
    windows.push({ label, ...w });
    const mark = flow.total();
    await waitFor(() => reader.got.some((g) => g.n >= mark), { timeout: 60000, message: `${label}: the flow again after healing` });
    await sleep(1500);
  }
  await flow.stop();
  phase('the flow stopped');
  await waitFor(() => allArrived(reader.got, flow.sent), { timeout: 60000, message: 'every event at the SSE reader' });
  await sleep(1500);
  await reader.stop();

  for (const w of windows) {
    const sse = stall(reader.got.map((g) => g.at), w.startedAt, w.healedAt);
    t.diagnostic(`${w.label}: SSE stalled ${sse.longestMs} ms (first event ${sse.resumedAfterHealMs} ms after healing)`);
  }
  t.diagnostic(`${flow.total()} events; SSE: ${reader.got.length} read over ${reader.connects} connections; proxy: ${proxy.stats.accepted} connections accepted, ${proxy.stats.reset} reset`);
  assert.deepEqual(checkPerKey(reader.got, flow.sent), { lost: [], duplicated: [], reordered: [] }, 'SSE: per key, every event once and in order');
  assert.equal(reader.got.length, flow.total(), 'SSE: nothing else');
});
