/**
 * The gateway under many event streams: the per-tenant limit holds exactly however many requests race for it,
 * the instance waits for new events with a fixed number of Redis connections however many streams are open,
 * and a client that does not read holds up nobody else.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setMaxListeners } from 'node:events';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import {
  api, cloudEvent, createTenant, createTopic, deps, produce, randomName, readSse, redisClient, startPlatform, structuredMessage, waitFor, type TestPlatform,
} from '../support/helpers.ts';
import { keys } from '../../platform/redis/keys.ts';
import { serversOf } from '../../platform/redis/client.ts';

const MAX = 50;
const READERS = 3;
let p: TestPlatform;
const topic = randomName('events');
const redis = redisClient();

before(async () => {
  await createTopic(topic, 2);
  p = await startPlatform(['subscriptions', 'route', 'gateway'], {
    PIONEER_SOURCE_TOPICS: topic,
    PIONEER_ROUTE_GROUP: randomName('route'),
    PIONEER_SSE_MAX_PER_TENANT: String(MAX),
    PIONEER_SSE_READERS: String(READERS),
  });
});
after(async () => {
  await p?.stop();
  redis.disconnect();
});

async function subscribe(t: { key: string }, type = 'tick') {
  const sub = (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: [type] })).body;
  return { id: sub.id as string, url: `${p.url('gateway')}/v1/subscriptions/${sub.id}/events` };
}

function openStream(url: string, key: string, signal: AbortSignal) {
  return fetch(url, { headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' }, signal });
}

async function openStreams() {
  const text = await (await fetch(`${p.url('gateway')}/metrics`)).text();
  return Number(/^pioneer_gateway_sse_connections(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? NaN);
}

/** Local TCP ports of this process's sockets (the gateway runs in it): its connections in CLIENT LIST. */
function ownPorts(): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && inodes.has(cols[9]!)) ports.add(parseInt(cols[1]!.split(':').pop()!, 16));
    }
  }
  return ports;
}

/**
 * The CLIENT LIST lines of the gateway's Redis connections in this process (connection name pioneer-gateway,
 * platform/redis/client.ts): age, idle time and last command are what a failed bound shows.
 */
async function gatewayConnectionLines(): Promise<string[]> {
  const ports = ownPorts();
  const lines: string[] = [];
  // every server the gateway may connect to: one, or each master of a Redis Cluster
  for (const server of serversOf(redis)) {
    const list = (await server.client('LIST')) as string;
    lines.push(...list.split('\n').filter((l) => / name=pioneer-gateway /.test(l) && ports.has(Number(/ addr=\S+:(\d+) /.exec(l)?.[1]))));
  }
  return lines;
}

/**
 * The gateway's connections once they settle within `bound`: a connection closed or replaced a moment ago (a
 * busy machine delays both ends) may still be listed; a leak never settles. The last lines seen when not.
 */
async function settledConnections(bound: number): Promise<{ count: number; lines: string[] }> {
  let lines: string[] = [];
  await waitFor(async () => (lines = await gatewayConnectionLines()).length <= bound, { timeout: 10_000, interval: 200, message: 'the gateway connections to settle' }).catch(() => {});
  return { count: lines.length, lines };
}

test(`2,000 simultaneous stream requests of one tenant: exactly ${MAX} open, the rest get 429 with Retry-After; closed, the slots are free again`, { timeout: 120_000 }, async (t0) => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await subscribe(t);
  const races: AbortController[] = [];
  const race = async () => {
    const ac = new AbortController();
    races.push(ac);
    setMaxListeners(Infinity, ac.signal);
    // a connection the listen backlog reset never reached the handler: it tries again, still within the race
    const request = async (tries = 3): Promise<Response> => {
      try {
        return await openStream(sub.url, t.consumerKey, ac.signal);
      } catch (err) {
        if (tries <= 1) throw err;
        return request(tries - 1);
      }
    };
    const responses = await Promise.all(Array.from({ length: 2000 }, () => request()));
    const refused = responses.filter((r) => r.status !== 200);
    for (const r of refused) {
      assert.equal(r.status, 429);
      assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.ok(Number(r.headers.get('retry-after')) >= 1, `Retry-After: ${r.headers.get('retry-after')}`);
      assert.equal(((await r.json()) as { code: string }).code, 'too_many_streams');
    }
    return { open: responses.length - refused.length, close: () => ac.abort() };
  };

  t0.after(() => races.forEach((ac) => ac.abort()));
  const first = await race();
  assert.equal(first.open, MAX);
  // held for longer than a lease lives (three heartbeats of 1 s): renewed, the slots stay taken
  await new Promise((r) => setTimeout(r, 4000));
  const late = await openStream(sub.url, t.consumerKey, AbortSignal.timeout(10_000));
  assert.equal(late.status, 429);
  await late.body?.cancel();

  first.close();
  await waitFor(async () => (await openStreams()) === 0, { message: 'every stream closed' });
  const second = await race();
  assert.equal(second.open, MAX, 'the closed streams gave their slots back');
  second.close();
  await waitFor(async () => (await openStreams()) === 0, { message: 'every stream closed' });
  await waitFor(async () => (await redis.exists(keys.sseLeases(t.id))) === 0, { message: "the tenant's slots key to go" });
});

// On one server the gateway holds its command connection and READERS reading ones. On a Redis Cluster it holds a
// command connection per master and, while streams wait, a reading connection per tenant (its keys' slot).
const CONNECTIONS = deps().cluster ? { idle: 3 + 1, open: 3 + 4 + 1 } : { idle: READERS + 2, open: READERS + 2 };

test(`200 open streams over 4 tenants hold a bounded number of reading connections (${READERS} on one server, one per tenant on a Cluster), and each gets its subscription's events in order`, { timeout: 120_000 }, async () => {
  await waitFor(async () => (await openStreams()) === 0, { message: 'no stream open' });
  const before = await settledConnections(CONNECTIONS.idle);
  assert.ok(before.count <= CONNECTIONS.idle, `${before.count} gateway connections before any stream:\n${before.lines.join('\n')}`);
  const tenants = await Promise.all(Array.from({ length: 4 }, () => createTenant(p.url('subscriptions'), p.adminKey)));
  // two subscriptions per tenant, each of its own event type
  const subs = await Promise.all(tenants.flatMap((t) => ['tick.a', 'tick.b'].map(async (type) => ({ t, type, ...(await subscribe(t, type)) }))));
  await new Promise((r) => setTimeout(r, 300)); // the route sees the new subscriptions
  const N = 30;
  const ac = new AbortController();
  const reading = subs.flatMap((s) =>
    Array.from({ length: 25 }, () => readSse(s.url, s.t.consumerKey, { until: (e) => e.length >= N, timeout: 60_000, signal: ac.signal }).then((r) => ({ s, r }))),
  );
  try {
    await waitFor(async () => (await openStreams()) === 200, { message: '200 open streams', timeout: 30_000 });
    // a reading connection of a stream closed a moment ago may still be on its way out: the bound must hold once
    // the connections settle (a leak never does)
    const held = await settledConnections(CONNECTIONS.open);
    assert.ok(held.count <= CONNECTIONS.open, `${held.count} gateway connections with 200 open streams (at most ${CONNECTIONS.open}):\n${held.lines.join('\n')}`);

    // each subscription's events in one ordering key, produced in a few batches while the streams wait
    for (let batch = 0; batch < 3; batch++) {
      await produce(topic, subs.flatMap((s, n) => Array.from({ length: N / 3 }, (_, i) =>
        structuredMessage(cloudEvent(s.t.id, s.type, { sub: n, i: batch * (N / 3) + i }, { partitionkey: `sub-${n}` })))));
    }
    for (const { s, r } of await Promise.all(reading)) {
      assert.equal(r.status, 200);
      const got = r.events.map((e) => JSON.parse(e.data).data);
      assert.deepEqual(got.map((d: { i: number }) => d.i), Array.from({ length: N }, (_, i) => i), `stream of ${s.id}`);
      assert.ok(got.every((d: { sub: number }) => d.sub === subs.indexOf(s)), `stream of ${s.id} got only its own events`);
    }
    const after = await settledConnections(CONNECTIONS.open);
    assert.ok(after.count <= CONNECTIONS.open, `${after.count} gateway connections after the events:\n${after.lines.join('\n')}`);
  } finally {
    ac.abort();
  }
});

test('a client that stops reading holds up only itself: another stream of the same subscription keeps receiving', { timeout: 120_000 }, async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await subscribe(t);
  const key = keys.stream(t.id, sub.id);
  const ac = new AbortController();
  const slow = await openStream(sub.url, t.consumerKey, ac.signal); // never read until the end
  assert.equal(slow.status, 200);
  try {
    const N = 1500;
    const pad = 'x'.repeat(8 * 1024); // 12 MB in all: more than the loopback socket buffers hold
    const fast = readSse(sub.url, t.consumerKey, { until: (e) => e.length >= N, timeout: 60_000 });
    for (let i = 0; i < N; i += 100) {
      const tx = redis.pipeline();
      for (let j = i; j < i + 100; j++) tx.xadd(key, '*', 'type', 'tick', 'event', JSON.stringify(cloudEvent(t.id, 'tick', { i: j, pad })));
      await tx.exec();
    }
    const { events } = await fast;
    assert.deepEqual(events.map((e) => JSON.parse(e.data).data.i), Array.from({ length: N }, (_, i) => i));
    // and the slow one, reading at last, gets everything in order too
    const reader = slow.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    let count = 0;
    while (count < N) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      const blocks = text.split('\n\n');
      text = blocks.pop()!;
      for (const b of blocks) {
        const data = /^data: (.*)$/m.exec(b)?.[1];
        if (!data) continue;
        assert.equal(JSON.parse(data).data.i, count);
        count++;
      }
    }
    assert.equal(count, N);
  } finally {
    ac.abort();
  }
});
