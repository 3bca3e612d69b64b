/**
 * CESQL predicate evaluation speed against hand-written JavaScript doing the same check, measured in
 * the same run on the same events. Prints a table and writes bench/results/cesql.json.
 *
 *   npx tsx bench/cesql.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileCesql } from '../platform/filters/cesql/index.ts';

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

function main(): void {
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

  const here = path.dirname(fileURLToPath(import.meta.url));
  const out = path.join(here, 'results', 'cesql.json');
  mkdirSync(path.dirname(out), { recursive: true });
  const report = {
    benchmark: 'cesql-predicate-evaluation',
    measuredAt: new Date().toISOString(),
    node: process.version,
    events: events.length,
    cases: rows,
  };
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwritten ${path.relative(process.cwd(), out)}`);
}

main();
