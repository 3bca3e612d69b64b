/** Request bodies of the subscriptions API. Unknown fields are refused so typos do not pass silently. */
import { z } from 'zod';
import { filtersSchema } from '../../platform/filters/subscription-filter.ts';
import { transformSchema } from '../../platform/transforms/transform.ts';

const typeName = z.string().min(1, 'must not be empty').max(256, 'at most 256 characters');

/** A webhook endpoint URL's form; which hosts and schemes are allowed is checked by platform/webhooks/url-policy.ts. */
export const sinkSchema = z
  .url({ protocol: /^https?$/, hostname: /^[^\s]+$/, message: 'must be an absolute https URL, e.g. https://example.com/webhooks' })
  .max(2048, 'at most 2048 characters');

export const subscriptionCreateSchema = z.strictObject({
  name: z.string().min(1).max(200).optional(),
  types: z.array(typeName).min(1, 'list at least one type, or leave types out for every type').max(100).optional(),
  source: z.string().min(1).max(1024).optional(),
  // checked by the very step that compiles them for the route, with its limits (subscription-filter.ts)
  filters: filtersSchema.default([]),
  // compiled as the route compiles it, with its bounds (platform/transforms/transform.ts)
  transform: transformSchema.optional(),
  sink: sinkSchema.optional(),
});

/** PATCH: any subset; `null` removes an optional field. */
export const subscriptionPatchSchema = z
  .strictObject({
    name: z.string().min(1).max(200).nullable().optional(),
    types: z.array(typeName).min(1).max(100).nullable().optional(),
    source: z.string().min(1).max(1024).nullable().optional(),
    filters: filtersSchema.optional(),
    transform: transformSchema.nullable().optional(),
    sink: sinkSchema.nullable().optional(),
  })
  .refine((v) => Object.keys(v).length > 0, 'the patch changes nothing: name at least one field');

export const tenantCreateSchema = z.strictObject({
  name: z.string().min(1, 'must not be empty').max(200, 'at most 200 characters'),
});

export const keyCreateSchema = z.strictObject({
  role: z.enum(['tenant', 'consumer'], { message: "must be 'tenant' or 'consumer'" }),
});
