/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self time, and their
 * share of the samples (idle and GC listed as V8 names them).
 *
 *   npx tsx bench/profile-summary.ts bench/results/profiles/route.cpuprofile [top=25]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  function: string;
  where: string;
  self_ms: number;
  share: number;
}

function where(url: string, line: number): string {
  if (!url) return '';
  const file = url.replace(/^file:\/\//, '');
  const nm = file.lastIndexOf('node_modules/');
  const short = nm >= 0 ? file.slice(nm + 'node_modules/'.length) : path.relative(process.cwd(), file);
  return `${short}:${line + 1}`;
}

/** Self time per function (summed over the nodes of the same function and place), largest first. */
export function selfTimes(profile: CpuProfile, top = 25): { total_ms: number; rows: SelfTime[] } {
  const byNode = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byNode.set(n.id, n);
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + (deltas[i] ?? 0));
  const total = samples.length ? [...self.values()].reduce((a, b) => a + b, 0) : profile.endTime - profile.startTime;
  const byFunction = new Map<string, { fn: string; where: string; us: number }>();
  for (const [id, us] of self) {
    const n = byNode.get(id);
    if (!n) continue;
    const fn = n.callFrame.functionName || '(anonymous)';
    const w = where(n.callFrame.url, n.callFrame.lineNumber);
    const key = `${fn} ${w}`;
    const e = byFunction.get(key);
    if (e) e.us += us;
    else byFunction.set(key, { fn, where: w, us });
  }
  const rows = [...byFunction.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ function: e.fn, where: e.where, self_ms: Math.round(e.us / 1000), share: Number((e.us / total).toFixed(4)) }));
  return { total_ms: Math.round(total / 1000), rows };
}

export function summariseFile(file: string, top = 25) {
  return selfTimes(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, top);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [file, topArg] = process.argv.slice(2);
  if (!file) {
    console.error('usage: tsx bench/profile-summary.ts FILE.cpuprofile [top]');
    process.exit(2);
  }
  const { total_ms, rows } = summariseFile(file, Number(topArg ?? 25));
  const busy = rows.filter((r) => r.function !== '(idle)').reduce((s, r) => s + r.self_ms, 0);
  console.log(`${file}: ${total_ms} ms sampled (top ${rows.length} functions: ${busy} ms not idle)`);
  for (const r of rows) console.log(`${(r.share * 100).toFixed(1).padStart(5)}%  ${String(r.self_ms).padStart(7)} ms  ${r.function}  ${r.where}`);
}
