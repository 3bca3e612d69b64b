import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApp } from '../../platform/http/app.ts';
import { createLogger } from '../../platform/telemetry/logger.ts';
import { createMetrics } from '../../platform/telemetry/metrics.ts';
import { encodeBinary } from '../../platform/events/kafka-binding.ts';
import type { EventBatch } from '../../platform/events/inbound.ts';
import type { PioneerFunction } from '../../platform/runtime/contract.ts';
import { hostKafkaTrigger } from '../../adapters/local/kafka-trigger.ts';
import { mountTrigger } from '../../adapters/http/serve-trigger.ts';
import { createOpenFaasHandler, type OpenFaasContext } from '../../adapters/openfaas/handler.ts';
import { createTopic, produce, randomName, testKafkaClient, waitFor } from '../support/helpers.ts';

const log = createLogger({ level: 'silent' });

function recordingFunction(): { fn: PioneerFunction; batches: EventBatch[] } {
  const batches: EventBatch[] = [];
  const app = createApp({ name: 'probe', log, metrics: createMetrics(), ready: async () => ({}) });
  const fn: PioneerFunction = {
    name: 'probe',
    app,
    trigger: { topics: [], groupId: 'probe', handle: async (b) => void batches.push(b) },
    close: async () => {},
  };
  mountTrigger(fn);
  return { fn, batches };
}

const source = {
  specversion: '1.0' as const,
  id: 'evt-42',
  source: '/bank/ledger',
  type: 'payment.sent',
  subject: 'acct-7',
  time: '2026-11-22T10:00:00.000Z',
  tenantid: 'ten_adapters',
  partitionkey: 'acct-7',
  datacontenttype: 'application/json',
  data: { amount: 5, currency: 'EUR' },
};

test('the local, Knative and OpenFaaS hosts hand the handler the same CloudEvent for the same input', async () => {
  // local host: a real Kafka record in binary mode, through the kafkajs trigger
  const topic = randomName('adapters');
  await createTopic(topic, 1);
  const record = encodeBinary(source);
  await produce(topic, [{ key: record.key, value: record.value, headers: record.headers }]);
  const local = recordingFunction();
  const host = hostKafkaTrigger({
    kafka: testKafkaClient('adapters'),
    trigger: { ...local.fn.trigger!, topics: [topic], groupId: randomName('g') },
    log,
  });
  await host.start();
  await waitFor(() => local.batches.length === 1, { message: 'the local host to hand over the record' });
  await host.stop();
  const localEvent = local.batches[0]!.events[0]!.event;
  assert.ok(localEvent, 'the local host decoded a CloudEvent');
  assert.deepEqual(local.batches[0]!.events[0]!.position, { topic, partition: 0, offset: '0' });

  // Knative: the KafkaSource posts the CloudEvent in HTTP binary mode
  const knative = recordingFunction();
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  for (const [k, v] of Object.entries(source)) if (k !== 'data' && k !== 'datacontenttype') headers[`ce-${k}`] = String(v);
  const res = await knative.fn.app.request('/', { method: 'POST', headers, body: JSON.stringify(source.data) });
  assert.equal(res.status, 202);

  // OpenFaaS: the kafka-connector posts one structured CloudEvent; the template has parsed the JSON body
  const openfaas = recordingFunction();
  let status = 0;
  const context: OpenFaasContext = {
    status(code) { status = code; return context; },
    headers() { return context; },
    succeed: (v) => v,
    fail: (v) => v,
  };
  await createOpenFaasHandler(openfaas.fn)(
    { body: source, headers: { 'content-type': 'application/cloudevents+json' }, method: 'POST', query: {}, path: '/' },
    context,
  );
  assert.equal(status, 202);

  assert.deepEqual(localEvent, source);
  assert.deepEqual(knative.batches[0]!.events[0]!.event, source);
  assert.deepEqual(openfaas.batches[0]!.events[0]!.event, source);
});

test('a non-CloudEvent record wrapped by a KafkaSource is unwrapped back into the record and its position', async () => {
  const knative = recordingFunction();
  const res = await knative.fn.app.request('/', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'ce-specversion': '1.0',
      'ce-id': 'partition:3/offset:1234',
      'ce-source': '/apis/v1/namespaces/pioneer/kafkasources/route#legacy.payments',
      'ce-type': 'dev.knative.kafka.event',
      'ce-subject': 'partition:3#1234',
      'ce-key': 'acct-9',
    },
    body: JSON.stringify({ tenant: 'ten_x', kind: 'payment' }),
  });
  assert.equal(res.status, 202);
  const item = knative.batches[0]!.events[0]!;
  assert.equal(item.event, undefined, 'not a CloudEvent: left to the topic mapping');
  assert.deepEqual(item.position, { topic: 'legacy.payments', partition: 3, offset: '1234' });
  assert.equal(item.record!.key!.toString(), 'acct-9');
  assert.deepEqual(JSON.parse(item.record!.value!.toString()), { tenant: 'ten_x', kind: 'payment' });
});

test('a trigger request that is not a CloudEvent gets a 400 naming the attribute, and the handler is not called', async () => {
  const knative = recordingFunction();
  const res = await knative.fn.app.request('/', {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents+json' },
    body: JSON.stringify({ specversion: '1.0', source: '/x', type: 't' }),
  });
  assert.equal(res.status, 400);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  const body = (await res.json()) as { errors: { field: string }[] };
  assert.equal(body.errors[0]!.field, 'id');
  assert.equal(knative.batches.length, 0);
});
