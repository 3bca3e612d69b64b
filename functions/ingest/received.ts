/**
 * The events of an ingest request with the JSON text each arrived as. The request is read and validated by
 * platform/http/cloudevents-request.ts (JSON.parse: the parsed events serve the checks only), and ingest writes
 * each event's own text to Kafka, so numbers keep every digit and members their order
 * (platform/events/event-text.ts):
 *   structured  the body, on one line
 *   batch       each element of the body's array, on one line
 *   binary      the attributes from the ce-* headers, then `"data":` and the body's own text (JSON content types)
 */
import type { Context } from 'hono';
import { readBody } from '../../platform/http/app.ts';
import { HttpError, type ProblemField } from '../../platform/errors.ts';
import { fieldOf, modeOf, readEvents, type CloudEventsMode } from '../../platform/http/cloudevents-request.ts';
import { isJsonContentType, type CloudEventJson } from '../../platform/events/cloudevent.ts';
import { JsonTooDeepError, valueTexts, withJsonData, type ValueText } from '../../platform/events/event-text.ts';

export interface ReceivedEvents {
  mode: CloudEventsMode;
  events: CloudEventJson[];
  /** each event's structured JSON text as received, on one line; `texts[i]` is `events[i]` */
  texts: string[];
}

export async function readReceivedEvents(c: Context, limits: { maxBodyBytes: number; maxBatch: number }, seen: { count: number }): Promise<ReceivedEvents> {
  modeOf(c.req.header()); // 415 before the body is read
  const body = await readBody(c, limits.maxBodyBytes);
  // the validating reader reads the request again: give it the bytes read here
  c.req.raw = new Request(c.req.raw.url, { method: c.req.raw.method, headers: c.req.raw.headers, body: new Uint8Array(body), signal: c.req.raw.signal });
  const { mode, events } = await readEvents(c, limits, seen);
  const text = body.toString('utf8');
  let texts: string[];
  if (mode === 'binary') {
    const e = events[0]!;
    texts = [e.data !== undefined && isJsonContentType(e.datacontenttype) ? withJsonData(e, text) : JSON.stringify(e)];
  } else {
    let values: ValueText[];
    try {
      values = valueTexts(text, mode === 'batch' ? 'elements' : 'value');
    } catch (err) {
      if (err instanceof JsonTooDeepError) throw HttpError.badRequest('body', err.message);
      throw err;
    }
    texts = values.map((v) => v.text);
    // JSON.parse keeps a repeated attribute's last value, other parsers its first: the text must say one thing
    const errors: ProblemField[] = [];
    values.forEach((v, i) => {
      if (v.repeated !== undefined && errors.length < 20) errors.push({ field: fieldOf(mode, i, v.repeated), message: 'is given more than once' });
    });
    if (errors.length) throw new HttpError(400, 'invalid_event', `${errors[0]!.field}: ${errors[0]!.message}`, { errors });
  }
  return { mode, events, texts };
}
