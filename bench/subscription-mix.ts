/**
 * The benchmark's subscriptions: 10 per tenant, drawn from 13 templates that mix what customers ask for —
 * plain type lists, several types, exact/prefix/suffix attribute filters, `any` and `not`, a `source`, and
 * CESQL (`sql`) filters — so that a source event matches 1.58 subscriptions on average.
 * Two variants of the same 13 match the same events (bench/route-variants.ts compares the route's cost on them):
 * `DATA_TEMPLATES`, where every subscription filters on the event's data (`data.` paths), and
 * `TRANSFORM_TEMPLATES`, where every subscription also shapes what it delivers with a transform.
 * `matcherOf` compiles a subscription the way the route does, to count what a consumer should receive.
 */
import { compileFilters, type Filter } from '../platform/filters/subscription-filter.ts';

export interface SubscriptionSpec {
  name: string;
  types?: string[];
  source?: string;
  filters?: Filter[];
  transform?: string;
}

export const TEMPLATES: readonly SubscriptionSpec[] = [
  { name: 'payments out', types: ['payment.sent'] },
  { name: 'all payments', types: ['payment.sent', 'payment.received'] },
  { name: 'euro receipts', types: ['payment.received'], filters: [{ exact: { currency: 'EUR' } }] },
  { name: 'transfers of acct-1*', types: ['transfer.initiated', 'transfer.completed'], filters: [{ prefix: { subject: 'acct-1' } }] },
  { name: 'balances', types: ['balance.snapshot'] },
  { name: 'balances outside us', types: ['balance.snapshot'], filters: [{ not: { exact: { region: 'us' } } }] },
  { name: 'cards or transfers', filters: [{ any: [{ exact: { type: 'card.authorized' } }, { prefix: { type: 'transfer.' } }] }] },
  { name: 'usd payments (sql)', filters: [{ sql: "type LIKE 'payment.%' AND currency = 'USD'" }] },
  { name: 'eu card present (sql)', types: ['card.authorized'], filters: [{ sql: "region = 'eu' AND channel IN ('pos', 'atm')" }] },
  { name: 'payments of acct-*7', types: ['payment.sent'], filters: [{ suffix: { subject: '7' } }] },
  { name: 'ledger', filters: [{ prefix: { source: '/bank/ledger' } }] },
  { name: 'large transfers (sql)', types: ['transfer.completed'], filters: [{ sql: 'amount > 100000' }] },
  { name: 'card source', source: '/bank/cards', types: ['card.authorized'] },
];

/**
 * The same 13, each filtering on the event's data (bench/generator.ts: `account` is the subject, `currency` and
 * `amount_minor` the extensions' values, one field per type tells the type apart): each matches exactly the
 * events its namesake in TEMPLATES matches. Filters that test what data does not hold (region, channel, source)
 * keep their attribute and add a test of data.
 */
export const DATA_TEMPLATES: readonly SubscriptionSpec[] = [
  { name: 'payments out (data)', types: ['payment.sent'], filters: [{ sql: 'data.amount_minor > 0' }] },
  { name: 'all payments (data)', types: ['payment.sent', 'payment.received'], filters: [{ prefix: { 'data.counterparty.iban': 'DE' } }] },
  { name: 'euro receipts (data)', types: ['payment.received'], filters: [{ exact: { 'data.currency': 'EUR' } }] },
  { name: 'transfers of acct-1* (data)', types: ['transfer.initiated', 'transfer.completed'], filters: [{ prefix: { 'data.account': 'acct-1' } }] },
  { name: 'balances (data)', types: ['balance.snapshot'], filters: [{ sql: 'data.balance_minor >= 0' }] },
  { name: 'balances outside us (data)', types: ['balance.snapshot'], filters: [{ sql: "region <> 'us' AND data.available_minor >= 0" }] },
  { name: 'cards or transfers (data)', filters: [{ any: [{ sql: 'EXISTS data.card_last4' }, { prefix: { 'data.transfer_id': 'trf_' } }] }] },
  { name: 'usd payments (data)', filters: [{ sql: "type LIKE 'payment.%' AND data.currency = 'USD'" }] },
  { name: 'eu card present (data)', types: ['card.authorized'], filters: [{ sql: "region = 'eu' AND channel IN ('pos', 'atm') AND data.merchant.mcc >= 5000" }] },
  { name: 'payments of acct-*7 (data)', types: ['payment.sent'], filters: [{ suffix: { 'data.account': '7' } }] },
  { name: 'ledger (data)', filters: [{ sql: 'EXISTS data.as_of' }] },
  { name: 'large transfers (data)', types: ['transfer.completed'], filters: [{ sql: 'data.amount_minor > 100000' }] },
  { name: 'card source (data)', source: '/bank/cards', types: ['card.authorized'], filters: [{ sql: 'EXISTS data.merchant.name' }] },
];

/** A projection with a mask, as customers write them: the id, the amount and the currency kept, the account masked but for its last two characters. */
export const PROJECTION = '{ "id": $event.id, "amount": amount_minor, "currency": currency, "account": "****" & $substring(account, -2) }';

/** TEMPLATES, each with the transform PROJECTION: the same filters, the same matches. */
export const TRANSFORM_TEMPLATES: readonly SubscriptionSpec[] = TEMPLATES.map((t) => ({ ...t, name: `${t.name} (transform)`, transform: PROJECTION }));

export const SUBSCRIPTIONS_PER_TENANT = 10;

/** The templates tenant number `i` subscribes with (a different rotation for each tenant), from `templates` (TEMPLATES or a variant of it). */
export function subscriptionsOf(i: number, templates: readonly SubscriptionSpec[] = TEMPLATES): SubscriptionSpec[] {
  return Array.from({ length: SUBSCRIPTIONS_PER_TENANT }, (_, k) => templates[(i + k * 3) % templates.length]!);
}

/** True when `event` reaches a subscription of `spec` (types, source, filters), as the route decides. */
export function matcherOf(spec: SubscriptionSpec): (event: Record<string, unknown>) => boolean {
  const filters = compileFilters(spec.filters ?? []);
  const types = spec.types ? new Set(spec.types) : null;
  return (e) => (types === null || types.has(e['type'] as string)) && (spec.source === undefined || e['source'] === spec.source) && filters(e);
}
