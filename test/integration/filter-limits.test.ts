import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileFilters } from '../../platform/filters/subscription-filter.ts';
import {
  api, cloudEvent, createTenant, createTopic, kafkaClient, produce, randomName, readSse, routeEnv, startPlatform, structuredMessage, waitFor, subscribeFromStart, type TestPlatform,
} from '../support/helpers.ts';

/**
 * A tenant's filters cannot hurt the platform: expressions beyond the size and nesting limits are refused with a
 * 400 naming the field and the limit (never a 500), whatever the API accepts the route compiles, and a LIKE
 * pattern built to backtrack neither stalls the route nor the other functions of its process.
 */

let p: TestPlatform;
const topic = randomName('events');

before(async () => {
  await createTopic(topic, 2);
  await createTopic(`${topic}.dlq`, 1);
  p = await startPlatform(['subscriptions', 'route', 'gateway'], routeEnv(topic));
});
after(async () => p?.stop());

const nestedParens = `${'('.repeat(2000)}1${')'.repeat(2000)} = 1`;
const nestedAbs = `${'ABS('.repeat(800)}1${')'.repeat(800)} = 1`;
const longOrChain = Array.from({ length: 800 }, (_, i) => `subject = 's${i % 10}'`).join(' OR ').slice(0, 4096).replace(/ OR [^O]*$/, '');
const hugeOrChain = Array.from({ length: 12000 }, () => 'flag').join(' OR ');
const deepNot = (levels: number, inner: unknown = { exact: { subject: 'x' } }): unknown => (levels === 0 ? inner : { not: deepNot(levels - 1, inner) });

const refused: [string, unknown, string, RegExp][] = [
  ['2,000 nested parentheses', [{ sql: nestedParens }], 'filters[0].sql', /nesting deeper than 64/],
  ['ABS( nested 800 deep', [{ sql: nestedAbs }], 'filters[0].sql', /nesting deeper than 64/],
  ['an OR chain of more than 1,000 nodes', [{ sql: 'flag OR ' + 'flag OR '.repeat(500) + 'flag' }], 'filters[0].sql', /more than 1000 nodes/],
  ['an OR chain of 12,000 terms', [{ sql: hugeOrChain }], 'filters[0].sql', /4096 characters/],
  ['a sql filter under all/any', [{ all: [{ any: [{ sql: nestedParens }] }] }], 'filters[0].all[0].any[0].sql', /nesting deeper than 64/],
  ['all/any/not nested 10 deep', [deepNot(10)], 'filters[0].not.not.not.not.not.not.not.not.not', /deeper than 8/],
];

test('expressions beyond the limits answer 400 naming the field and the limit, on POST and on PATCH', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const existing = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['x'], filters: [{ sql: "subject LIKE 'acct-%'" }] });
  assert.equal(existing.status, 201, JSON.stringify(existing.body));
  assert.ok(longOrChain.length <= 4096 && longOrChain.length > 3000);
  for (const [name, filters, field, message] of refused) {
    for (const [method, path] of [['POST', '/v1/subscriptions'], ['PATCH', `/v1/subscriptions/${existing.body.id}`]] as const) {
      const r = await api(p.url('subscriptions'), t.key, method, path, { types: ['x'], filters });
      assert.equal(r.status, 400, `${name}, ${method}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      assert.equal(r.headers.get('content-type'), 'application/problem+json');
      const hit = r.body.errors.find((e: { field: string }) => e.field === field);
      assert.ok(hit, `${name}, ${method}: expected an error on ${field}, got ${JSON.stringify(r.body.errors).slice(0, 300)}`);
      assert.match(hit.message, message, name);
    }
  }
  // a long but legitimate expression still passes
  const long = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['x'], filters: [{ sql: longOrChain }] });
  assert.equal(long.status, 201, JSON.stringify(long.body).slice(0, 300));
  // the refused patches changed nothing
  const after = await api(p.url('subscriptions'), t.key, 'GET', `/v1/subscriptions/${existing.body.id}`);
  assert.deepEqual(after.body.filters, [{ sql: "subject LIKE 'acct-%'" }]);
  assert.equal((await fetch(`${p.url('subscriptions')}/healthz`)).status, 200);
});

/** Random filter trees, some valid, some beyond a limit, some malformed. */
const attributeName = fc.constantFrom('subject', 'type', 'source', 'region', 'Bad');
const sqlText = fc.oneof(
  fc.constantFrom("subject LIKE 'a%'", 'amount > 1', 'NOSUCH(1)', 'amount >', "type IN ('a', 'b')", 'TRUE'),
  fc.integer({ min: 1, max: 120 }).map((n) => `${'('.repeat(n)}TRUE${')'.repeat(n)}`),
  fc.integer({ min: 1, max: 700 }).map((n) => Array.from({ length: n }, () => 'flag').join(' OR ')),
);
const { filter: filterArb } = fc.letrec((tie) => ({
  filter: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ exact: fc.dictionary(attributeName, fc.string({ maxLength: 5 }), { minKeys: 1, maxKeys: 1 }) }),
    fc.record({ prefix: fc.dictionary(attributeName, fc.string({ maxLength: 5 }), { minKeys: 1, maxKeys: 1 }) }),
    fc.record({ sql: sqlText }),
    fc.record({ all: fc.array(tie('filter'), { minLength: 1, maxLength: 3 }) }),
    fc.record({ any: fc.array(tie('filter'), { minLength: 0, maxLength: 3 }) }),
    fc.record({ not: tie('filter') }),
    fc.record({ not: fc.constant(deepNot(9)) }),
  ),
}));

test('whatever the API accepts, the route compiles; nothing answers 5xx', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  let accepted = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(filterArb, { maxLength: 4 }), async (filters) => {
      const r = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['x'], filters });
      assert.ok(r.status === 201 || r.status === 400, `${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      if (r.status === 201) {
        accepted++;
        // the route's own compile step, on the filters as stored
        const stored = await api(p.url('subscriptions'), t.key, 'GET', `/v1/subscriptions/${r.body.id}`);
        assert.doesNotThrow(() => compileFilters(stored.body.filters ?? []));
        await api(p.url('subscriptions'), t.key, 'DELETE', `/v1/subscriptions/${r.body.id}`);
      } else {
        assert.ok(r.body.errors.every((e: { field: string }) => /^filters/.test(e.field)), JSON.stringify(r.body.errors));
      }
    }),
    { numRuns: 60, seed: 20240613 },
  );
  assert.ok(accepted > 5, `only ${accepted} of the generated subscriptions were valid`);
});

test('a subscription at every limit the API allows is compiled by the route and receives its events', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const type = randomName('limit.type');
  const sub = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', {
    types: [type],
    // seven `not` around an `any` around an `exact`: a filter at depth 8, the deepest allowed, that matches
    filters: [deepNot(7, { any: [{ exact: { subject: 'x' } }] }) as object, { sql: `${'('.repeat(60)}subject LIKE 'acct-%'${')'.repeat(60)}` }, { sql: longOrChain.replace("subject = 's0'", "subject = 'acct-7'") }],
  });
  assert.equal(sub.status, 201, JSON.stringify(sub.body).slice(0, 300));
  await new Promise((r) => setTimeout(r, 400));
  await produce(topic, [
    structuredMessage(cloudEvent(t.id, type, { n: 1 }, { subject: 'acct-6', partitionkey: 'k' })), // filtered out by the OR chain
    structuredMessage(cloudEvent(t.id, type, { n: 2 }, { subject: 'acct-7', partitionkey: 'k' })),
  ]);
  const { events } = await readSse(`${p.url('gateway')}/v1/subscriptions/${sub.body.id}/events`, t.consumerKey, { until: (e) => e.length >= 1, timeout: 20000 });
  assert.deepEqual(events.map((e) => JSON.parse(e.data).data.n), [2]);
});

test("a LIKE pattern built to backtrack routes a 60-character subject quickly, and the gateway's /healthz answers within 1 s meanwhile", async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const type = randomName('like.type');
  const sub = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: [type], filters: [{ sql: "subject LIKE '%a%a%a%a%a%a%a%a%b'" }] });
  assert.equal(sub.status, 201, JSON.stringify(sub.body));
  await new Promise((r) => setTimeout(r, 400));
  const started = Date.now();
  await produce(topic, [
    structuredMessage(cloudEvent(t.id, type, { n: 1 }, { subject: 'a'.repeat(60), partitionkey: 'k' })), // no match, the costly kind
    structuredMessage(cloudEvent(t.id, type, { n: 2 }, { subject: 'a'.repeat(100_000), partitionkey: 'k' })),
    structuredMessage(cloudEvent(t.id, type, { n: 3 }, { subject: `${'a'.repeat(59)}b`, partitionkey: 'k' })), // a match
  ]);
  const slowest = { ms: 0 };
  let done = false;
  const probe = (async () => {
    while (!done) {
      const t0 = Date.now();
      const r = await fetch(`${p.url('gateway')}/healthz`, { signal: AbortSignal.timeout(30000) });
      slowest.ms = Math.max(slowest.ms, Date.now() - t0);
      assert.equal(r.status, 200);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    const { events } = await readSse(`${p.url('gateway')}/v1/subscriptions/${sub.body.id}/events`, t.consumerKey, { until: (e) => e.length >= 1, timeout: 60000 });
    assert.deepEqual(events.map((e) => JSON.parse(e.data).data.n), [3]);
  } finally {
    done = true;
    await probe;
  }
  // this took 38 s per evaluation with a backtracking matcher, during which the process answered nothing
  assert.ok(slowest.ms < 1000, `/healthz took ${slowest.ms} ms while the route matched`);
  assert.ok(Date.now() - started < 15000, `routed in ${Date.now() - started} ms`);
});

test("an event a subscription's filters cannot judge within the work budget is dead-lettered for that subscription, and other subscriptions still get it", async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const type = randomName('budget.type');
  // `_` between literals defeats the fast paths: every position of the subject is a candidate
  const costly = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: [type], filters: [{ sql: "subject LIKE '%a_a_a_a_a_a_a_a_a_a_a_a_b%'" }] });
  const plain = await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: [type] });
  assert.equal(costly.status, 201, JSON.stringify(costly.body));
  await new Promise((r) => setTimeout(r, 400));
  const marker = randomName('marker');
  await produce(topic, [structuredMessage(cloudEvent(t.id, type, { marker }, { subject: 'a'.repeat(300_000), partitionkey: 'k' }))]);

  const consumer = kafkaClient().consumer({ groupId: randomName('dlq') });
  const got: { reason: string; subscription: string }[] = [];
  await consumer.connect();
  await subscribeFromStart(consumer, `${topic}.dlq`);
  await consumer.run({
    eachMessage: async ({ message }) => {
      if (message.value?.toString().includes(marker)) {
        got.push({ reason: message.headers!['pioneer-error']!.toString(), subscription: message.headers!['pioneer-subscription']?.toString() ?? '' });
      }
    },
  });
  try {
    await waitFor(() => got.length >= 1, { timeout: 30000, message: 'the dead letter of the unjudged event' });
    assert.equal(got[0]!.subscription, costly.body.id);
    assert.match(got[0]!.reason, new RegExp(`^subscription ${costly.body.id}: .*1,000,000 steps`));
    const page = await waitFor(async () => {
      const r = await api(p.url('gateway'), t.key, 'GET', `/v1/subscriptions/${plain.body.id}/events`);
      return r.body.data.length === 1 ? r : undefined;
    });
    assert.equal(page.body.data[0].event.data.marker, marker);
    const none = await api(p.url('gateway'), t.key, 'GET', `/v1/subscriptions/${costly.body.id}/events`);
    assert.deepEqual(none.body.data, []);
    const metrics = await (await fetch(`${p.url('route')}/metrics`)).text();
    assert.match(metrics, /^pioneer_route_filter_budget_exceeded_total(?:\{[^}]*\})? [1-9]/m);
  } finally {
    await consumer.disconnect();
  }
});
