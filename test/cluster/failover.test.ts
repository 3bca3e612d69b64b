/**
 * Failover on the cluster pair (the cluster pass of scripts/test.sh only: the tests are registered when the run
 * names the clusters' directories, and the single pass never lists this folder).
 *
 * One tenant, two subscriptions of one type: one pulled over SSE by a reader that reconnects with Last-Event-ID
 * whenever its stream ends, errors or stalls, one pushed to a webhook receiver that verifies every signature.
 * Producers write a steady stream (many partition keys, each event with its key's sequence number) while
 *   1. the Redis master serving the tenant's slot is killed with SIGKILL (its replica takes over) and started
 *      again (it rejoins as a replica), and
 *   2. the Kafka broker leading most source partitions is killed with SIGKILL and started again.
 * Per key, the SSE reader and the receiver must each see every sequence number once and in order.
 * Every node killed is started again whatever the outcome: the rest of the cluster pass uses the same clusters.
 */
import { test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Kafka, logLevel, Partitioners, type Producer } from 'kafkajs';
import {
  api, cloudEvent, createTenant, createTopic, deps, randomName, redisClient, routeEnv, sleep, startPlatform, structuredMessage, waitFor,
  type TestPlatform,
} from '../support/helpers.ts';
import { deliverEnv, startReceiver, type Receiver } from '../integration/deliver-receiver.ts';
import { keys } from '../../platform/redis/keys.ts';
import { CLUSTER_PASS, kafkaLeaderFault, redisMasterFault, type Fault } from './faults.ts';

const TYPE = 'ledger.entry';
const PRODUCERS = 4; // each owns KEYS / PRODUCERS keys and sends one event every TICK_MS: 40 events/s in all
const KEYS = 24;
const TICK_MS = 100;
const PRODUCE_MS = 15000;
const FAULT_AT_MS = 3500;

// --- the stream under test ---------------------------------------------------------------------------------------

interface Seen {
  key: string;
  seq: number;
  n: number;
}

/** The producers: PRODUCERS loops, each sending its keys' next event in turn, one send (acks=-1) at a time. */
function startProducers(topic: string, tenantId: string) {
  const kafka = new Kafka({
    brokers: deps().brokers.split(','),
    clientId: randomName('failover-producer'),
    logLevel: logLevel.NOTHING,
    retry: { retries: 40, initialRetryTime: 100, maxRetryTime: 1000 },
  });
  const producers: Producer[] = [];
  const sent = new Map<string, number>(); // key -> next seq
  let n = 0;
  let stop = false;
  const slowest = { ms: 0 };
  const loops = Array.from({ length: PRODUCERS }, async (_, p) => {
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1 });
    producers.push(producer);
    await producer.connect();
    const mine = Array.from({ length: KEYS / PRODUCERS }, (_, i) => `acct-${p * (KEYS / PRODUCERS) + i}`);
    for (let i = 0; !stop; i++) {
      const key = mine[i % mine.length]!;
      const seq = sent.get(key) ?? 0;
      const started = Date.now();
      await producer.send({
        topic,
        acks: -1,
        messages: [structuredMessage(cloudEvent(tenantId, TYPE, { n: n++, key, seq }, { partitionkey: key }))],
      });
      sent.set(key, seq + 1); // only once the brokers acknowledged it
      slowest.ms = Math.max(slowest.ms, Date.now() - started);
      await sleep(Math.max(0, TICK_MS - (Date.now() - started)));
    }
  });
  return {
    sent,
    slowest,
    get total() {
      return [...sent.values()].reduce((a, b) => a + b, 0);
    },
    /** stops the loops and waits for their last sends (every one acknowledged, or the error that stopped it) */
    async stop() {
      stop = true;
      try {
        await Promise.all(loops);
      } finally {
        await Promise.all(producers.map((pr) => pr.disconnect().catch(() => {})));
      }
    },
  };
}

/**
 * An SSE client as a customer would write one: it reads the stream, and whenever the stream ends, errors, stalls
 * (no byte, not even a heartbeat, for `stallMs`) or the gateway refuses it, it connects again with Last-Event-ID.
 */
function startResilientReader(url: string, key: string, stallMs = 5000) {
  const state = {
    seen: [] as Seen[],
    lastId: undefined as string | undefined,
    connects: 0,
    /** streams that ended, errored or stalled while open, with why */
    drops: [] as string[],
    /** answers other than 200, by status */
    refusals: new Map<number, number>(),
    /** from a stream's end to the next stream that delivered an event again, in ms */
    outages: [] as number[],
    longestGapMs: 0,
    lastEventAt: 0,
  };
  let stopped = false;
  const stopper = new AbortController();
  let droppedAt: number | null = null;

  async function once(): Promise<void> {
    const ac = new AbortController();
    const onStop = () => ac.abort();
    stopper.signal.addEventListener('abort', onStop);
    let stall = setTimeout(() => ac.abort(), stallMs);
    const alive = () => {
      clearTimeout(stall);
      stall = setTimeout(() => ac.abort(), stallMs);
    };
    try {
      const res = await fetch(url, {
        headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream', ...(state.lastId ? { 'last-event-id': state.lastId } : {}) },
        signal: ac.signal,
      });
      if (res.status !== 200) {
        state.refusals.set(res.status, (state.refusals.get(res.status) ?? 0) + 1);
        await res.body?.cancel().catch(() => {});
        return;
      }
      state.connects++;
      const decoder = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        alive();
        buf += decoder.decode(chunk, { stream: true });
        let idx: number;
        while ((idx = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, idx);
          buf = buf.slice(idx + 2);
          let id: string | undefined;
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('id:')) id = line.slice(3).trim();
            else if (line.startsWith('data:')) data += line.slice(5).replace(/^ /, '');
          }
          if (!data || !id) continue;
          const ce = JSON.parse(data);
          if (ce.type !== TYPE) continue;
          const now = Date.now();
          if (state.lastEventAt) state.longestGapMs = Math.max(state.longestGapMs, now - state.lastEventAt);
          state.lastEventAt = now;
          if (droppedAt !== null) state.outages.push(now - droppedAt), (droppedAt = null);
          state.seen.push({ key: ce.data.key, seq: ce.data.seq, n: ce.data.n });
          state.lastId = id; // only after the event was taken: a reconnection resumes after it
        }
      }
      if (!stopped) state.drops.push('ended');
    } catch (err) {
      if (!stopped) state.drops.push(ac.signal.aborted ? 'stalled' : `error: ${(err as Error).message}`);
    } finally {
      clearTimeout(stall);
      stopper.signal.removeEventListener('abort', onStop);
      ac.abort();
    }
  }

  const loop = (async () => {
    while (!stopped) {
      const drops = state.drops.length;
      await once();
      if (state.drops.length > drops && droppedAt === null) droppedAt = Date.now();
      if (!stopped) await sleep(100);
    }
  })();
  return {
    state,
    async stop() {
      stopped = true;
      stopper.abort();
      await loop;
    },
  };
}

/** The receiver's deliveries of the push subscription, per key, in arrival order (every request, repeats too). */
function receivedPerKey(receiver: Receiver): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const r of receiver.received) {
    const ce = JSON.parse(r.body);
    const list = out.get(ce.data.key) ?? [];
    list.push(ce.data.seq);
    out.set(ce.data.key, list);
  }
  return out;
}

function perKey(seen: Seen[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const s of seen) {
    const list = out.get(s.key) ?? [];
    list.push(s.seq);
    out.set(s.key, list);
  }
  return out;
}

/** What is wrong with `got` against 0..count-1 in order: missing, repeated and out-of-order sequence numbers. */
function problems(got: number[], count: number): string | null {
  const counts = new Map<number, number>();
  for (const s of got) counts.set(s, (counts.get(s) ?? 0) + 1);
  const missing = Array.from({ length: count }, (_, s) => s).filter((s) => !counts.has(s));
  const repeated = [...counts].filter(([, c]) => c > 1).map(([s, c]) => `${s}×${c}`);
  const extra = [...counts.keys()].filter((s) => s < 0 || s >= count);
  const disorder = got.findIndex((s, i) => i > 0 && s <= got[i - 1]!);
  if (!missing.length && !repeated.length && !extra.length && disorder < 0) return null;
  return [
    missing.length ? `missing ${missing.join(',')}` : '',
    repeated.length ? `repeated ${repeated.join(',')}` : '',
    extra.length ? `never sent ${extra.join(',')}` : '',
    disorder >= 0 ? `out of order at #${disorder} (${got.slice(Math.max(0, disorder - 2), disorder + 2).join(',')})` : '',
  ].filter(Boolean).join('; ');
}

/**
 * The shared scenario: a platform (subscriptions, route, gateway, deliver) on the cluster pair, one tenant with
 * a pulled and a pushed subscription, PRODUCE_MS of events, the fault at FAULT_AT_MS, then every event once and
 * in order per key at the reader and at the receiver.
 */
async function scenario(t: TestContext, pickFault: (ctx: { topic: string; tenantId: string }) => Promise<Fault>) {
  const started = Date.now();
  const topic = randomName('failover');
  await createTopic(topic, 6);
  const receiver = await startReceiver();
  const p: TestPlatform = await startPlatform(['subscriptions', 'route', 'gateway', 'deliver'], {
    ...routeEnv(topic),
    ...deliverEnv({
      // a Redis failover takes ~6 s: the schedule outlasts it (no dead letters), and no attempt times out on a busy machine
      PIONEER_DELIVER_RETRY_SCHEDULE: '0,200ms,500ms,1s,1s,2s,2s,2s,2s,2s,2s,2s,2s,2s,2s',
      PIONEER_DELIVER_TIMEOUT_MS: '10000',
      PIONEER_DELIVER_ATTEMPTS_KEPT: '10000', // every attempt stays readable, to explain a repeat
    }),
    PIONEER_SSE_HEARTBEAT_MS: '500',
    PIONEER_SSE_MAX_PER_TENANT: '20',
    PIONEER_ROUTE_REDERIVE_SECONDS: '120',
  });
  let fault: Fault | undefined;
  let producers: ReturnType<typeof startProducers> | undefined;
  let reader: ReturnType<typeof startResilientReader> | undefined;
  let restoring: Promise<void> | undefined;
  try {
    const tenant = await createTenant(p.url('subscriptions'), p.adminKey);
    const pull = await api(p.url('subscriptions'), tenant.key, 'POST', '/v1/subscriptions', { types: [TYPE] });
    assert.equal(pull.status, 201, JSON.stringify(pull.body));
    const push = await api(p.url('subscriptions'), tenant.key, 'POST', '/v1/subscriptions', { types: [TYPE], sink: receiver.url });
    assert.equal(push.status, 201, JSON.stringify(push.body));
    const secret = await api(p.url('deliver'), tenant.key, 'GET', `/v1/subscriptions/${push.body.id}/endpoint/secret`);
    assert.equal(secret.status, 200, JSON.stringify(secret.body));
    receiver.secrets.push(secret.body.secret);
    await sleep(500); // the route's subscription index has both

    fault = await pickFault({ topic, tenantId: tenant.id });
    reader = startResilientReader(`${p.url('gateway')}/v1/subscriptions/${pull.body.id}/events`, tenant.consumerKey);
    producers = startProducers(topic, tenant.id);
    await sleep(FAULT_AT_MS);
    const killedAt = Date.now();
    await fault.kill();
    const f = fault;
    t.diagnostic(`killed ${fault.describe()} after ${producers.total} events (the kill took ${Date.now() - killedAt} ms)`);
    // the node comes back while the producers go on
    restoring = (async () => {
      await f.restoreAfter();
      const from = Date.now();
      await f.restore();
      t.diagnostic(`restarted ${f.describe()} ${((from - killedAt) / 1000).toFixed(1)} s after the kill; the restart took ${((Date.now() - from) / 1000).toFixed(1)} s`);
    })();
    restoring.catch(() => {}); // awaited below
    await sleep(PRODUCE_MS - FAULT_AT_MS);
    await producers.stop();
    const total = producers.total;
    const sent = producers.sent;
    t.diagnostic(`produced ${total} events on ${sent.size} keys (slowest acknowledged send ${producers.slowest.ms} ms)`);

    const r = reader;
    await waitFor(() => r.state.seen.length >= total && receiver.received.length >= total, {
      timeout: 60000,
      interval: 200,
      message: `all ${total} events at the reader (${r.state.seen.length}) and the receiver (${receiver.received.length})`,
    }).catch(() => {}); // the assertions below say what is missing
    await restoring;
    await sleep(1500); // a late duplicate would arrive by now
    await reader.stop();
    const st = reader.state;
    t.diagnostic(
      `SSE: ${st.seen.length} events, ${st.connects} streams opened, drops [${st.drops.join(', ')}], refusals ${JSON.stringify(Object.fromEntries(st.refusals))}, ` +
        `outages ${st.outages.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(', ') || 'none'}, longest gap between events ${(st.longestGapMs / 1000).toFixed(1)} s`,
    );
    const repeats = receiver.received.filter((r) => r.repeat > 0);
    if (repeats.length) {
      const cluster = redisClient();
      try {
        const attempts = ((await cluster.lrange(keys.deliveryAttempts(tenant.id, push.body.id), 0, -1)) as string[]).map((a) => JSON.parse(a));
        for (const x of repeats) {
          const all = receiver.received.filter((r) => r.n === x.n);
          const recorded = attempts.filter((a) => a.webhook_id === x.webhookId).reverse();
          t.diagnostic(
            `webhook n=${x.n} (${JSON.parse(x.body).data.key}/${JSON.parse(x.body).data.seq}) received ${all.length} times: ` +
              all.map((r) => `${((r.at - killedAt) / 1000).toFixed(2)} s after the kill as ${r.webhookId}`).join(', ') +
              `; attempts recorded: ${recorded.map((a) => `#${a.attempt} ${a.outcome} ${a.status} at ${((Date.parse(a.time) - killedAt) / 1000).toFixed(2)} s`).join(', ') || 'none'}`,
          );
        }
      } finally {
        cluster.disconnect();
      }
    }
    const gaps = receiver.received.slice(1).map((x, i) => x.at - receiver.received[i]!.at);
    t.diagnostic(`webhooks: ${receiver.received.length} requests, longest gap between them ${(Math.max(0, ...gaps) / 1000).toFixed(1)} s`);

    // the SSE reader: per key every sequence number once, in order
    const atReader = perKey(st.seen);
    const readerProblems = [...sent].map(([key, count]) => [key, problems(atReader.get(key) ?? [], count)] as const).filter(([, pr]) => pr);
    const atReceiver = receivedPerKey(receiver);
    const receiverProblems = [...sent].map(([key, count]) => [key, problems(atReceiver.get(key) ?? [], count)] as const).filter(([, pr]) => pr);
    if (readerProblems.length || receiverProblems.length) {
      // say where the events are: still in the stream (the reader missed them) or never appended (lost)
      const cluster = redisClient();
      try {
        const stream = ((await cluster.xrange(keys.stream(tenant.id, pull.body.id), '-', '+')) as [string, string[]][]).map(
          ([, f]) => JSON.parse(f[f.indexOf('event') + 1]!),
        );
        const inStream = perKey(stream.map((ce) => ({ key: ce.data.key, seq: ce.data.seq, n: ce.data.n })));
        for (const [key] of [...readerProblems, ...receiverProblems])
          t.diagnostic(`${key}: in the pulled stream ${problems(inStream.get(key) ?? [], sent.get(key)!) ?? 'all, once, in order'}`);
      } finally {
        cluster.disconnect();
      }
    }
    assert.deepEqual(readerProblems, [], 'SSE reader: per key every sequence number once and in order');
    assert.ok(st.seen.length === total, `SSE reader: ${st.seen.length} events for ${total} produced`);
    assert.deepEqual(receiverProblems, [], 'webhook receiver: per key every sequence number once and in order');
    assert.equal(receiver.received.length, total, 'webhook receiver: one request per event');
    const unverified = receiver.received.filter((x) => x.verifiedWith.length === 0);
    assert.equal(unverified.length, 0, 'every webhook carries a valid signature');
    t.diagnostic(`the scenario took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await producers?.stop().catch(() => {});
    await reader?.stop().catch(() => {});
    await restoring?.catch(() => {}); // a restart under way ends first; then whatever is still down starts
    await fault?.restore();
    await p.stop();
    await receiver.close();
  }
}

// --- the faults --------------------------------------------------------------------------------------------------

if (CLUSTER_PASS && deps().cluster) {
  test('the Redis master of the tenant’s slot killed with SIGKILL mid-stream, then restarted: SSE and webhooks see every event once, in order, per key', { timeout: 180000 }, async (t) => {
    await scenario(t, async ({ tenantId }) => redisMasterFault(tenantId)());
  });

  test('the Kafka broker leading most source partitions killed with SIGKILL mid-stream, then restarted: nothing lost, repeated or reordered', { timeout: 180000 }, async (t) => {
    await scenario(t, async ({ topic }) => kafkaLeaderFault(topic)());
  });
}

// A client of a node killed during the file (ioredis reconnecting to it, kafkajs to a broker) can keep this process
// alive after every test has ended and reported; end it then rather than let the file run into its timeout.
after(() => {
  setTimeout(() => process.exit(), 2000).unref();
});
