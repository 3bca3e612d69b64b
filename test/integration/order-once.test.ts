import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, cloudEvent, createTenant, createTopic, deps, killProcess, platformEnv, produce, randomName, readSse, sleep, spawnFunctions, startPlatform,
  structuredMessage, waitFor,
} from '../support/helpers.ts';

const KEYS = 50;
const PER_KEY = 60;
// on the cluster pair the platform scales out: four route processes share the partitions, two gateways serve
const ROUTES = deps().cluster ? 4 : 2;
const GATEWAYS = deps().cluster ? 2 : 1;

test(`order and once under concurrency: ${ROUTES} route processes, one killed with SIGKILL midway and restarted, read through ${GATEWAYS} gateway(s)`, { timeout: 300000 }, async () => {
  const topic = randomName('events');
  await createTopic(topic, 2 * ROUTES);
  const group = randomName('route');
  const env = platformEnv({ PIONEER_SOURCE_TOPICS: topic, PIONEER_ROUTE_GROUP: group, PIONEER_ROUTE_PORT: '0' });
  const p = await startPlatform(['subscriptions', 'gateway'], { PIONEER_ADMIN_KEY: env['PIONEER_ADMIN_KEY']! });
  const routes = await Promise.all(Array.from({ length: ROUTES }, () => spawnFunctions(['route'], env)));
  const gateways = [p.url('gateway')];
  const extraGateways = await Promise.all(Array.from({ length: GATEWAYS - 1 }, () => spawnFunctions(['gateway'], { ...env, PIONEER_GATEWAY_PORT: '0' })));
  gateways.push(...extraGateways.map((g) => g.urls['gateway']!));
  try {
    const tenants = await Promise.all([0, 1, 2].map(() => createTenant(p.url('subscriptions'), p.adminKey)));
    const subs = await Promise.all(
      tenants.map(async (t) => (await api(p.url('subscriptions'), t.key, 'POST', '/v1/subscriptions', { types: ['ledger.entry'] })).body.id as string),
    );
    await sleep(500);
    const tenantOfKey = (k: number) => tenants[k % tenants.length]!;
    const message = (k: number, seq: number) =>
      structuredMessage(cloudEvent(tenantOfKey(k).id, 'ledger.entry', { key: `acct-${k}`, seq }, { partitionkey: `acct-${k}` }));
    const wave = (from: number, to: number) => {
      const out = [];
      for (let seq = from; seq < to; seq++) for (let k = 0; k < KEYS; k++) out.push(message(k, seq));
      return out;
    };

    await produce(topic, wave(0, PER_KEY / 2));
    await sleep(300);
    await killProcess(routes[0]!.child, 'SIGKILL'); // mid-batch, most likely
    await produce(topic, wave(PER_KEY / 2, PER_KEY));
    await sleep(1000);
    routes[0] = await spawnFunctions(['route'], env);

    for (const [i, t] of tenants.entries()) {
      const expected = Array.from({ length: KEYS }, (_, k) => k).filter((k) => tenantOfKey(k) === t).length * PER_KEY;
      const gateway = gateways[i % gateways.length]!;
      const url = `${gateway}/v1/subscriptions/${subs[i]}/events`;
      const { events } = await readSse(url, t.consumerKey, { until: (e) => e.length >= expected, timeout: 120000 });
      assert.equal(events.length, expected, `tenant ${i}: every matched event once`);
      const perKey = new Map<string, number[]>();
      for (const e of events) {
        const ce = JSON.parse(e.data);
        assert.equal(ce.tenantid, t.id, 'only its own tenant’s events');
        const list = perKey.get(ce.data.key) ?? [];
        list.push(ce.data.seq);
        perKey.set(ce.data.key, list);
      }
      for (const [key, seqs] of perKey) assert.deepEqual(seqs, Array.from({ length: PER_KEY }, (_, s) => s), `${key}: every sequence number once, in order`);
      // nothing more arrives after the expected count (no late duplicates)
      const more = await api(gateway, t.consumerKey, 'GET', `/v1/subscriptions/${subs[i]}/events?after=${events[events.length - 1]!.id}`);
      assert.deepEqual(more.body.data, []);
    }
  } finally {
    for (const r of [...routes, ...extraGateways]) await killProcess(r.child, 'SIGTERM');
    await p.stop();
  }
});
