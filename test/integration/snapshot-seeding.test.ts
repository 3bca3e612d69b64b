/**
 * Snapshot seeding against the real Kafka and Redis: `POST /v1/exports {kind: "snapshot"}` writes the newest
 * event per key of a subscription (from a compacted state topic, or the source topics' newest balance.snapshot),
 * filtered and transformed as the subscription says, cut at its stream's head; `pioneer-consumer seed` loads it and
 * `run` continues live. 10,000 accounts whose balances keep changing while the snapshot runs: the consumer ends
 * with every account's true last balance and every later change once, in order. Bad requests answer 400 naming
 * the field, another tenant 404; a snapshot whose instance was killed reads as failed and frees the subscription.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Partitioners, type Message } from 'kafkajs';
import {
  api, createTenant, kafkaClient, killProcess, platformEnv, randomName, redisClient, sleep, spawnFunctions, startPlatform,
  waitFor, type TestPlatform,
} from '../support/helpers.ts';
import { ensureTopics } from '../../platform/kafka/client.ts';
import { keys } from '../../platform/redis/keys.ts';
import { startCli } from '../../consumer-sdk/test/cli-process.ts';
import { seedFromExport } from '../../consumer-sdk/src/seed.ts';
import { createCheckpointStore } from '../../consumer-sdk/src/checkpoint.ts';

let p: TestPlatform;
const balances = randomName('balances'); // compacted: the latest balance of every account
const events = randomName('payments');
const exportDir = mkdtempSync(join(tmpdir(), 'pioneer-exports-'));
const env = {
  PIONEER_SOURCE_TOPICS: `${balances},${events}`, PIONEER_ROUTE_GROUP: randomName('route'), PIONEER_DEAD_LETTER_TOPIC: `${events}.dlq`,
  PIONEER_EXPORT_DIR: exportDir, PIONEER_SNAPSHOT_SETTLE_MS: '1500',
};

before(async () => {
  await ensureTopics(kafkaClient(), [
    { topic: balances, numPartitions: 4, cleanupPolicy: 'compact' },
    { topic: events, numPartitions: 2 },
  ]);
  p = await startPlatform(['subscriptions', 'route', 'gateway', 'export'], env);
});
after(async () => p?.stop());

/** A balance change of `account` (its n-th version) as the bank writes it: structured, keyed by the account. */
function balance(tenant: string, account: string, version: number, type = 'balance.snapshot'): Message {
  const region = Number(account.split('-').pop()) % 5 === 0 ? 'US' : 'EU';
  const event = {
    specversion: '1.0', id: `${account}-v${version}`, source: '/test/core-banking', type, tenantid: tenant, partitionkey: account,
    time: new Date().toISOString(), datacontenttype: 'application/json', data: { account, version, cents: 1000 * version + (version % 7), region, iban: 'NL91ABNA0417164300' },
  };
  return { key: account, value: JSON.stringify(event), headers: { 'content-type': 'application/cloudevents+json' } };
}

async function producer() {
  const pr = kafkaClient().producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true });
  await pr.connect();
  return pr;
}

/** Waits until the route has handled every record of `topic` written so far. */
async function routed(topic: string): Promise<void> {
  const admin = kafkaClient().admin();
  await admin.connect();
  const redis = redisClient();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    await waitFor(async () => {
      const pos = await redis.hgetall(keys.routePositions());
      return ends.every((e) => BigInt(e.high) === 0n || BigInt(pos[`${topic}/${e.partition}`] ?? '-1') >= BigInt(e.high));
    }, { timeout: 60000, message: `the route through ${topic}` });
  } finally {
    redis.disconnect();
    await admin.disconnect();
  }
}

async function finished(key: string, id: string): Promise<any> {
  return waitFor(async () => {
    const r = await api(p.url('export'), key, 'GET', `/v1/exports/${id}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.status !== 'running' ? r.body : undefined;
  }, { timeout: 60000, message: `export ${id}` });
}

async function download(key: string, id: string): Promise<Buffer> {
  const res = await fetch(`${p.url('export')}/v1/exports/${id}/file`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

function sinkLines(dir: string): { cursor: string; event: any }[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.ndjson'))
    .sort()
    .flatMap((n) => readFileSync(join(dir, n), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
}

async function streamAfter(key: string, sub: string, after: string): Promise<{ cursor: string; event: any }[]> {
  const out: { cursor: string; event: any }[] = [];
  for (;;) {
    const r = await api(p.url('gateway'), key, 'GET', `/v1/subscriptions/${sub}/events?limit=1000&after=${after}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    out.push(...r.body.data);
    if (!r.body.has_more) return out;
    after = r.body.next_cursor;
  }
}

test('10,000 accounts changing while the snapshot runs: the seeded consumer ends with every true last balance and every later change once, in order', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const b = await createTenant(p.url('subscriptions'), p.adminKey);
  const ACCOUNTS = 10_000;
  const account = (t: 'A' | 'B', i: number) => `acct-${t}-${i}`;
  /** the truth: every account's last version as written */
  const last = new Map<string, number>();
  const write = (tenant: string, name: string, v: number) => {
    last.set(name, v);
    return balance(tenant, name, v);
  };

  // months ago: three versions of every account, another tenant's accounts in between, ten accounts closed (tombstones)
  const pr = await producer();
  const initial: Message[] = [];
  for (let v = 1; v <= 3; v++) {
    for (let i = 0; i < ACCOUNTS; i++) initial.push(write(a.id, account('A', i), v));
    for (let i = 0; i < 1000; i++) initial.push(write(b.id, account('B', i), v));
  }
  for (let i = 0; i < initial.length; i += 2000) await pr.send({ topic: balances, acks: -1, messages: initial.slice(i, i + 2000) });
  const closed = Array.from({ length: 10 }, (_, i) => account('A', 1 + i * 3));
  await pr.send({ topic: balances, acks: -1, messages: closed.map((k) => ({ key: k, value: null })) });
  for (const k of closed) last.delete(k);
  await routed(balances);

  // today: the subscription (EU accounts only, amounts renamed, the IBAN dropped), nobody has read anything yet
  const created = await api(p.url('subscriptions'), a.key, 'POST', '/v1/subscriptions', {
    types: ['balance.snapshot'],
    filters: [{ exact: { 'data.region': 'EU' } }],
    transform: '{ "account": account, "version": version, "balance": cents }',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const sub = created.body.id as string;

  // balances keep changing: before the snapshot, while it runs, and after it
  let writing = true;
  let changes = 0;
  let done: any;
  const live = (async () => {
    let n = 0;
    while (writing) {
      const batch: Message[] = [];
      for (let j = 0; j < 100; j++, n++) {
        const i = (n * 7919) % ACCOUNTS;
        const name = account('A', i);
        if (!last.has(name)) continue; // closed
        batch.push(write(a.id, name, last.get(name)! + 1));
        if (j % 10 === 0) batch.push(write(b.id, account('B', i % 1000), last.get(account('B', i % 1000))! + 1));
      }
      await pr.send({ topic: balances, acks: -1, messages: batch });
      changes += batch.length;
      await sleep(40);
    }
  })();
  try {
    await waitFor(() => changes > 1000, { message: 'changes before the snapshot' });
    const changesAtStart = changes;
    const started = await api(p.url('export'), a.key, 'POST', '/v1/exports', { subscription_id: sub, kind: 'snapshot', state_topic: balances });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    assert.equal(started.body.kind, 'snapshot');
    assert.equal(started.body.state_topic, balances);
    assert.equal(started.body.status, 'running');
    assert.ok(started.body.progress, 'a running snapshot shows its progress');
    assert.equal(started.headers.get('location'), `/v1/exports/${started.body.id}`);
    done = await finished(a.consumerKey, started.body.id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(done.progress, null);
    const changesAtCut = changes;
    assert.ok(changesAtCut > changesAtStart, 'balances changed while the snapshot ran');
    await waitFor(() => changes > changesAtCut + 1000, { message: 'changes after the snapshot' });
    writing = false;
    await live;
  } finally {
    writing = false;
    await live.catch(() => {});
    await pr.disconnect();
  }
  await routed(balances);

  const exp = done;
  const m = exp.manifest;
  assert.equal(m.kind, 'snapshot');
  assert.equal(m.state_topic, balances);
  assert.equal(m.start_after, '0-0');
  assert.equal(m.end_cursor, m.stream_head, 'the stream had events: the consumer continues after its head at the cut');
  assert.deepEqual(Object.keys(m.source_positions).filter((f) => f.startsWith(`${balances}/`)).sort(), [0, 1, 2, 3].map((i) => `${balances}/${i}`));

  // the file: one line per open EU account of this tenant, shaped by the transform, numbered 0-1, 0-2, …
  const file = await download(a.key, exp.id);
  const lines = gunzipSync(file).toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  const eu = [...last.keys()].filter((k) => k.startsWith('acct-A-') && Number(k.split('-').pop()) % 5 !== 0);
  assert.equal(m.count, eu.length);
  assert.equal(lines.length, eu.length);
  assert.deepEqual(lines.map((l) => l.cursor), lines.map((_, i) => `0-${i + 1}`));
  assert.deepEqual(new Set(lines.map((l) => l.event.data.account)), new Set(eu), 'every open EU account once; no US account, no closed one, none of the other tenant');
  for (const l of lines) {
    assert.equal(l.event.tenantid, a.id);
    assert.deepEqual(Object.keys(l.event.data), ['account', 'version', 'balance']);
  }
  const seededVersion = new Map<string, number>(lines.map((l) => [l.event.data.account, l.event.data.version]));
  assert.ok([...seededVersion.values()].some((v) => v > 3), 'changes made after the subscription was created and before the cut are in the snapshot');

  // the consumer: seed, then run live after the stream's head at the cut
  const work = mkdtempSync(join(tmpdir(), 'pioneer-snapshot-seed-'));
  writeFileSync(join(work, 'snapshot.ndjson.gz'), file);
  writeFileSync(join(work, 'manifest.json'), JSON.stringify(exp));
  const dir = join(work, 'consumer');
  const seed = startCli(['seed', '--file', join(work, 'snapshot.ndjson.gz'), '--manifest', join(work, 'manifest.json')], { PIONEER_DIR: dir, PIONEER_SUBSCRIPTION: sub });
  const seeded = await seed.exited;
  assert.equal(seeded.code, 0, seed.stderr());
  assert.deepEqual(JSON.parse(seed.stdout()), { subscription: sub, written: eu.length, skipped: 0, checkpoint: m.end_cursor });

  const expectedLive = await streamAfter(a.key, sub, m.end_cursor);
  assert.ok(expectedLive.length > 500, `changes after the cut reach the stream (${expectedLive.length})`);
  const run = startCli(['run'], {
    PIONEER_URL: p.url('gateway'), PIONEER_API_KEY: a.consumerKey, PIONEER_SUBSCRIPTION: sub, PIONEER_DIR: dir,
    PIONEER_HEARTBEAT_MS: '1000', PIONEER_MAX_BATCH_WAIT_MS: '20',
  });
  try {
    await waitFor(() => sinkLines(dir).length >= eu.length + expectedLive.length, { timeout: 60000, message: `the live changes in the sink; stderr:\n${run.stderr().slice(-2000)}` });
  } finally {
    run.child.kill('SIGTERM');
    assert.equal((await run.exited).code, 0, run.stderr());
  }
  const got = sinkLines(dir);
  assert.equal(got.length, eu.length + expectedLive.length, 'nothing more, nothing twice');
  assert.deepEqual(got.slice(eu.length).map((l) => l.cursor), expectedLive.map((e) => e.cursor), 'then the stream after the cut, in its order');

  // per account: the snapshot's version, then every later version once, in order, up to the true last one
  const seen = new Map<string, number[]>();
  for (const l of got) {
    const acct = l.event.data.account as string;
    assert.ok(acct.startsWith('acct-A-') && Number(acct.split('-').pop()) % 5 !== 0, `only the tenant's EU accounts: ${acct}`);
    let list = seen.get(acct);
    if (!list) seen.set(acct, (list = []));
    list.push(l.event.data.version);
  }
  assert.equal(seen.size, eu.length);
  let changed = 0;
  for (const acct of eu) {
    const versions = seen.get(acct)!;
    const from = seededVersion.get(acct)!;
    assert.deepEqual(versions, Array.from({ length: last.get(acct)! - from + 1 }, (_, i) => from + i), `${acct}: the snapshot's version, then each later one once, in order`);
    if (versions.length > 1) changed++;
  }
  assert.ok(changed > 100, `accounts changed after the cut (${changed})`);
});

test('without a state topic: the newest balance.snapshot per key from the source topics, then payments and balances live; a subscription that never had an event', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const pr = await producer();
  try {
    const payment = (n: number, acct: string): Message => ({
      key: acct, headers: { 'content-type': 'application/cloudevents+json' },
      value: JSON.stringify({ specversion: '1.0', id: `pay-${acct}-${n}`, source: '/test/payments', type: 'payment.sent', tenantid: a.id, partitionkey: acct, data: { n, amount: 500 } }),
    });
    const before: Message[] = [];
    for (let v = 1; v <= 2; v++) for (let i = 0; i < 40; i++) before.push(balance(a.id, `acct-S-${i}`, v), payment(v, `acct-S-${i}`));
    await pr.send({ topic: events, acks: -1, messages: before });
    await routed(events);

    const created = await api(p.url('subscriptions'), a.key, 'POST', '/v1/subscriptions', { types: ['balance.snapshot', 'payment.sent'] });
    const sub = created.body.id as string;
    const started = await api(p.url('export'), a.key, 'POST', '/v1/exports', { subscription_id: sub, kind: 'snapshot' });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    assert.equal(started.body.state_topic, null);
    const done = await finished(a.key, started.body.id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const m = done.manifest;
    assert.deepEqual(m.snapshot_types, ['balance.snapshot']);
    assert.equal(m.stream_head, null, 'the subscription never had an event');
    assert.equal(m.count, 40);
    assert.equal(m.end_cursor, '0-40', 'continue after the last line: before every entry the stream will get');
    const lines = gunzipSync(await download(a.key, done.id)).toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => [l.event.type, l.event.data.version]), lines.map(() => ['balance.snapshot', 2]), 'the newest balance per account; payments are no state');
    // each event as the bank wrote it, as the route stores it
    const text = before[80]!.value!.toString();
    assert.match(text, /"id":"acct-S-0-v2"/);
    assert.ok(gunzipSync(await download(a.key, done.id)).toString('utf8').includes(`"event":${text}}\n`), 'the record\'s own text');

    // later: a payment and a balance of one account
    await pr.send({ topic: events, acks: -1, messages: [payment(3, 'acct-S-7'), balance(a.id, 'acct-S-7', 3)] });
    const dir = mkdtempSync(join(tmpdir(), 'pioneer-snapshot-lib-'));
    const file = join(dir, 'snap.ndjson.gz');
    writeFileSync(file, await download(a.key, done.id));
    const seeded = await seedFromExport({ file, manifest: m, dir: join(dir, 'c') });
    assert.deepEqual(seeded, { subscription: sub, written: 40, skipped: 0, endCursor: '0-40' });
    const later = await waitFor(async () => {
      const e = await streamAfter(a.consumerKey, sub, seeded.endCursor);
      return e.length === 2 ? e : undefined;
    }, { message: 'the later events after the seeded cursor' });
    assert.deepEqual(later.map((e) => [e.event.type, e.event.data.n ?? e.event.data.version]), [['payment.sent', 3], ['balance.snapshot', 3]]);
    // seeding the same snapshot again writes nothing twice
    assert.deepEqual(await seedFromExport({ file, manifest: m, dir: join(dir, 'c') }), { subscription: sub, written: 0, skipped: 40, endCursor: '0-40' });
    // a consumer already inside the stream is not seeded from a snapshot: its older state would follow newer events
    const running = join(dir, 'running');
    const later2 = { ...m, end_cursor: later[1]!.cursor, stream_head: later[1]!.cursor };
    await createCheckpointStore(join(running, 'checkpoint.json')).save({ subscription: sub, cursor: later[0]!.cursor, updatedAt: new Date().toISOString(), lastEventTime: null, events: 1, recent: [] });
    await assert.rejects(seedFromExport({ file, manifest: later2, dir: running }), (err: any) => err.code === 'seed_conflict' && /inside the stream|holds events of the stream/.test(err.message));
    assert.deepEqual(readdirSync(running), ['checkpoint.json'], 'nothing written');
    // read as an interval, the file would have to end at end_cursor: the kind decides how it is checked
    await assert.rejects(seedFromExport({ file, manifest: { ...later2, kind: 'interval' }, dir: join(dir, 'other') }), (err: any) => err.code === 'seed_invalid' && /ends at 0-40, the manifest's end_cursor/.test(err.message));
  } finally {
    await pr.disconnect();
  }
});

test('snapshot requests: 400 naming the field, 404 for another tenant, 403 for a consumer key, 409 while one runs on the subscription', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const b = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = (await api(p.url('subscriptions'), a.key, 'POST', '/v1/subscriptions', { types: ['balance.snapshot'] })).body.id as string;
  const payments = (await api(p.url('subscriptions'), a.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'] })).body.id as string;
  const post = (body: unknown, key = a.key) => api(p.url('export'), key, 'POST', '/v1/exports', body);
  const cases: [unknown, string, RegExp][] = [
    [{ subscription_id: sub, kind: 'snapshot', state_topic: 'pioneer.secrets' }, 'state_topic', /not a topic the platform reads/],
    [{ subscription_id: sub, kind: 'snapshot', state_topic: 'x'.repeat(300) }, 'state_topic', /249|too big|at most/i],
    [{ subscription_id: sub, kind: 'latest' }, 'kind', /interval|snapshot/],
    [{ subscription_id: sub, kind: 'snapshot', from: new Date().toISOString() }, 'from', /not taken by a snapshot/],
    [{ subscription_id: sub, state_topic: balances }, 'state_topic', /kind "snapshot" only/],
    [{ subscription_id: payments, kind: 'snapshot' }, 'state_topic', /required/],
  ];
  for (const [body, field, message] of cases) {
    const r = await post(body);
    assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 200)}: ${JSON.stringify(r.body)}`);
    assert.equal(r.headers.get('content-type'), 'application/problem+json');
    assert.equal(r.body.errors[0].field, field, JSON.stringify(r.body));
    assert.match(r.body.errors[0].message, message);
  }
  const foreign = await post({ subscription_id: sub, kind: 'snapshot', state_topic: balances }, b.key);
  assert.equal(foreign.status, 404);
  assert.equal(foreign.body.errors[0].field, 'subscription_id');
  assert.equal((await post({ subscription_id: sub, kind: 'snapshot', state_topic: balances }, a.consumerKey)).status, 403);

  // the subscription is new: the first snapshot settles a moment, and a second one waits its turn
  const first = await post({ subscription_id: sub, kind: 'snapshot', state_topic: balances });
  assert.equal(first.status, 202, JSON.stringify(first.body));
  const second = await post({ subscription_id: sub, kind: 'snapshot', state_topic: balances });
  assert.equal(second.status, 409, JSON.stringify(second.body));
  assert.equal(second.body.code, 'snapshot_running');
  const progress = await api(p.url('export'), a.key, 'GET', `/v1/exports/${first.body.id}`);
  assert.equal(progress.body.status, 'running');
  assert.equal(progress.body.progress.phase, 'settling');
  assert.equal((await api(p.url('export'), b.key, 'GET', `/v1/exports/${first.body.id}`)).status, 404);
  assert.equal((await api(p.url('export'), b.key, 'GET', `/v1/exports/${first.body.id}/file`)).status, 404);
  const done = await finished(a.key, first.body.id);
  assert.equal(done.status, 'completed', JSON.stringify(done));
  assert.equal(done.manifest.count, 0, 'the tenant has no balances: an empty snapshot');
  const third = await post({ subscription_id: sub, kind: 'snapshot', state_topic: balances });
  assert.equal(third.status, 202, 'the next one may start once the first is done');
  assert.equal((await finished(a.key, third.body.id)).status, 'completed');
});

test('a snapshot whose instance is killed mid-job reads as failed (interrupted) and frees its subscription for the next one', async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = (await api(p.url('subscriptions'), a.key, 'POST', '/v1/subscriptions', { types: ['balance.snapshot'] })).body.id as string;
  // an export instance of its own, in a child process, whose snapshots settle for a minute
  const child = await spawnFunctions(['export'], {
    ...platformEnv(env), PIONEER_ADMIN_KEY: p.adminKey, PIONEER_EXPORT_PORT: '0', PIONEER_SNAPSHOT_SETTLE_MS: '60000', PIONEER_EXPORT_LEASE_MS: '1500', PIONEER_SNAPSHOTS_MAX: '1',
  });
  let id: string;
  try {
    const started = await api(child.urls['export']!, a.key, 'POST', '/v1/exports', { subscription_id: sub, kind: 'snapshot', state_topic: balances });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    id = started.body.id;
    assert.equal((await api(p.url('export'), a.key, 'POST', '/v1/exports', { subscription_id: sub, kind: 'snapshot', state_topic: balances })).status, 409);
    // that instance writes as many snapshots as it may: another subscription's waits
    const other = (await api(p.url('subscriptions'), a.key, 'POST', '/v1/subscriptions', { types: ['balance.snapshot'] })).body.id as string;
    const busy = await api(child.urls['export']!, a.key, 'POST', '/v1/exports', { subscription_id: other, kind: 'snapshot', state_topic: balances });
    assert.equal(busy.status, 503, JSON.stringify(busy.body));
    assert.equal(busy.body.code, 'snapshots_busy');
    assert.ok(Number(busy.headers.get('retry-after')) > 0);
  } finally {
    await killProcess(child.child);
  }
  const failed = await finished(a.key, id);
  assert.equal(failed.status, 'failed');
  assert.match(failed.error, /interrupted/);
  assert.equal((await api(p.url('export'), a.key, 'GET', `/v1/exports/${id}/file`)).body.code, 'export_failed');
  // the lease has expired with its instance: a new snapshot starts and completes
  const again = await waitFor(async () => {
    const r = await api(p.url('export'), a.key, 'POST', '/v1/exports', { subscription_id: sub, kind: 'snapshot', state_topic: balances });
    return r.status === 202 ? r : undefined;
  }, { message: 'a new snapshot accepted' });
  assert.equal((await finished(a.key, again.body.id)).status, 'completed');
});
