/**
 * CESQL predicate evaluation speed against hand-written JavaScript doing the same check, measured in
 * the same run on the same events; then LIKE on adversarial patterns and values (the `%a%a…%b` family
 * that made a backtracking RegExp take seconds, patterns near the 4,096-character limit, values up to
 * 1 MB), in ns per evaluation, beside the RegExp the matcher replaced where that one finishes at all.
 * Prints tables and writes bench/results/cesql.json.
 *
 *   npx tsx bench/cesql.ts
 *   npx tsx bench/cesql.ts --adversarial     only the adversarial LIKE table
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileCesql, MAX_EVALUATION_STEPS } from '../platform/filters/cesql/index.ts';

type Event = Record<string, unknown>;

interface Case {
  name: string;
  expression: string;
  handWritten: (e: Event) => boolean;
}

const cases: Case[] = [
  {
    name: 'type prefix and amount',
    expression: "type LIKE 'payment.%' AND amount > 100",
    handWritten: (e) => typeof e.type === 'string' && e.type.startsWith('payment.') && typeof e.amount === 'number' && e.amount > 100,
  },
  {
    name: 'tenant, subject set or region',
    expression: "tenantid = 'acme' AND (subject IN ('a','b','c') OR EXISTS region)",
    handWritten: (e) =>
      e.tenantid === 'acme' && (e.subject === 'a' || e.subject === 'b' || e.subject === 'c' || (e.region !== undefined && e.region !== null)),
  },
  {
    name: 'source and type set',
    expression: "source = 'https://bank.example/ledger' AND type IN ('payment.sent', 'payment.received')",
    handWritten: (e) => e.source === 'https://bank.example/ledger' && (e.type === 'payment.sent' || e.type === 'payment.received'),
  },
  {
    name: 'guarded extension, functions',
    expression: "EXISTS region AND UPPER(region) = 'EU' AND LENGTH(subject) <= 3",
    handWritten: (e) =>
      typeof e.region === 'string' && e.region.toUpperCase() === 'EU' && typeof e.subject === 'string' && [...e.subject].length <= 3,
  },
];

/** A deterministic mix of events: several types, tenants, subjects, with and without `region`. */
function makeEvents(count: number): Event[] {
  const types = ['payment.sent', 'payment.received', 'balance.snapshot', 'ad.click', 'payment.refunded'];
  const tenants = ['acme', 'globex', 'initech'];
  const subjects = ['a', 'b', 'c', 'd', 'acct-1', 'acct-22'];
  const events: Event[] = [];
  let seed = 42;
  const next = (n: number): number => {
    // mulberry32: small, deterministic, and without the correlated low bits of a plain LCG.
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) % n);
  };
  for (let i = 0; i < count; i++) {
    const event: Event = {
      specversion: '1.0',
      id: `evt-${i}`,
      source: next(4) === 0 ? 'https://ads.example/tracker' : 'https://bank.example/ledger',
      type: types[next(types.length)],
      subject: subjects[next(subjects.length)],
      time: '2024-06-13T10:00:00Z',
      datacontenttype: 'application/json',
      tenantid: tenants[next(tenants.length)],
      partitionkey: `acct-${next(1000)}`,
      amount: next(300),
      data: { note: 'ignored by CESQL' },
    };
    if (next(3) === 0) event.region = next(2) === 0 ? 'eu' : 'us';
    events.push(event);
  }
  // Events reach the route function as JSON; parsing them gives strings as they are in production
  // (not the interned constants of this file, which would flatter pointer-equal comparisons).
  return JSON.parse(JSON.stringify(events)) as Event[];
}

/** Runs `predicate` over the events for about `ms` milliseconds; returns evaluations per second. */
function measure(predicate: (e: Event) => boolean, events: Event[], ms: number): { perSecond: number; matched: number } {
  let matched = 0;
  let evaluations = 0;
  const deadline = performance.now() + ms;
  const start = performance.now();
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < events.length; i++) if (predicate(events[i] as Event)) matched++;
    evaluations += events.length;
    now = performance.now();
  }
  return { perSecond: evaluations / ((now - start) / 1000), matched };
}

interface AdversarialCase {
  name: string;
  /** A LIKE pattern against `subject`, or a whole expression. */
  pattern?: string;
  expression?: string;
  value: string;
  event?: Record<string, unknown>;
  /** The previous matcher (an anchored backtracking RegExp) is timed only where it finishes. */
  regexp?: boolean;
}

/** Strings as the route has them: flat, from JSON.parse (not the ropes `repeat` builds). */
const flat = (s: string): string => JSON.parse(JSON.stringify(s)) as string;
const as = (n: number): string => flat('a'.repeat(n));

const family = '%a%a%a%a%a%a%a%a%b';
const adversarialCases: AdversarialCase[] = [
  ...[20, 24, 45, 60, 1_000, 100_000].map((n) => ({ name: `${family}, ${n.toLocaleString('en-US')} × a`, pattern: family, value: as(n), regexp: n <= 24 })),
  { name: `${family}%, 100,000 × a`, pattern: `${family}%`, value: as(100_000) },
  { name: `%a%…%b (4,063 chars), 100,000 × a`, pattern: `%${'a%'.repeat(2030)}b`, value: as(100_000) },
  { name: `%a%…%b% (4,064 chars), 100,000 × a`, pattern: `%${'a%'.repeat(2030)}b%`, value: as(100_000) },
  { name: `%a_a_…b% (4,063 chars), 100,000 × a`, pattern: `%${'a_'.repeat(2030)}b%`, value: as(100_000) },
  { name: `%a_a_…b% (4,063 chars), 100,000 × a😀`, pattern: `%${'a_'.repeat(2030)}b%`, value: flat('a😀'.repeat(50_000)) },
  { name: `%a_b%, 100,000 × a`, pattern: '%a_b%', value: as(100_000) },
  { name: `%_…_b% (4,002 chars), 100,000 × a`, pattern: `%${'_'.repeat(4000)}b%`, value: as(100_000) },
  { name: `%ab…ab_%ba…ba (4,062 chars), 50,000 × ab`, pattern: `%${'ab'.repeat(1015)}_%${'ba'.repeat(1015)}`, value: flat('ab'.repeat(50_000)) },
  { name: `%needle%, 1,000,000 chars`, pattern: '%needle%', value: flat(`${'x'.repeat(999_994)}needle`), regexp: true },
  { name: `acct-%-eu, 1,000,000 chars`, pattern: 'acct-%-eu', value: flat(`acct-${'x'.repeat(999_992)}-eu`), regexp: true },
  { name: 'LENGTH, 100,000 × a😀', expression: 'LENGTH(subject) = 1', value: flat('a😀'.repeat(100_000)) },
  { name: 'SUBSTRING, 100,000 × a😀', expression: "SUBSTRING(subject, 100000, 5) = 'x'", value: flat('a😀'.repeat(100_000)) },
  { name: 'UPPER, 200,000 chars', expression: "UPPER(subject) = 'x'", value: as(200_000) },
  { name: 'TRIM, 200,000 spaces then x', expression: "TRIM(subject) = 'x'", value: flat(`y${' '.repeat(200_000)}x`) },
  { name: 'CONCAT of 3, 200,000 chars', expression: "CONCAT(subject, subject, subject) = 'x'", value: as(200_000) },
  { name: 'INT, 200,000 digits', expression: 'INT(subject) = 1', value: flat('0'.repeat(200_000)) },
  {
    name: 'an object attribute as JSON',
    expression: 'LENGTH(obj) = 1',
    value: '',
    event: JSON.parse(JSON.stringify({ obj: { list: Array.from({ length: 5_000 }, (_, i) => ({ k: i, v: 'xyz' })) } })) as Record<string, unknown>,
  },
];

/**
 * ns per call of `run`: the fastest of 5 batches of about `ms / 5` each (at least 2 calls a batch),
 * so that other work on a shared machine shows less in the figure.
 */
function nsPerCall(run: () => void, ms: number): number {
  let best = Infinity;
  for (let batch = 0; batch < 5; batch++) {
    let calls = 0;
    const start = performance.now();
    let now = start;
    while (calls < 2 || now - start < ms / 5) {
      run();
      calls++;
      now = performance.now();
    }
    best = Math.min(best, ((now - start) * 1e6) / calls);
  }
  return best;
}

function adversarial(): Record<string, unknown>[] {
  const rows = [];
  for (const c of adversarialCases) {
    const compiled = compileCesql(c.expression ?? `subject LIKE '${c.pattern}'`);
    const event = c.event ?? { subject: c.value };
    const budget = { steps: MAX_EVALUATION_STEPS };
    const verdict = compiled.check(event, budget);
    const steps = MAX_EVALUATION_STEPS - budget.steps;
    const ns = nsPerCall(() => compiled.matches(event), 300);
    let regexpNs: number | undefined;
    if (c.regexp && c.pattern !== undefined) {
      const source = c.pattern.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&').replace(/%/g, '.*').replace(/_/g, '.');
      const regexp = new RegExp(`^${source}$`, 'su');
      regexpNs = nsPerCall(() => regexp.test(c.value), 300);
    }
    rows.push({
      name: c.name,
      valueChars: c.value.length,
      verdict,
      steps,
      nsPerEvaluation: Math.round(ns),
      nsPerStep: steps > 0 ? Number((ns / steps).toFixed(2)) : null,
      previousRegexpNsPerEvaluation: regexpNs === undefined ? null : Math.round(regexpNs),
    });
  }
  const fmt = (n: number): string => n.toLocaleString('en-US');
  console.log(`\nAdversarial filters and values (budget ${fmt(MAX_EVALUATION_STEPS)} steps per event; the fastest of 5 batches)\n`);
  console.log(['case'.padEnd(44), 'verdict'.padStart(15), 'steps'.padStart(10), 'ns/eval'.padStart(12), 'ns/step'.padStart(8), 'RegExp ns/eval'.padStart(15)].join(' '));
  for (const r of rows) {
    console.log(
      [
        String(r.name).padEnd(44),
        String(r.verdict).padStart(15),
        fmt(r.steps as number).padStart(10),
        fmt(r.nsPerEvaluation as number).padStart(12),
        (r.nsPerStep === null ? '-' : String(r.nsPerStep)).padStart(8),
        (r.previousRegexpNsPerEvaluation === null ? '-' : fmt(r.previousRegexpNsPerEvaluation as number)).padStart(15),
      ].join(' '),
    );
  }
  return rows;
}

function writeReport(report: Record<string, unknown>): void {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const out = path.join(here, 'results', 'cesql.json');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwritten ${path.relative(process.cwd(), out)}`);
}

function main(): void {
  if (process.argv.includes('--adversarial')) {
    writeReport({ benchmark: 'cesql-like-adversarial', measuredAt: new Date().toISOString(), node: process.version, adversarial: adversarial() });
    return;
  }
  const events = makeEvents(1024);
  const rows = [];
  for (const c of cases) {
    const compiled = compileCesql(c.expression);
    const cesql = (e: Event): boolean => compiled.matches(e);
    for (const e of events) {
      if (cesql(e) !== c.handWritten(e)) throw new Error(`${c.name}: CESQL and the hand-written predicate disagree on ${JSON.stringify(e)}`);
    }
    measure(cesql, events, 200);
    measure(c.handWritten, events, 200);
    const js = measure(c.handWritten, events, 1000);
    const sql = measure(cesql, events, 1000);
    const compileStart = performance.now();
    let compiles = 0;
    while (performance.now() - compileStart < 200) {
      compileCesql(c.expression);
      compiles++;
    }
    const compileSeconds = (performance.now() - compileStart) / 1000;
    rows.push({
      name: c.name,
      expression: c.expression,
      cesqlEvalsPerSecond: Math.round(sql.perSecond),
      handWrittenEvalsPerSecond: Math.round(js.perSecond),
      ratio: Number((sql.perSecond / js.perSecond).toFixed(3)),
      compilesPerSecond: Math.round(compiles / compileSeconds),
      matchedShare: Number((events.filter((e) => c.handWritten(e)).length / events.length).toFixed(3)),
    });
  }

  const fmt = (n: number): string => n.toLocaleString('en-US');
  console.log(`CESQL evaluation vs hand-written JavaScript (${events.length} events, node ${process.version})\n`);
  console.log(
    ['case'.padEnd(32), 'CESQL evals/s'.padStart(15), 'JS evals/s'.padStart(15), 'CESQL/JS'.padStart(9), 'compiles/s'.padStart(11), 'matched'.padStart(8)].join(' '),
  );
  for (const r of rows) {
    console.log(
      [
        r.name.padEnd(32),
        fmt(r.cesqlEvalsPerSecond).padStart(15),
        fmt(r.handWrittenEvalsPerSecond).padStart(15),
        r.ratio.toFixed(3).padStart(9),
        fmt(r.compilesPerSecond).padStart(11),
        `${(r.matchedShare * 100).toFixed(1)}%`.padStart(8),
      ].join(' '),
    );
  }

  writeReport({
    benchmark: 'cesql-predicate-evaluation',
    measuredAt: new Date().toISOString(),
    node: process.version,
    events: events.length,
    cases: rows,
    adversarial: adversarial(),
  });
}

main();
