/**
 * Subscription filters, as in the CloudEvents Subscriptions API: each filter is one dialect of
 * exact | prefix | suffix (one attribute each) | all | any (lists of filters) | not (one filter) | sql (CESQL 1.0).
 * A subscription's `filters` all must match. Filters are compiled once into predicates the route calls per event.
 */
import { z } from 'zod';
import { compileCesql, CesqlParseError } from './cesql/index.ts';

export type Filter =
  | { exact: Record<string, string> }
  | { prefix: Record<string, string> }
  | { suffix: Record<string, string> }
  | { all: Filter[] }
  | { any: Filter[] }
  | { not: Filter }
  | { sql: string };

export type Predicate = (event: Record<string, unknown>) => boolean;

export const DIALECTS = ['exact', 'prefix', 'suffix', 'all', 'any', 'not', 'sql'] as const;
const MAX_DEPTH = 8;

const ATTRIBUTE_NAME = /^[a-z0-9]{1,20}$/;
const oneAttribute = z
  .record(z.string(), z.string({ message: 'must be a string' }).max(1024, 'at most 1024 characters'))
  .superRefine((m, ctx) => {
    const names = Object.keys(m);
    if (names.length !== 1) ctx.addIssue({ code: 'custom', message: 'must name exactly one attribute' });
    for (const name of names)
      if (!ATTRIBUTE_NAME.test(name))
        ctx.addIssue({ code: 'custom', path: [name], message: 'must be a CloudEvents attribute name (lowercase letters and digits, at most 20)' });
  });

const sqlSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(4096, 'at most 4096 characters')
  .superRefine((expr, ctx) => {
    try {
      const compiled = compileCesql(expr);
      for (const e of compiled.staticErrors) ctx.addIssue({ code: 'custom', message: `invalid CESQL expression: ${e.message}` });
    } catch (err) {
      if (err instanceof CesqlParseError) ctx.addIssue({ code: 'custom', message: `invalid CESQL expression: ${err.message}` });
      else throw err;
    }
  });

const filterList = () => z.array(filterSchema).min(1, 'must list at least one filter').max(32, 'at most 32 filters');

/** Each dialect's value; a filter is validated against the one dialect it names, so errors keep their path. */
const dialectSchemas: Record<(typeof DIALECTS)[number], () => z.ZodType> = {
  exact: () => oneAttribute,
  prefix: () => oneAttribute,
  suffix: () => oneAttribute,
  all: filterList,
  any: filterList,
  not: () => filterSchema,
  sql: () => sqlSchema,
};

export const filterSchema: z.ZodType<Filter> = z.lazy(() =>
  z.record(z.string(), z.unknown()).transform((value, ctx) => {
    const names = Object.keys(value);
    if (names.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `a filter must have exactly one dialect, one of ${DIALECTS.join(', ')}; got ${names.length ? names.join(', ') : 'none'}` });
      return z.NEVER;
    }
    const dialect = names[0]!;
    const schema = dialectSchemas[dialect as keyof typeof dialectSchemas];
    if (!schema) {
      ctx.addIssue({ code: 'custom', path: [dialect], message: `unknown filter dialect '${dialect}'; supported: ${DIALECTS.join(', ')}` });
      return z.NEVER;
    }
    const parsed = schema().safeParse(value[dialect]);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', path: [dialect, ...issue.path], message: issue.message });
      return z.NEVER;
    }
    return { [dialect]: parsed.data } as Filter;
  }),
) as unknown as z.ZodType<Filter>;

function attr(event: Record<string, unknown>, name: string): string | undefined {
  const v = event[name];
  return v === undefined || v === null ? undefined : typeof v === 'string' ? v : String(v);
}

export function compileFilter(filter: Filter, depth = 0): Predicate {
  if (depth > MAX_DEPTH) throw new Error(`filters nest deeper than ${MAX_DEPTH}`);
  if ('exact' in filter) {
    const [name, value] = Object.entries(filter.exact)[0]!;
    return (e) => attr(e, name) === value;
  }
  if ('prefix' in filter) {
    const [name, value] = Object.entries(filter.prefix)[0]!;
    return (e) => attr(e, name)?.startsWith(value) ?? false;
  }
  if ('suffix' in filter) {
    const [name, value] = Object.entries(filter.suffix)[0]!;
    return (e) => attr(e, name)?.endsWith(value) ?? false;
  }
  if ('all' in filter) {
    const parts = filter.all.map((f) => compileFilter(f, depth + 1));
    return (e) => parts.every((p) => p(e));
  }
  if ('any' in filter) {
    const parts = filter.any.map((f) => compileFilter(f, depth + 1));
    return (e) => parts.some((p) => p(e));
  }
  if ('not' in filter) {
    const inner = compileFilter(filter.not, depth + 1);
    return (e) => !inner(e);
  }
  const compiled = compileCesql(filter.sql);
  return (e) => compiled.matches(e);
}

/** All of `filters` must match (an empty list matches everything). */
export function compileFilters(filters: readonly Filter[]): Predicate {
  const parts = filters.map((f) => compileFilter(f));
  if (parts.length === 0) return () => true;
  if (parts.length === 1) return parts[0]!;
  return (e) => parts.every((p) => p(e));
}
