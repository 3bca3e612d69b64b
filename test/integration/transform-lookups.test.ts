/**
 * Reference data in transforms, through the real API, reference function, route and gateway on a real Kafka and
 * Redis: records of a compacted topic (`accounts`, keyed `<tenantid>/<account id>`) reach a subscription's
 * events through `$lookup('accounts', accountId)`; an update and a delete reach later events within seconds; a
 * tenant's lookups see its own records only, and a record keyed with another tenant's id is refused, leaving
 * that tenant's record as it was; records past their bounds are dead-lettered with the reason, and a table name
 * that cannot be one is refused at creation with a 400 naming `transform`; events read again from the cold tier are
 * derived with the records as they are then.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from 'kafkajs';
import {
  api, cloudEvent, createTenant, createTopic, kafkaClient, produce, randomName, redisClient, routeEnv, sleep, startPlatform, structuredMessage, waitFor, subscribeFromStart, type TestPlatform,
} from '../support/helpers.ts';
import { countReferences, readReference } from '../../platform/reference/store.ts';
import type { PioneerRedis } from '../../platform/redis/client.ts';
import { keys } from '../../platform/redis/keys.ts';

const topic = randomName('lookups');
const accounts = randomName('reference-accounts');
const dlq = `${topic}.dlq`;
const MAX_RECORDS = 4;
let p: TestPlatform;

before(async () => {
  await Promise.all([createTopic(topic, 2), createTopic(dlq, 1)]);
  p = await startPlatform(['subscriptions', 'route', 'gateway', 'reference'], {
    ...routeEnv(topic),
    PIONEER_REFERENCE_TOPICS: `accounts=${accounts}`,
    PIONEER_REFERENCE_GROUP: randomName('reference'),
    PIONEER_REFERENCE_MAX_RECORDS: String(MAX_RECORDS),
    PIONEER_REFERENCE_MAX_RECORD_BYTES: '256',
  });
  await dlqReader.connect();
  await subscribeFromStart(dlqReader, dlq);
  await dlqReader.run({
    eachMessage: async ({ message }) => {
      if (message.headers?.['pioneer-dead-lettered-by']?.toString() !== 'reference') return;
      dead.push({ reason: message.headers['pioneer-error']!.toString(), kind: message.headers['pioneer-error-kind']!.toString(), key: message.key?.toString() ?? '' });
    },
  });
});
after(async () => {
  await dlqReader.disconnect();
  await p?.stop();
});

const ENRICH = '{ "amount": amount, "holder": $lookup("accounts", accountId).holder, "segment": $lookup("accounts", accountId).segment }';

/** A reference record of `tenantId`'s account, as a producer writes it (null data: a tombstone). */
function account(tenantId: string, id: string, data: Record<string, unknown> | null, opts: { tenantid?: string } = {}): Message {
  const key = `${tenantId}/${id}`;
  if (data === null) return { key, value: null };
  return { key, value: JSON.stringify(cloudEvent(opts.tenantid ?? tenantId, 'account.updated', data)), headers: { 'content-type': 'application/cloudevents+json' } };
}

const payment = (tenantId: string, accountId: string, amount: number) => structuredMessage(cloudEvent(tenantId, 'payment.sent', { amount, accountId }, { partitionkey: accountId }));

async function page(key: string, sub: string): Promise<any[]> {
  const res = await api(p.url('gateway'), key, 'GET', `/v1/subscriptions/${sub}/events?after=0-0&limit=1000`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.data.map((d: any) => d.event.data);
}

async function subscribe(key: string, transform = ENRICH): Promise<string> {
  const created = await api(p.url('subscriptions'), key, 'POST', '/v1/subscriptions', { types: ['payment.sent'], transform });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body.id as string;
}

/** Waits until the tenant's record `id` is in Redis as the reference function wrote it (null: gone). */
async function stored(tenantId: string, id: string, expected: Record<string, unknown> | null): Promise<void> {
  const r = redisClient() as unknown as PioneerRedis;
  try {
    await waitFor(async () => {
      const text = await readReference(r, tenantId, 'accounts', id);
      return expected === null ? text === null : text !== null && JSON.stringify(JSON.parse(text)) === JSON.stringify(expected);
    }, { message: `record ${id} of ${tenantId} to be ${JSON.stringify(expected)}` });
  } finally {
    r.disconnect();
  }
}

type DeadLetter = { reason: string; kind: string; key: string };

/** The reference function's dead letters, as one consumer of the dead-letter topic reads them for the whole file. */
const dead: DeadLetter[] = [];
const dlqReader = kafkaClient().consumer({ groupId: randomName('dlq') });

/** The dead letters, once `done` says they are all there. */
async function deadLetters(done: (got: DeadLetter[]) => boolean): Promise<DeadLetter[]> {
  await waitFor(() => done(dead), { timeout: 30000, message: `the reference dead letters (got ${JSON.stringify(dead)})` });
  return dead;
}

test('a transform enriches events from reference records; an update and a delete reach later events within seconds', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const sub = await subscribe(t.key);
  await produce(accounts, [account(t.id, 'acc-1', { holder: 'Ann Smith', segment: 'retail' }), account(t.id, 'acc-2', { holder: 'Bo Li', segment: 'private' })]);
  await stored(t.id, 'acc-2', { holder: 'Bo Li', segment: 'private' });
  await sleep(300); // the route's index has the subscription
  await produce(topic, [payment(t.id, 'acc-1', 10), payment(t.id, 'acc-2', 20), payment(t.id, 'acc-9', 30)]);
  const first = await waitFor(async () => {
    const d = await page(t.key, sub);
    return d.length === 3 ? d : null;
  });
  assert.deepEqual(first.sort((a, b) => a.amount - b.amount), [
    { amount: 10, holder: 'Ann Smith', segment: 'retail' },
    { amount: 20, holder: 'Bo Li', segment: 'private' },
    { amount: 30 }, // no record: the lookup yields nothing, the event is delivered without those fields
  ]);

  // an update and a delete: later events get them, within seconds (the route keeps a record at most a second)
  await produce(accounts, [account(t.id, 'acc-1', { holder: 'Ann Smith', segment: 'private' }), account(t.id, 'acc-2', null)]);
  let amount = 100;
  const seen = await waitFor(async () => {
    await produce(topic, [payment(t.id, 'acc-1', ++amount), payment(t.id, 'acc-2', 1000 + amount)]);
    await sleep(250);
    const d = await page(t.key, sub);
    const one = d.filter((e) => e.amount === amount)[0];
    const two = d.filter((e) => e.amount === 1000 + amount)[0];
    return one?.segment === 'private' && two !== undefined && two.holder === undefined ? d : null;
  }, { timeout: 30000, message: 'the update and the delete to reach the events' });
  // the events after it keep the new record: nothing goes back to the old one
  await produce(topic, [payment(t.id, 'acc-1', 5000)]);
  const last = await waitFor(async () => (await page(t.key, sub)).find((e) => e.amount === 5000));
  assert.deepEqual(last, { amount: 5000, holder: 'Ann Smith', segment: 'private' });
  assert.ok(seen.every((e: any) => e.amount < 100 || e.amount >= 1000 || e.holder === 'Ann Smith'), 'acc-1 kept its holder throughout');
});

test("tenant B's lookups never see tenant A's records, and B cannot write into A's table", async () => {
  const a = await createTenant(p.url('subscriptions'), p.adminKey);
  const b = await createTenant(p.url('subscriptions'), p.adminKey);
  const subA = await subscribe(a.key);
  // B names A's key every way a transform can: the plain id, and A's Kafka key
  const subB = await subscribe(b.key, `{ "amount": amount, "holder": $lookup("accounts", accountId).holder, "byKafkaKey": $lookup("accounts", "${a.id}/acc-1") }`);
  await produce(accounts, [
    account(a.id, 'acc-1', { holder: 'Alice', segment: 'retail' }),
    // B's producer writes under A's key with its own tenantid: refused, A's record stays
    account(a.id, 'acc-1', { holder: 'Mallory', segment: 'evil' }, { tenantid: b.id }),
  ]);
  await stored(a.id, 'acc-1', { holder: 'Alice', segment: 'retail' });
  await deadLetters((got) => got.some((d) => d.key === `${a.id}/acc-1`));
  assert.ok(dead.some((d) => d.key === `${a.id}/acc-1` && d.kind === 'malformed' && /is not the tenant the key names/.test(d.reason)), JSON.stringify(dead));
  await sleep(300);
  await produce(topic, [payment(b.id, 'acc-1', 1), payment(a.id, 'acc-1', 2)]);
  const ofB = await waitFor(async () => {
    const d = await page(b.key, subB);
    return d.length === 1 ? d : null;
  });
  assert.deepEqual(ofB, [{ amount: 1 }], "nothing of A's record reaches B");
  const ofA = await waitFor(async () => {
    const d = await page(a.key, subA);
    return d.length === 1 ? d : null;
  });
  assert.deepEqual(ofA, [{ amount: 2, holder: 'Alice', segment: 'retail' }], "A's record is as A wrote it");
});

test('reference records past their bounds are dead-lettered with the reason; a table name that cannot be one is a 400 naming transform', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  for (const [transform, message] of [
    ['$lookup("Accounts!", accountId)', /is not a table's name/],
    [`$lookup("${'a'.repeat(65)}", accountId)`, /is not a table's name/],
  ] as const) {
    const res = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'], transform });
    assert.equal(res.status, 400, transform);
    assert.equal(res.body.errors[0].field, 'transform');
    assert.match(res.body.errors[0].message, message);
  }
  assert.equal((await api(p.url('subscriptions'), t.key, 'GET', '/v1/subscriptions')).body.data.length, 0, 'nothing created');

  // the table filled first (its records' partitions are applied in any order between them), then one more
  await produce(accounts, Array.from({ length: MAX_RECORDS }, (_, n) => account(t.id, `acc-${n}`, { holder: `H${n}` })));
  await stored(t.id, `acc-${MAX_RECORDS - 1}`, { holder: `H${MAX_RECORDS - 1}` });
  const r = redisClient() as unknown as PioneerRedis;
  try {
    await waitFor(async () => (await countReferences(r, t.id, 'accounts')) === MAX_RECORDS, { message: 'the table full' });
    await produce(accounts, [
      account(t.id, `acc-${MAX_RECORDS}`, { holder: 'one too many' }), // a new key beyond the bound: refused
      account(t.id, 'acc-0', { holder: 'H0 updated' }), // a key the table holds: replaced, even when full
      account(t.id, 'big', { holder: 'x'.repeat(300) }), // larger than PIONEER_REFERENCE_MAX_RECORD_BYTES
      account('ten_nobody', 'acc-1', { holder: 'nobody' }), // no such tenant
      { key: 'no-tenant-part', value: JSON.stringify(cloudEvent(t.id, 'account.updated', { holder: 'k' })) },
    ]);
    await stored(t.id, 'acc-0', { holder: 'H0 updated' });
    const expected = [`${t.id}/acc-${MAX_RECORDS}`, `${t.id}/big`, 'ten_nobody/acc-1', 'no-tenant-part'];
    await deadLetters((got) => expected.every((k) => got.some((d) => d.key === k)));
    const kinds = Object.fromEntries(dead.map((d) => [d.key, d.kind]));
    assert.equal(kinds[`${t.id}/acc-${MAX_RECORDS}`], 'tableFull', JSON.stringify(dead));
    assert.equal(kinds[`${t.id}/big`], 'tooLarge', JSON.stringify(dead));
    assert.equal(kinds['ten_nobody/acc-1'], 'unknownTenant', JSON.stringify(dead));
    assert.equal(kinds['no-tenant-part'], 'malformed', JSON.stringify(dead));
    assert.equal(await countReferences(r, t.id, 'accounts'), MAX_RECORDS);
    assert.equal(await readReference(r, t.id, 'accounts', `acc-${MAX_RECORDS}`), null);
    const metrics = await (await fetch(`${p.url('reference')}/metrics`)).text();
    const refused = metrics.split('\n').find((l) => l.startsWith('pioneer_reference_refused_total{') && l.includes('reason="tableFull"') && l.includes('table="accounts"'));
    assert.ok(refused && Number(refused.split(' ').pop()) >= 1, 'pioneer_reference_refused_total counts the refused record');
  } finally {
    r.disconnect();
  }
});

test('events read again from the cold tier are derived with the reference records as they are now', async () => {
  const source = randomName('lookups-cold');
  await createTopic(source, 1);
  // a platform whose hot window is one second: older events come back from Kafka through the transform again
  const cold = await startPlatform(['subscriptions', 'route', 'gateway'], { ...routeEnv(source), PIONEER_STREAM_HOT_SECONDS: '1' });
  const r = redisClient() as unknown as PioneerRedis;
  try {
    const t = await createTenant(cold.url('subscriptions'), cold.adminKey);
    const created = await api(cold.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['payment.sent'], transform: ENRICH });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const sub = created.body.id as string;
    const read = async () => (await api(cold.url('gateway'), t.key, 'GET', `/v1/subscriptions/${sub}/events?after=0-0&limit=100`)).body.data.map((d: any) => d.event.data);
    await produce(accounts, [account(t.id, 'acc-1', { holder: 'Ann Smith', segment: 'retail' })]);
    await stored(t.id, 'acc-1', { holder: 'Ann Smith', segment: 'retail' });
    await sleep(300);
    await produce(source, [payment(t.id, 'acc-1', 1), payment(t.id, 'acc-1', 2)]);
    const hot = await waitFor(async () => {
      const d = await read();
      return d.length === 2 ? d : null;
    });
    assert.deepEqual(hot, [1, 2].map((amount) => ({ amount, holder: 'Ann Smith', segment: 'retail' })));
    await produce(accounts, [account(t.id, 'acc-1', { holder: 'Ann Jones', segment: 'private' })]);
    await stored(t.id, 'acc-1', { holder: 'Ann Jones', segment: 'private' });
    // past the hot window, one more event trims the first two from Redis
    await sleep(1500);
    await produce(source, [payment(t.id, 'acc-1', 3)]);
    await waitFor(async () => (await r.xlen(keys.stream(t.id, sub))) === 1, { message: 'the first events trimmed' });
    const again = await waitFor(async () => {
      const d = await read();
      return d.length === 3 ? d : null;
    });
    assert.deepEqual(again, [1, 2, 3].map((amount) => ({ amount, holder: 'Ann Jones', segment: 'private' })), 'derived again with the record as it is now');
  } finally {
    r.disconnect();
    await cold.stop();
  }
});
