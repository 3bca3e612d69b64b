/**
 * Mounts `POST /` on a Kafka-triggered function's app: the endpoint a KafkaSource or the kafka-connector posts
 * CloudEvents to. 2xx only after the handler resolved (the trigger then commits); 400 naming the attribute for a
 * request that is not a CloudEvent (the trigger's dead-letter sink takes it); 5xx for a retriable failure (the
 * trigger retries).
 *
 * This host cannot seek: the trigger commits each record once it is answered 2xx, and a retry brings back that
 * record only. Its batches say so (`seekable: false`), and a handler restores what it needs from Kafka itself
 * (the route: functions/route/index.ts). A handler that asks for a rewind anyway is answered 503, so the trigger
 * retries the record rather than count it done with the interval before it underived.
 */
import type { PioneerFunction } from '../../platform/runtime/contract.ts';
import { readEvents } from '../../platform/http/cloudevents-request.ts';
import { HttpError } from '../../platform/errors.ts';
import { batchFromTriggerEvents } from './trigger-request.ts';

export function mountTrigger(fn: PioneerFunction, limits = { maxBodyBytes: 16 * 1024 * 1024, maxBatch: 10000 }): void {
  const trigger = fn.trigger;
  if (!trigger) return;
  fn.app.post('/', async (c) => {
    const { events } = await readEvents(c, limits);
    const batch = batchFromTriggerEvents(events, c.req.header());
    const result = await trigger.handle(batch);
    if (result?.rewindTo !== undefined) {
      c.get('log').error({ topic: batch.topic, partition: batch.partition, rewindTo: result.rewindTo }, 'the handler asked an HTTP trigger to rewind: answering 503 so the record is retried');
      throw new HttpError(503, 'rewind_unsupported', 'the handler asked to rewind the partition, which this host cannot do', { headers: { 'retry-after': '1' } });
    }
    return c.body(null, 202);
  });
}
