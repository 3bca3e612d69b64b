/**
 * Mounts `POST /` on a Kafka-triggered function's app: the endpoint a KafkaSource or the kafka-connector posts
 * CloudEvents to. 2xx only after the handler resolved (the trigger then commits); 400 naming the attribute for a
 * request that is not a CloudEvent (the trigger's dead-letter sink takes it); 5xx for a retriable failure (the
 * trigger retries).
 */
import type { PioneerFunction } from '../../platform/runtime/contract.ts';
import { readEvents } from '../../platform/http/cloudevents-request.ts';
import { batchFromTriggerEvents } from './trigger-request.ts';

export function mountTrigger(fn: PioneerFunction, limits = { maxBodyBytes: 16 * 1024 * 1024, maxBatch: 10000 }): void {
  const trigger = fn.trigger;
  if (!trigger) return;
  fn.app.post('/', async (c) => {
    const { events } = await readEvents(c, limits);
    const result = await trigger.handle(batchFromTriggerEvents(events));
    if (result?.rewindTo !== undefined) c.get('log').warn({ rewindTo: result.rewindTo }, 'this host cannot rewind a partition: replay the interval instead');
    return c.body(null, 202);
  });
}
