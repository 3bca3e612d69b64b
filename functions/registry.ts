/** Every function the platform has, by name: what the hosts (adapters/*) can run. */
import type { FunctionDefinition } from '../platform/runtime/contract.ts';
import subscriptions from './subscriptions/index.ts';
import route from './route/index.ts';
import gateway from './gateway/index.ts';
import ingest from './ingest/index.ts';
import deliver from './deliver/index.ts';
import exportFn from './export/index.ts';
import insights from './insights/index.ts';
import reference from './reference/index.ts';

export const FUNCTIONS: Record<string, FunctionDefinition> = {
  subscriptions: subscriptions as unknown as FunctionDefinition,
  route: route as unknown as FunctionDefinition,
  gateway: gateway as unknown as FunctionDefinition,
  ingest: ingest as unknown as FunctionDefinition,
  deliver: deliver as unknown as FunctionDefinition,
  export: exportFn as unknown as FunctionDefinition,
  insights: insights as unknown as FunctionDefinition,
  reference: reference as unknown as FunctionDefinition,
};

export function functionsNamed(names: string[]): FunctionDefinition[] {
  return names.map((name) => {
    const def = FUNCTIONS[name];
    if (!def) throw new Error(`unknown function '${name}'; known: ${Object.keys(FUNCTIONS).join(', ')}`);
    return def;
  });
}
