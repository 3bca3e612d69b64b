/**
 * CloudEvents' HTTP protocol binding, request side (the ingest API and the Kafka triggers' HTTP posts), in its three modes:
 *   structured  content-type application/cloudevents+json; the body is one event
 *   batch       content-type application/cloudevents-batch+json; the body is a JSON array of events
 *   binary      ce-* headers carry the attributes (percent-encoded), content-type is datacontenttype, body = data
 * Each event comes out in structured JSON form (CloudEventJson) and validated by platform/events/cloudevent.ts,
 * with every refusal naming where the client put the bad value: `[3].type` in a batch, `header:ce-type` in
 * binary mode, `type` in structured mode.
 *
 * Written here rather than taken from the CloudEvents SDK (`HTTP.toEvent`): the SDK validates with its own
 * messages that do not name the attribute, coerces extension values and turns `data` into Buffers; the
 * decoding itself is a few lines.
 */
import type { Context } from 'hono';
import { HttpError, type ProblemField } from '../errors.ts';
import { assertCloudEvent, dataMember, InvalidCloudEventError, type CloudEventJson } from '../events/cloudevent.ts';
import { readBody } from './app.ts';

export type CloudEventsMode = 'structured' | 'batch' | 'binary';

export const STRUCTURED = 'application/cloudevents+json';
export const BATCH = 'application/cloudevents-batch+json';

/** The mode of a request, from its content type and headers; 415 naming the header when none fits. */
export function modeOf(headers: Record<string, string>): CloudEventsMode {
  const ct = headers['content-type'];
  const base = ct?.split(';')[0]!.trim().toLowerCase();
  if (base === STRUCTURED) return 'structured';
  if (base === BATCH) return 'batch';
  if (headers['ce-specversion'] !== undefined) return 'binary';
  const message = base?.startsWith('application/cloudevents')
    ? `unsupported event format ${base}; use ${STRUCTURED} or ${BATCH}`
    : `expected ${STRUCTURED}, ${BATCH}, or binary mode (ce-specversion and the other ce-* headers), got ${ct ? base : 'no content-type'}`;
  throw new HttpError(415, 'unsupported_media_type', `content-type: ${message}`, { errors: [{ field: 'header:content-type', message }] });
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, 'malformed_json', `body: not valid JSON (${(err as Error).message})`, { errors: [{ field: 'body', message: 'not valid JSON' }] });
  }
}

/** A binary-mode request's event: attributes from ce-* headers, data from the body. */
function binaryEvent(headers: Record<string, string>, body: Buffer): Record<string, unknown> {
  const event: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith('ce-')) continue;
    try {
      event[name.slice(3)] = decodeURIComponent(value);
    } catch {
      throw HttpError.badRequest(`header:${name}`, 'is not validly percent-encoded', 'invalid_event');
    }
  }
  const ct = headers['content-type'];
  if (ct !== undefined) event['datacontenttype'] = ct;
  try {
    Object.assign(event, dataMember(body.length ? body : null, ct));
  } catch (err) {
    if (err instanceof InvalidCloudEventError) throw HttpError.badRequest('body', err.message.replace(/^data: /, ''), 'invalid_event');
    throw err;
  }
  return event;
}

/** Where a client finds an attribute: a header in binary mode, a member (of the i-th event) otherwise. */
export function fieldOf(mode: CloudEventsMode, index: number, field: string): string {
  if (mode === 'binary') return field === 'data' || field === 'data_base64' ? 'body' : field === 'event' ? 'headers' : `header:ce-${field}`;
  if (mode === 'batch') return field === 'event' ? `[${index}]` : `[${index}].${field}`;
  return field === 'event' ? 'body' : field;
}

/**
 * Reads the request's events and validates each as a CloudEvent: 400 naming every invalid event's field (up to
 * 20), 413 past the size or batch limits, 415 for a content type that is no mode. `seen.count` tells how many
 * events the request held once that is known (for the refusal metrics).
 */
export async function readEvents(
  c: Context,
  limits: { maxBodyBytes: number; maxBatch: number },
  seen: { count: number } = { count: 1 },
): Promise<{ mode: CloudEventsMode; events: CloudEventJson[] }> {
  const headers = c.req.header();
  const mode = modeOf(headers);
  const body = await readBody(c, limits.maxBodyBytes);
  let raw: unknown[];
  if (mode === 'binary') raw = [binaryEvent(headers, body)];
  else if (mode === 'structured') raw = [parseJson(body)];
  else {
    const parsed = parseJson(body);
    if (!Array.isArray(parsed)) throw HttpError.badRequest('body', `a ${BATCH} body must be a JSON array of CloudEvents`, 'invalid_batch');
    seen.count = Math.max(1, parsed.length);
    if (parsed.length === 0) throw HttpError.badRequest('body', 'the batch holds no event', 'invalid_batch');
    if (parsed.length > limits.maxBatch)
      throw new HttpError(413, 'batch_too_large', `body: a batch holds at most ${limits.maxBatch} events, this one ${parsed.length}`, {
        errors: [{ field: 'body', message: `at most ${limits.maxBatch} events` }],
      });
    raw = parsed;
  }
  const errors: ProblemField[] = [];
  raw.forEach((event, i) => {
    try {
      assertCloudEvent(event);
    } catch (err) {
      if (!(err instanceof InvalidCloudEventError)) throw err;
      if (errors.length < 20) errors.push({ field: fieldOf(mode, i, err.field), message: err.message.slice(err.field.length + 2) });
    }
  });
  if (errors.length) {
    const first = errors[0]!;
    throw new HttpError(400, 'invalid_event', `${first.field}: ${first.message}`, { errors });
  }
  return { mode, events: raw as CloudEventJson[] };
}
