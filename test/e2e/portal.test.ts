/**
 * The customer portal at /portal, driven in a real Chromium (Debian's `chromium`, through playwright-core): an
 * admin lists tenants, creates one and issues a key; a tenant signs in, sees the API's message next to a bad
 * filter and a bad transform, creates a subscription, sees its events arrive in the live tail (as text, never as
 * markup), replays a dead letter, disables and enables the endpoint, rotates its secret, edits and deletes, sees
 * a campaign's insights as a chart; tenant B's key sees none of A's data; the page works at a phone's width.
 * Throughout: no key in any URL the browser asked for, no CSP violation, no script error. Screenshots of what
 * the browser saw go to test-output/portal/.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { api, createTenant, createTopic, randomName, ROOT, routeEnv, startPlatform, waitFor, type TestPlatform } from '../support/helpers.ts';
import { deliverEnv, ownRedis, startReceiver, type Receiver } from '../integration/deliver-receiver.ts';

const SHOTS = join(ROOT, 'test-output', 'portal');
const topic = randomName('portal');
const redis = ownRedis();
let p: TestPlatform;
let door: string;
let browser: Browser;
let receiver: Receiver;
let failing = true;
let a: { id: string; key: string; consumerKey: string };
let b: { id: string; key: string; consumerKey: string };
let subId = '';
const type = randomName('payment.sent');
/** Every URL the browser requested, every console message and page error, across all contexts. */
const requested: string[] = [];
const consoleLines: string[] = [];
const pageErrors: string[] = [];

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  await createTopic(topic, 1);
  await createTopic(`${topic}.dlq`, 1);
  p = await startPlatform(['subscriptions', 'route', 'gateway', 'deliver', 'ingest', 'insights'], {
    PIONEER_REDIS_URL: redis.url,
    ...routeEnv(topic),
    PIONEER_INSIGHTS_GROUP: randomName('insights'),
    PIONEER_INGEST_TOPIC: topic,
    PIONEER_FRONT_DOOR_PORT: '0',
    ...deliverEnv(),
  });
  door = p.host.frontDoor!.url;
  a = await createTenant(door, p.adminKey, randomName('tenant-a'));
  b = await createTenant(door, p.adminKey, randomName('tenant-b'));
  receiver = await startReceiver(() => ({ status: failing ? 500 : 204 }));
  browser = await chromium.launch({ executablePath: process.env['PIONEER_TEST_CHROMIUM'] ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
});
after(async () => {
  await browser?.close();
  await receiver?.close();
  await p?.stop();
  redis.stop();
});

async function newPage(viewport = { width: 1280, height: 900 }): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport, ...(viewport.width < 500 ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}) });
  context.on('request', (r) => requested.push(r.url()));
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => pageErrors.push(e.message));
  return { context, page };
}

async function signIn(page: Page, key: string): Promise<void> {
  await page.goto(`${door}/portal`);
  await page.fill('#api-key', key);
  await page.click('button[type=submit]');
  await page.waitForSelector('#who');
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

async function ingest(key: string, events: Record<string, unknown>[]): Promise<void> {
  const res = await api(door, key, 'POST', '/v1/events', JSON.stringify(events), { 'content-type': 'application/cloudevents-batch+json' });
  assert.equal(res.status, 202, JSON.stringify(res.body));
}
const event = (data: Record<string, unknown>, eventType = type) => ({
  specversion: '1.0', id: randomName('ev'), source: '/portal/test', type: eventType, time: new Date().toISOString(),
  datacontenttype: 'application/json', data, partitionkey: 'acct-1',
});
const campaign = randomName('spring-sale');

test('the platform serves the page and its modules itself, under a strict Content-Security-Policy', async () => {
  const res = await fetch(`${door}/portal`);
  assert.equal(res.status, 200);
  const csp = res.headers.get('content-security-policy') ?? '';
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /default-src 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|http/);
  const page = await res.text();
  assert.doesNotMatch(page, /<script(?![^>]*\bsrc=)[^>]*>/, 'an inline script');
  assert.doesNotMatch(page, /https?:\/\//, 'an asset from elsewhere');
  const vendor = await fetch(`${door}/portal/vendor/preact-htm.js`);
  assert.equal(vendor.status, 200);
  assert.match(vendor.headers.get('content-type') ?? '', /javascript/);
  assert.equal((await fetch(`${door}/portal/../package.json`)).status, 404);
  assert.equal((await fetch(`${door}/portal/nothing.js`)).status, 404);
});

test('the platform team signs in with the admin key, lists tenants, creates one and issues a consumer key; revoked, that key is signed out', async () => {
  const { context, page } = await newPage();
  await signIn(page, p.adminKey);
  const row = page.locator(`tr[data-id="${a.id}"]`);
  await row.waitFor();
  await row.locator('select').selectOption('consumer');
  await row.locator('button.issue-key').click();
  const issued = (await page.locator('#issued-key').textContent())!.trim();
  const me = await api(door, issued, 'GET', '/v1/keys/current');
  assert.equal(me.status, 200);
  assert.deepEqual([me.body.role, me.body.tenant_id], ['consumer', a.id]);
  // a new tenant from the form: its first key (role tenant) is shown once, and the list has it
  const name = randomName('tenant-c');
  await page.fill('#tenant-name', name);
  await page.click('form.row button[type=submit]');
  await page.locator('.issued', { hasText: name }).waitFor();
  const first = await api(door, (await page.locator('#issued-key').textContent())!.trim(), 'GET', '/v1/keys/current');
  assert.equal(first.body.role, 'tenant');
  await page.locator('tr', { hasText: first.body.tenant_id }).waitFor();
  await shot(page, 'admin-tenants');
  await page.click('#sign-out');
  await page.waitForSelector('#api-key');
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'the key stays in storage after signing out');

  // a key revoked while it is signed in: its next call signs it out, and the key leaves the tab
  await signIn(page, issued);
  assert.equal((await api(door, p.adminKey, 'DELETE', `/v1/keys/${me.body.id}`)).status, 204);
  await page.reload();
  await page.locator('.error', { hasText: 'no longer valid' }).waitFor();
  await page.waitForSelector('#api-key');
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await context.close();
});

test("a tenant sees the API's messages next to a bad filter and a bad transform, then creates a subscription", async () => {
  const { context, page } = await newPage();
  await signIn(page, a.key);
  await page.waitForSelector('#no-subscriptions');
  await page.fill('#sub-name', 'big payments');
  await page.fill('#sub-types', type);
  await page.fill('#sub-filters', '[{"sql": "data.amount >"}]');
  await page.fill('#sub-transform', '{ "amount": amount, "note": note ');
  await page.fill('#sub-sink', receiver.url);
  await page.click('.subscription-form button[type=submit]');
  // what the page shows under each field is what the API answers for the same body
  const direct = await api(door, a.key, 'POST', '/v1/subscriptions', { name: 'x', types: [type], filters: [{ sql: 'data.amount >' }] });
  assert.equal(direct.status, 400);
  const filterMessage = (direct.body.errors as { field: string; message: string }[]).find((e) => e.field.startsWith('filters'))!;
  const filterError = page.locator('[data-field="filters"]');
  await filterError.first().waitFor();
  assert.ok((await filterError.allTextContents()).some((t) => t.includes(filterMessage.message)), `${await filterError.allTextContents()} vs ${filterMessage.message}`);
  assert.equal(await page.getAttribute('#sub-filters', 'aria-invalid'), 'true');
  assert.equal(await page.getAttribute('#sub-filters', 'aria-describedby'), 'sub-filters-error');
  // the key is in this tab's session storage only: no cookie, nothing in local storage
  assert.deepEqual(await page.evaluate(() => [localStorage.length, document.cookie, sessionStorage.length]), [0, '', 1]);
  await shot(page, 'tenant-bad-filter');

  await page.fill('#sub-filters', '[{"sql": "data.amount > 100"}]');
  await page.click('.subscription-form button[type=submit]');
  const transformError = page.locator('[data-field="transform"]');
  await transformError.first().waitFor();
  assert.match((await transformError.first().textContent())!, /^transform: /);
  assert.equal(await page.locator('[data-field="filters"]').count(), 0);

  await page.fill('#sub-transform', '{ "amount": amount, "note": note }');
  await page.click('.subscription-form button[type=submit]');
  await page.waitForURL(/#\/subscriptions\/sub_/);
  subId = decodeURIComponent(page.url().split('/').pop()!);
  const sub = await api(door, a.key, 'GET', `/v1/subscriptions/${subId}`);
  assert.equal(sub.status, 200);
  assert.deepEqual([sub.body.name, sub.body.types, sub.body.filters, sub.body.sink], ['big payments', [type], [{ sql: 'data.amount > 100' }], receiver.url]);
  await page.locator('h1', { hasText: 'big payments' }).waitFor();
  await context.close();
});

test("events arrive in the live tail as text, a dead letter is replayed, the endpoint disabled and enabled, the secret rotated", async () => {
  const { context, page } = await newPage();
  await signIn(page, a.key);
  await page.goto(`${door}/portal#/subscriptions/${subId}`);
  await page.click('#tail-start');
  await page.waitForSelector('#tail-status[data-status="live"]');
  // the route has known the subscription for seconds by now (it reads the tenant's subscriptions every 100 ms)
  const markup = '<img src=x id=pwned onerror=document.title=1>';
  await ingest(a.key, [event({ amount: 5, note: 'small' }), event({ amount: 500, note: markup })]);
  const item = page.locator('#tail-events li');
  await item.first().waitFor({ timeout: 30_000 });
  assert.equal(await item.count(), 1, 'the filtered-out event reached the tail');
  const text = (await item.first().textContent())!;
  assert.ok(text.includes(markup), text);
  assert.ok(text.includes(type));
  assert.equal(await page.locator('#pwned').count(), 0, 'event data became markup');
  await shot(page, 'tenant-live-tail');

  // the receiver answers 500 to every attempt: the event dies after the retry schedule, and shows as a dead letter
  await page.locator('#dead-letters li').first().waitFor({ timeout: 30_000 });
  assert.match((await page.locator('#dead-letters li').first().textContent())!, /500/);
  assert.ok(await page.locator('.outcome-dead').count() >= 1);
  await shot(page, 'tenant-dead-letter');
  failing = false;
  const before = receiver.received.length;
  await page.click('#replay-dead-letters');
  await page.locator('.note', { hasText: 'Queued 1 dead letters' }).waitFor();
  await waitFor(() => receiver.received.slice(before).some((r) => JSON.parse(r.body).data.note === markup), { message: 'the replayed delivery' });
  await page.waitForSelector('#no-dead-letters', { timeout: 15_000 });
  await page.locator('.outcome-delivered').first().waitFor({ timeout: 15_000 });
  assert.deepEqual((await api(door, a.key, 'GET', `/v1/subscriptions/${subId}/dead-letters`)).body.data, []);

  await page.click('#endpoint-disable');
  await page.locator('#endpoint-state', { hasText: 'disabled' }).waitFor();
  assert.equal((await api(door, a.key, 'GET', `/v1/subscriptions/${subId}/endpoint`)).body.state, 'disabled');
  await page.click('#endpoint-enable');
  await page.locator('#endpoint-state', { hasText: 'enabled' }).waitFor();
  assert.equal((await api(door, a.key, 'GET', `/v1/subscriptions/${subId}/endpoint`)).body.state, 'enabled');

  const old = (await api(door, a.key, 'GET', `/v1/subscriptions/${subId}/endpoint/secret`)).body.secret;
  await page.click('#rotate-secret');
  await page.locator('.note', { hasText: 'Rotated' }).waitFor();
  const shown = (await page.locator('#endpoint-secret').textContent())!.trim();
  const now = (await api(door, a.key, 'GET', `/v1/subscriptions/${subId}/endpoint/secret`)).body.secret;
  assert.equal(shown, now);
  assert.notEqual(now, old);
  await shot(page, 'tenant-endpoint');

  // the charts: one event in the buffer (the small payment was filtered out), and no lag once it is delivered
  await page.goto(`${door}/portal#/subscriptions`);
  const buffers = page.locator('.chart', { hasText: 'Events in each buffer' });
  await buffers.locator('svg text', { hasText: 'big payments' }).waitFor();
  assert.equal(await buffers.locator('.chart-value').textContent(), '1');
  await page.locator('.chart', { hasText: 'lag' }).locator('.chart-value', { hasText: /^0 s$/ }).waitFor({ timeout: 15_000 });
  await shot(page, 'tenant-subscriptions');
  await context.close();
});

test('a tenant edits a subscription (the API refuses a bad transform there too) and deletes one', async () => {
  const other = await api(door, a.key, 'POST', '/v1/subscriptions', { name: 'to delete', types: ['x.y'] });
  assert.equal(other.status, 201);
  const { context, page } = await newPage();
  await signIn(page, a.key);
  await page.goto(`${door}/portal#/subscriptions/${subId}`);
  await page.fill('#sub-name', 'large payments');
  await page.fill('#sub-transform', '$nope(');
  await page.click('.subscription-form button[type=submit]');
  await page.locator('[data-field="transform"]').first().waitFor();
  assert.equal((await api(door, a.key, 'GET', `/v1/subscriptions/${subId}`)).body.name, 'big payments', 'a refused edit changed something');
  await page.fill('#sub-transform', '');
  await page.click('.subscription-form button[type=submit]');
  await page.locator('h1', { hasText: 'large payments' }).waitFor();
  const edited = (await api(door, a.key, 'GET', `/v1/subscriptions/${subId}`)).body;
  assert.equal(edited.name, 'large payments');
  assert.equal(edited.transform, undefined);

  await page.goto(`${door}/portal#/subscriptions/${other.body.id}`);
  await page.click('#delete-subscription');
  await page.click('#confirm-delete');
  await page.waitForURL(/#\/subscriptions$/);
  await page.locator(`tr[data-id="${subId}"]`).waitFor();
  assert.equal(await page.locator(`tr[data-id="${other.body.id}"]`).count(), 0);
  assert.equal((await api(door, a.key, 'GET', `/v1/subscriptions/${other.body.id}`)).status, 404);
  await context.close();
});

test("a campaign's insights show as a chart", async () => {
  await ingest(a.key, ['ana', 'ben', 'cho', 'ana'].map((customerId) => event({ customerId, campaignId: campaign, adId: 'banner-1' }, 'com.acme.ad.click')));
  await waitFor(async () => (await api(door, a.key, 'GET', `/v1/insights/ads/${campaign}/clicks`)).body?.events === 4, { timeout: 30_000, message: 'the insights function to count the clicks' });
  const { context, page } = await newPage();
  await signIn(page, a.key);
  await page.click('a[href="#/insights"]');
  await page.fill('#campaign', campaign);
  await page.selectOption('#metric', 'clicks');
  for (const range of ['week', 'day']) {
    await page.selectOption('#range', range);
    await page.click('form.row button[type=submit]');
    await page.locator('#insights-figures', { hasText: '3 distinct customers, 4 events' }).waitFor();
    // one column per hour, the three customers in the last ones (two, should the clicks straddle an hour)
    const columns = page.locator('.chart svg rect');
    assert.equal(await columns.count(), range === 'day' ? 24 : 168);
    const values = (await page.locator('.chart svg rect title').allTextContents()).map((t) => Number(/: (\d+)$/.exec(t)![1]));
    assert.ok(Math.max(...values) <= 3 && values.reduce((x, y) => x + y, 0) >= 3 && values.slice(0, -2).every((v) => v === 0), values.join(','));
  }
  await shot(page, 'tenant-insights');
  await context.close();
});

test("tenant B's key sees none of A's data", async () => {
  const { context, page } = await newPage();
  await signIn(page, b.key);
  await page.waitForSelector('#no-subscriptions');
  assert.equal(await page.locator(`text=${subId}`).count(), 0);
  assert.equal(await page.locator('text=large payments').count(), 0);
  await page.goto(`${door}/portal#/subscriptions/${subId}`);
  await page.waitForSelector('#not-found');
  assert.equal(await page.locator('#tail-start').count(), 0);
  assert.equal(await page.locator('#dead-letters, #endpoint-state').count(), 0);
  await shot(page, 'tenant-b-isolated');
  await page.click('a[href="#/insights"]');
  await page.fill('#campaign', campaign);
  await page.click('form.row button[type=submit]');
  await page.locator('.error', { hasText: /not found/i }).waitFor();
  assert.equal(await page.locator('#insights-figures').count(), 0);
  // and A's subscription is as it was
  assert.equal((await api(door, a.key, 'GET', `/v1/subscriptions/${subId}`)).body.name, 'large payments');
  await context.close();
});

test("the portal works at a phone's width, for a consumer key too", async () => {
  const { context, page } = await newPage({ width: 390, height: 844 });
  await signIn(page, a.consumerKey);
  await page.locator(`tr[data-id="${subId}"]`).waitFor();
  assert.equal(await page.locator('.subscription-form').count(), 0, 'a consumer key was offered a change');
  const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(await overflow(), 0, 'the list is wider than the phone');
  await shot(page, 'phone-subscriptions');
  await page.click(`tr[data-id="${subId}"] a`);
  await page.click('#tail-start');
  await page.waitForSelector('#tail-status[data-status="live"]');
  await ingest(a.key, [event({ amount: 700, note: 'a long note '.repeat(30) })]);
  await page.locator('#tail-events li').first().waitFor({ timeout: 30_000 });
  assert.equal(await page.locator('#tail-events li').count(), 1);
  // stopped, then from the oldest buffered event: both payments the filter let through, the newest first
  await page.click('#tail-stop');
  await page.waitForSelector('#tail-status[data-status="stopped"]');
  await page.click('#tail-oldest');
  await page.waitForSelector('#tail-status[data-status="live"]');
  await waitFor(async () => (await page.locator('#tail-events li').count()) === 2, { message: 'the buffered events in the tail' });
  assert.match((await page.locator('#tail-events li').first().textContent())!, /"amount": 700/);
  assert.match((await page.locator('#tail-events li').last().textContent())!, /"amount": 500/);
  await page.locator('#endpoint-state').waitFor();
  assert.equal(await page.locator('#replay-dead-letters, #rotate-secret').count(), 0);
  assert.equal(await overflow(), 0, 'the subscription page is wider than the phone');
  await shot(page, 'phone-subscription');
  await context.close();
});

test('no key in any URL the browser asked for, no CSP violation, no script error', () => {
  assert.ok(requested.length > 20);
  for (const key of [p.adminKey, a.key, a.consumerKey, b.key]) assert.deepEqual(requested.filter((u) => u.includes(key)), []);
  assert.deepEqual(requested.filter((u) => !u.startsWith(door)), [], 'a request to another origin');
  assert.deepEqual(consoleLines.filter((l) => /Content.Security.Policy|Trusted Type/i.test(l)), []);
  assert.deepEqual(pageErrors, []);
});
