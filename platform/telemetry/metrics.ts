/**
 * Prometheus metrics (prom-client). One registry per function, with the default Node metrics, every series
 * labelled with the function's name (`function`); the function registers its own counters and histograms on it,
 * named `pioneer_<function>_<what>`. A process hosting several functions (the local host) gives each its own
 * registry, so that a function's /metrics shows its own series only, and serves them all at once, each series
 * once, with mergedMetrics.
 */
import { Registry, collectDefaultMetrics, Counter, Histogram, Gauge } from 'prom-client';

export { Counter, Histogram, Gauge, Registry };

/** A registry for function `name`: the default Node metrics, and `function="<name>"` on every series. */
export function createMetrics(name?: string): Registry {
  const registry = new Registry();
  if (name) registry.setDefaultLabels({ function: name });
  collectDefaultMetrics({ register: registry, prefix: 'pioneer_' });
  return registry;
}

/**
 * The Prometheus text of several registries as one exposition: each metric family once (its HELP and TYPE
 * lines), with the samples of every registry under it. The registries' series must differ by a label (the
 * `function` label of createMetrics), as a family's samples are listed, not summed.
 */
export async function mergedMetrics(registries: Registry[]): Promise<string> {
  const families = new Map<string, { head: string[]; samples: string[] }>();
  for (const registry of registries) {
    let current: { head: string[]; samples: string[] } | undefined;
    for (const line of (await registry.metrics()).split('\n')) {
      if (line === '') continue;
      const meta = /^# (HELP|TYPE) (\S+)/.exec(line);
      if (meta) {
        const name = meta[2]!;
        let family = families.get(name);
        if (!family) families.set(name, (family = { head: [], samples: [] }));
        if (!family.head.some((h) => h.startsWith(`# ${meta[1]} `))) family.head.push(line);
        current = family;
        continue;
      }
      if (line.startsWith('#')) continue;
      current?.samples.push(line);
    }
  }
  let out = '';
  for (const { head, samples } of families.values()) out += [...head, ...samples].join('\n') + '\n\n';
  return out;
}

/** A counter registered on `registry`, or the one already there under the same name. */
export function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<L>;
  return new Counter({ name, help, labelNames: [...labelNames], registers: [registry] });
}

export function histogram<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
): Histogram<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Histogram<L>;
  return new Histogram({ name, help, labelNames: [...labelNames], buckets, registers: [registry] });
}

export function gauge<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Gauge<L>;
  return new Gauge({ name, help, labelNames: [...labelNames], registers: [registry] });
}
