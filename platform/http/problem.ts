/** problem+json (RFC 9457) rendering, and zod failures turned into 400s naming each field. */
import type { z } from 'zod';
import { HttpError, type ProblemField } from '../errors.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export function problemBody(err: HttpError, instance?: string): Record<string, unknown> {
  return {
    type: `https://pioneer.dev/problems/${err.code.replace(/_/g, '-')}`,
    title: err.message,
    status: err.status,
    code: err.code,
    ...(err.errors.length ? { errors: err.errors } : {}),
    ...(instance ? { instance } : {}),
    ...err.extra,
  };
}

/** `filters.0.prefix` -> `filters[0].prefix` */
export function fieldPath(path: readonly PropertyKey[], root = ''): string {
  let out = root;
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out ? `.${String(part)}` : String(part);
  return out || 'body';
}

export function zodProblem(error: z.ZodError, root = ''): HttpError {
  const errors: ProblemField[] = error.issues.map((issue) => ({ field: fieldPath(issue.path, root), message: issue.message }));
  const first = errors[0]!;
  return new HttpError(400, 'invalid_request', `${first.field}: ${first.message}`, { errors });
}

export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, root = ''): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw zodProblem(result.error, root);
  return result.data;
}
