/**
 * The demo `make run` plays against the running platform: creates a tenant, a filtered subscription, sends
 * payment events through the ingest API, reads the matching ones back over Server-Sent Events, and runs the
 * consumer SDK's CLI to write them into flat files; then a few ad events (impressions, clicks, a basket) and one
 * campaign's figures for today from the insights API.
 * Usage: tsx scripts/demo.ts <run dir with admin-key> [API URL]   (default: the local host's front door,
 * http://127.0.0.1:8080, which routes each path to the function that serves it)
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] ?? '.run/dev';
const admin = readFileSync(join(dir, 'admin-key'), 'utf8').trim();
const frontDoor = process.argv[3] ?? 'http://127.0.0.1:8080';
const urls = { subscriptions: frontDoor, gateway: frontDoor, ingest: frontDoor, insights: frontDoor };

async function call(base: string, key: string, method: string, path: string, body?: unknown, contentType = 'application/json') {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': contentType } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await res.json().catch(() => null)) as any;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const say = (s: string) => process.stdout.write(`demo: ${s}\n`);

const tenant = await call(urls.subscriptions, admin, 'POST', '/v1/tenants', { name: `Acme Payments ${new Date().toISOString().slice(11, 19)}` });
say(`created tenant ${tenant.id} with key ${tenant.key.key.slice(0, 12)}…`);
const sub = await call(urls.subscriptions, tenant.key.key, 'POST', '/v1/subscriptions', {
  name: 'large payments',
  types: ['com.acme.payment.sent'],
  filters: [{ sql: 'amount >= 100' }],
});
say(`subscription ${sub.id}: payment.sent with amount >= 100`);
await new Promise((r) => setTimeout(r, 600)); // the route follows subscription changes within its poll period

const payments = [
  { from: 'Bob', to: 'Alice', amount: 5 },
  { from: 'Carol', to: 'Dan', amount: 250 },
  { from: 'Erin', to: 'Frank', amount: 99 },
  { from: 'Grace', to: 'Heidi', amount: 1200 },
];
const batch = payments.map((p, i) => ({
  specversion: '1.0',
  id: `demo-${Date.now()}-${i}`,
  source: '/demo/ledger',
  type: 'com.acme.payment.sent',
  partitionkey: `acct-${p.from.toLowerCase()}`,
  amount: p.amount,
  datacontenttype: 'application/json',
  data: p,
}));
const accepted = await call(urls.ingest, tenant.key.key, 'POST', '/v1/events', batch, 'application/cloudevents-batch+json');
say(`ingested ${payments.length} payments (${JSON.stringify(accepted).slice(0, 80)}…); 2 of them match`);

// ad events for the insights function, counted while the rest of the demo runs (docs/insights.md)
const campaign = 'spring-sale';
const adAt = new Date().toISOString(); // event time decides the buckets: now, so that they count for today
const ads = [
  ...['ana', 'ben', 'cho', 'dev'].map((c) => ({ type: 'com.acme.ad.impression', data: { customerId: c, campaignId: campaign, adId: 'banner-1' } })),
  { type: 'com.acme.ad.impression', data: { customerId: 'ana', campaignId: campaign, adId: 'banner-2' } },
  ...['ana', 'cho'].map((c) => ({ type: 'com.acme.ad.click', data: { customerId: c, campaignId: campaign, adId: 'banner-1' } })),
  { type: 'com.acme.cart.add', data: { customerId: 'ana', productId: 'sku-42' } },
].map((e, i) => ({
  specversion: '1.0', id: `demo-ad-${Date.now()}-${i}`, source: '/demo/shop', type: e.type, time: adAt,
  partitionkey: e.data.customerId, datacontenttype: 'application/json', data: e.data,
}));
await call(urls.ingest, tenant.key.key, 'POST', '/v1/events', ads, 'application/cloudevents-batch+json');
say(`ingested ${ads.length} ad events for campaign ${campaign}: 5 impressions by 4 customers, 2 clicks, 1 cart.add after a click`);

const ac = new AbortController();
setTimeout(() => ac.abort(), 15000);
const res = await fetch(`${urls.gateway}/v1/subscriptions/${sub.id}/events`, {
  headers: { authorization: `Bearer ${tenant.key.key}`, accept: 'text/event-stream' },
  signal: ac.signal,
});
let buf = '';
let got = 0;
try {
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += Buffer.from(chunk).toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split('\n').find((l) => l.startsWith('data: '));
      const id = block.split('\n').find((l) => l.startsWith('id: '));
      if (!data) continue;
      const ce = JSON.parse(data.slice(6));
      say(`SSE ${id} ${ce.type}: ${ce.data.from} sent $${ce.data.amount} to ${ce.data.to}`);
      if (++got === 2) ac.abort();
    }
  }
} catch (err) {
  if ((err as Error).name !== 'AbortError') throw err;
}
// the consumer SDK a customer runs in its own data centre: the same subscription into flat files
const files = join(dir, 'consumer', sub.id);
say(`running the consumer SDK (pioneer-consumer run) into ${files}`);
const consumer = spawn(process.execPath, ['consumer-sdk/dist/cli.js', 'run'], {
  env: { ...process.env, PIONEER_URL: urls.gateway, PIONEER_API_KEY: tenant.key.key, PIONEER_SUBSCRIPTION: sub.id, PIONEER_DIR: files, PIONEER_LOG_LEVEL: 'warn' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
const lines = () => {
  if (!existsSync(files)) return [];
  return readdirSync(files).filter((f) => f.endsWith('.ndjson')).flatMap((f) => readFileSync(join(files, f), 'utf8').split('\n').filter(Boolean).map((l) => ({ file: f, line: l })));
};
const deadline = Date.now() + 15000;
while (lines().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
consumer.kill('SIGTERM');
await new Promise((r) => consumer.once('exit', r));
for (const { file, line } of lines()) {
  const { cursor, event } = JSON.parse(line);
  say(`file ${file}: ${cursor} ${event.data.from} sent $${event.data.amount} to ${event.data.to}`);
}
if (lines().length < 2) {
  say('the consumer wrote fewer than 2 events');
  process.exit(1);
}

// the campaign's figures for today (UTC), through the front door like every other call here
const insightsPath = (metric: string) => `/v1/insights/ads/${campaign}/${metric}?granularity=hour`;
const figures: Record<string, any> = {};
for (const until = Date.now() + 20000; Date.now() < until; await new Promise((r) => setTimeout(r, 300))) {
  const res = await fetch(urls.insights + insightsPath('clickToBasket'), { headers: { authorization: `Bearer ${tenant.key.key}` } });
  if (res.status === 404) continue; // not counted yet: the campaign is unknown until its first event is
  if (!res.ok) throw new Error(`GET ${insightsPath('clickToBasket')}: ${res.status} ${await res.text()}`);
  figures['clickToBasket'] = await res.json();
  if (figures['clickToBasket'].events >= 1) break;
}
for (const metric of ['impressions', 'clicks']) figures[metric] = await call(urls.insights, tenant.key.key, 'GET', insightsPath(metric));
say(`insights for campaign ${campaign}, today (UTC) so far (GET ${urls.insights}${insightsPath('…')}):`);
for (const metric of ['impressions', 'clicks', 'clickToBasket']) {
  const f = figures[metric];
  if (!f) {
    say(`  ${metric}: not counted within 20 s`);
    continue;
  }
  const hours = f.series.filter((p: any) => p.events > 0).map((p: any) => `${p.start.slice(11, 16)} ${p.value}/${p.events}`).join(', ');
  say(`  ${metric.padEnd(13)} ${f.value} customers, ${f.events} events${f.estimate ? ' (estimated)' : ''}; by hour (customers/events): ${hours}`);
}

writeFileSync(join(dir, 'demo-tenant.json'), JSON.stringify({ tenant: tenant.id, key: tenant.key.key, subscription: sub.id }, null, 2));
say(`${got} events over SSE. Tenant key and subscription saved in ${join(dir, 'demo-tenant.json')}. Try:`);
say(`  curl -N -H "Authorization: Bearer $(jq -r .key ${join(dir, 'demo-tenant.json')})" -H "Accept: text/event-stream" ${urls.gateway}/v1/subscriptions/${sub.id}/events`);
say(`  curl -H "Authorization: Bearer $(jq -r .key ${join(dir, 'demo-tenant.json')})" '${urls.insights}/v1/insights/ads/${campaign}/clicks?granularity=hour'`);
say(`  or the consumer SDK: PIONEER_URL=${urls.gateway} PIONEER_API_KEY=… PIONEER_SUBSCRIPTION=${sub.id} PIONEER_DIR=./events npx pioneer-consumer run`);
if (got < 2) process.exit(1);
