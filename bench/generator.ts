/**
 * The benchmark's source events: realistic financial CloudEvents (payments, transfers, card authorisations,
 * balance snapshots) for 100 tenants, with a Zipf-like spread over tenants and over each tenant's accounts,
 * 200–800-byte JSON payloads, keyed by the account, in the Kafka structured mode the ingest function writes
 * (one JSON value) or in binary mode (ce_ headers). Each event's data starts with `produced_at` (ms since the epoch: when it was due to be sent) and
 * `phase` (which benchmark phase sent it), so a consumer can measure source-to-handler latency per phase.
 *
 * `produceAtRate` sends at a fixed rate (catching up in bigger batches when a send was slow, so a slow producer
 * shows up as latency, not as a lower rate), `produceCount` as fast as the producer goes.
 */
import type { Message, Producer } from 'kafkajs';
import { encodeBinary, encodeStructured } from '../platform/events/kafka-binding.ts';
import type { CloudEventJson } from '../platform/events/cloudevent.ts';

/** mulberry32: small, fast, deterministic. */
export function createRandom(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Picks 0..n-1 with probability proportional to 1/(rank+1)^s. */
export function zipf(n: number, s: number, random: () => number): () => number {
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) cumulative[i] = total += 1 / Math.pow(i + 1, s);
  return () => {
    const x = random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

interface TypeSpec {
  type: string;
  source: string;
  weight: number;
}

/** Event types with their share of the traffic and their source. */
export const EVENT_TYPES: readonly TypeSpec[] = [
  { type: 'payment.sent', source: '/bank/payments', weight: 30 },
  { type: 'payment.received', source: '/bank/payments', weight: 25 },
  { type: 'transfer.initiated', source: '/bank/transfers', weight: 10 },
  { type: 'transfer.completed', source: '/bank/transfers', weight: 10 },
  { type: 'card.authorized', source: '/bank/cards', weight: 10 },
  { type: 'balance.snapshot', source: '/bank/ledger', weight: 15 },
];

const REGIONS = ['eu', 'eu', 'us', 'apac'] as const;
const CURRENCIES: Record<string, readonly string[]> = { eu: ['EUR', 'EUR', 'GBP', 'CHF'], us: ['USD'], apac: ['JPY', 'SGD', 'USD'] };
const CHANNELS = ['online', 'pos', 'atm', 'branch', 'api'] as const;
const MERCHANTS = ['Corner Grocer', 'Metro Transit', 'Cloud Hosting Ltd', 'Cafe Aroma', 'City Utilities', 'Bookshop & Co', 'Airline 42'];
const NAMES = ['Alice Martin', 'Bob Keller', 'Chen Wei', 'Dana Schulz', 'Emeka Obi', 'Fatima Haddad', 'Goran Novak', 'Hana Sato'];

export interface GeneratorOptions {
  tenants: string[];
  accountsPerTenant?: number;
  seed?: number;
  /** a tag that makes event ids unique across runs */
  runTag: string;
  /** the Kafka binding's mode: structured (one JSON value, as the ingest function writes) or binary (ce_ headers) */
  mode?: 'binary' | 'structured';
}

export interface Generated {
  event: CloudEventJson;
  message: Message;
}

export interface EventGenerator {
  /** The next event, stamped with `producedAt` and `phase`, and its Kafka record. */
  next(producedAt: number, phase: number): Generated;
}

export function createGenerator({ tenants, accountsPerTenant = 2000, seed = 7, runTag, mode = 'structured' }: GeneratorOptions): EventGenerator {
  const encode = mode === 'binary' ? encodeBinary : encodeStructured;
  const random = createRandom(seed);
  const pickTenant = zipf(tenants.length, 1.0, random);
  const pickAccount = zipf(accountsPerTenant, 1.1, random);
  const totalWeight = EVENT_TYPES.reduce((s, t) => s + t.weight, 0);
  const pickType = (): TypeSpec => {
    let x = random() * totalWeight;
    for (const t of EVENT_TYPES) if ((x -= t.weight) < 0) return t;
    return EVENT_TYPES[0]!;
  };
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const iban = () => `DE${String(Math.floor(random() * 1e9)).padStart(9, '0')}${String(Math.floor(random() * 1e11)).padStart(11, '0')}`;
  let seq = 0;

  function payload(spec: TypeSpec, account: string, producedAt: number, phase: number, amount: number, currency: string): Record<string, unknown> {
    const base: Record<string, unknown> = { produced_at: producedAt, phase, account, amount_minor: amount, currency };
    switch (spec.type) {
      case 'payment.sent':
      case 'payment.received':
        base['counterparty'] = { name: pick(NAMES), iban: iban() };
        base['reference'] = `INV-${Math.floor(random() * 1e6)}`;
        break;
      case 'transfer.initiated':
      case 'transfer.completed':
        base['to_account'] = `acct-${Math.floor(random() * accountsPerTenant)}`;
        base['transfer_id'] = `trf_${seq.toString(36)}`;
        base['scheme'] = pick(['SEPA', 'SEPA_INSTANT', 'SWIFT', 'ACH']);
        break;
      case 'card.authorized':
        base['merchant'] = { name: pick(MERCHANTS), mcc: String(5000 + Math.floor(random() * 999)) };
        base['card_last4'] = String(Math.floor(random() * 10000)).padStart(4, '0');
        break;
      default:
        base['balance_minor'] = Math.floor(random() * 1e9);
        base['available_minor'] = Math.floor(random() * 1e9);
        base['as_of'] = new Date(producedAt).toISOString().slice(0, 10);
    }
    // pad to a size drawn from 200–800 bytes of JSON
    const target = 200 + Math.floor(random() * 601);
    const len = JSON.stringify(base).length + 10; // `,"memo":""`
    if (len < target) base['memo'] = 'm'.repeat(target - len);
    return base;
  }

  return {
    next(producedAt, phase) {
      const t = pickTenant();
      const spec = pickType();
      const region = pick(REGIONS);
      const currency = pick(CURRENCIES[region]!);
      const account = `acct-${pickAccount()}`;
      const amount = spec.type === 'balance.snapshot' ? 0 : Math.floor(Math.exp(random() * 14));
      const event: CloudEventJson = {
        specversion: '1.0',
        id: `${runTag}-${(seq++).toString(36)}`,
        source: spec.source,
        type: spec.type,
        subject: account,
        time: new Date(producedAt).toISOString(),
        datacontenttype: 'application/json',
        tenantid: tenants[t]!,
        partitionkey: `${tenants[t]}/${account}`,
        region,
        currency,
        channel: pick(CHANNELS),
        amount: String(amount),
        data: payload(spec, account, producedAt, phase, amount, currency),
      };
      return { event, message: encode(event) };
    },
  };
}

export interface ProduceStats {
  sent: number;
  seconds: number;
  /** events per second actually sent */
  rate: number;
}

/**
 * Sends `rate` events/s for `seconds` (or until `stop()` says so), one send every `tickMs` with what is due
 * (at most `maxBatch`), at most `inFlight` sends outstanding. `onEvent` sees each event (to count expected deliveries).
 */
export async function produceAtRate(opts: {
  producer: Producer;
  topic: string;
  generator: EventGenerator;
  rate: number;
  seconds: number;
  phase: number;
  tickMs?: number;
  inFlight?: number;
  /** at most this many events in one send (a producer that fell behind catches up in several) */
  maxBatch?: number;
  onEvent?: (event: CloudEventJson) => void;
  stop?: () => boolean;
}): Promise<ProduceStats> {
  const { producer, topic, generator, rate, seconds, phase, tickMs = 10, inFlight = 4, maxBatch = 1000, onEvent, stop } = opts;
  const total = Math.round(rate * seconds);
  const start = Date.now();
  const pending = new Set<Promise<unknown>>();
  let sent = 0;
  let failure: unknown;
  const maxTicks = Math.ceil((seconds * 1000) / tickMs) * 20 + 1000;
  for (let tick = 0; tick < maxTicks && sent < total && failure === undefined; tick++) {
    if (stop?.()) break;
    const now = Date.now();
    const due = Math.min(total, Math.floor(((now - start) * rate) / 1000));
    if (due > sent && pending.size < inFlight) {
      const messages: Message[] = [];
      for (; sent < due && messages.length < maxBatch; sent++) {
        const { event, message } = generator.next(Math.round(start + (sent * 1000) / rate), phase);
        onEvent?.(event);
        messages.push(message);
      }
      const p = producer.send({ topic, acks: -1, messages }).catch((err) => (failure = err));
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await new Promise((r) => setTimeout(r, Math.max(1, tickMs - (Date.now() - now))));
  }
  await Promise.all(pending);
  if (failure !== undefined) throw failure;
  const secondsTaken = (Date.now() - start) / 1000;
  return { sent, seconds: secondsTaken, rate: Math.round(sent / secondsTaken) };
}

/** Sends `count` events as fast as the producer goes: batches of `batch`, `inFlight` sends outstanding. */
export async function produceCount(opts: {
  producer: Producer;
  topic: string;
  generator: EventGenerator;
  count: number;
  phase: number;
  batch?: number;
  inFlight?: number;
}): Promise<ProduceStats> {
  const { producer, topic, generator, count, phase, batch = 500, inFlight = 4 } = opts;
  const start = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const n = Math.min(batch, count - next);
      next += n;
      const now = Date.now();
      const messages = Array.from({ length: n }, () => generator.next(now, phase).message);
      await producer.send({ topic, acks: -1, messages });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = (Date.now() - start) / 1000;
  return { sent: count, seconds, rate: Math.round(count / seconds) };
}
