/**
 * kill -9 of the insights process mid-stream, then a restart: every event counts once. The process is killed as
 * soon as it has counted some events, with most of the topic still ahead; the restarted one is re-delivered what
 * the killed one had not committed, and the answers equal the exact ones (distinct counts within the stated
 * bound where the answer says it estimated them).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, createTenant, createTopic, killProcess, produce, randomName, spawnFunctions, startPlatform, waitFor, type TestPlatform } from '../support/helpers.ts';
import { adRecord, Expected, HOUR, sessions, type Metric } from './insights-sessions.ts';

const topic = randomName('insights-crash');
const DAY = 86_400_000;
let p: TestPlatform;
const children: Awaited<ReturnType<typeof spawnFunctions>>[] = [];

before(async () => {
  await createTopic(topic, 4);
  p = await startPlatform(['subscriptions']);
});
after(async () => {
  for (const c of children) await killProcess(c.child);
  await p?.stop();
});

async function countedSoFar(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^pioneer_insights_events_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

test('kill -9 mid-stream and a restart: every event counts once', async () => {
  const t = await createTenant(p.url('subscriptions'), p.adminKey);
  const day0 = Math.floor(Date.now() / DAY) * DAY - DAY;
  const campaigns = ['c1', 'c2'];
  const events = sessions({ tenant: t.id, campaigns, customers: 8000, startMs: day0 + 3 * HOUR, spanMs: 5 * HOUR, partitions: 4, seed: 7 });
  const expected = new Expected(events, HOUR);
  const env = {
    ...p.env,
    PIONEER_SOURCE_TOPICS: topic,
    PIONEER_DEAD_LETTER_TOPIC: `${topic}.dlq`,
    PIONEER_INSIGHTS_GROUP: randomName('insights'),
    PIONEER_INSIGHTS_ATTRIBUTION_SECONDS: '3600',
    PIONEER_INSIGHTS_PORT: '0',
  };
  await produce(topic, events.map((e) => adRecord(e)));

  const first = await spawnFunctions(['insights'], env);
  children.push(first);
  const seen = await waitFor(async () => {
    const n = await countedSoFar(first.urls['insights']!);
    return n > 0 ? n : 0;
  }, { interval: 5, timeout: 60000, message: 'the first process to count some events' });
  await killProcess(first.child);
  assert.ok(seen < events.length, `killed mid-stream: ${seen} of ${events.length} counted`);

  const second = await spawnFunctions(['insights'], env);
  children.push(second);
  const url = second.urls['insights']!;
  const date = new Date(day0).toISOString().slice(0, 10);
  const path = (c: string, m: Metric) => `/v1/insights/ads/${c}/${m}/${date}/${date}?granularity=hour`;
  await waitFor(async () => {
    for (const c of campaigns)
      for (const m of ['impressions', 'clicks', 'clickToBasket'] as Metric[]) {
        const r = await api(url, t.consumerKey, 'GET', path(c, m));
        if (r.status !== 200 || r.body.events < expected.figures(t.id, c, m, day0, day0 + DAY).events) return false;
      }
    return true;
  }, { timeout: 120000, message: 'the restarted process to count every event' });
  await new Promise((r) => setTimeout(r, 1000)); // anything counted twice would show by now
  for (const c of campaigns)
    for (const m of ['impressions', 'clicks', 'clickToBasket'] as Metric[]) {
      const r = await api(url, t.consumerKey, 'GET', path(c, m));
      const want = expected.figures(t.id, c, m, day0, day0 + DAY);
      assert.equal(r.body.events, want.events, `${c} ${m}: events`);
      const bound = r.body.estimate ? 0.02 : 0;
      assert.ok(Math.abs(r.body.value - want.value) <= bound * want.value, `${c} ${m}: ${r.body.value} distinct, exactly ${want.value} (estimate: ${r.body.estimate})`);
      for (const s of r.body.series) {
        const from = Date.parse(s.start);
        const w = expected.figures(t.id, c, m, from, from + HOUR);
        assert.equal(s.events, w.events, `${c} ${m} ${s.start}: events`);
        assert.ok(Math.abs(s.value - w.value) <= (s.estimate ? 0.02 : 0) * w.value, `${c} ${m} ${s.start}: ${s.value} distinct, exactly ${w.value}`);
      }
    }
});
