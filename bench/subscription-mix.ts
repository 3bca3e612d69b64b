/**
 * The benchmark's subscriptions: 10 per tenant, drawn from 13 templates that mix what customers ask for —
 * plain type lists, several types, exact/prefix/suffix attribute filters, `any` and `not`, a `source`, and
 * CESQL (`sql`) filters — so that a source event matches 1.58 subscriptions on average.
 * `matcherOf` compiles a subscription the way the route does, to count what a consumer should receive.
 */
import { compileFilters, type Filter } from '../platform/filters/subscription-filter.ts';

export interface SubscriptionSpec {
  name: string;
  types?: string[];
  source?: string;
  filters?: Filter[];
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

export const SUBSCRIPTIONS_PER_TENANT = 10;

/** The templates tenant number `i` subscribes with (a different rotation for each tenant). */
export function subscriptionsOf(i: number): SubscriptionSpec[] {
  return Array.from({ length: SUBSCRIPTIONS_PER_TENANT }, (_, k) => TEMPLATES[(i + k * 3) % TEMPLATES.length]!);
}

/** True when `event` reaches a subscription of `spec` (types, source, filters), as the route decides. */
export function matcherOf(spec: SubscriptionSpec): (event: Record<string, unknown>) => boolean {
  const filters = compileFilters(spec.filters ?? []);
  const types = spec.types ? new Set(spec.types) : null;
  return (e) => (types === null || types.has(e['type'] as string)) && (spec.source === undefined || e['source'] === spec.source) && filters(e);
}
