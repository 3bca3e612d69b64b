import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, commonSchema, loadConfig } from '../../platform/config/env.ts';
import { createKafkaClient, kafkaSecurity, platformaticSecurity } from '../../platform/kafka/client.ts';
import { createLogger } from '../../platform/telemetry/logger.ts';

const base = { PIONEER_REDIS_URL: 'redis://h:1', PIONEER_KAFKA_BROKERS: '127.0.0.1:9092' };
const log = createLogger({ level: 'silent' });

test('TLS and SASL settings reach both Kafka clients, each in its own spelling', () => {
  const cfg = loadConfig(commonSchema, { ...base, PIONEER_KAFKA_SSL: '1', PIONEER_KAFKA_SASL_MECHANISM: 'scram-sha-512', PIONEER_KAFKA_SASL_USERNAME: 'pioneer', PIONEER_KAFKA_SASL_PASSWORD: 's3cret' });
  assert.deepEqual(kafkaSecurity(cfg), { ssl: true, sasl: { mechanism: 'scram-sha-512', username: 'pioneer', password: 's3cret' } });
  assert.deepEqual(platformaticSecurity(cfg), { tls: {}, sasl: { mechanism: 'SCRAM-SHA-512', username: 'pioneer', password: 's3cret' } });

  const plain = loadConfig(commonSchema, { ...base, PIONEER_KAFKA_SASL_MECHANISM: 'plain', PIONEER_KAFKA_SASL_USERNAME: 'u', PIONEER_KAFKA_SASL_PASSWORD: 'p' });
  assert.deepEqual(kafkaSecurity(plain), { ssl: false, sasl: { mechanism: 'plain', username: 'u', password: 'p' } });
  assert.deepEqual(platformaticSecurity(plain), { sasl: { mechanism: 'PLAIN', username: 'u', password: 'p' } });

  const tlsOnly = loadConfig(commonSchema, { ...base, PIONEER_KAFKA_SSL: 'true' });
  assert.deepEqual(kafkaSecurity(tlsOnly), { ssl: true });
  assert.deepEqual(platformaticSecurity(tlsOnly), { tls: {} });
  assert.deepEqual(platformaticSecurity(loadConfig(commonSchema, base)), {});
});

test('PIONEER_KAFKA_CLIENT picks the client (kafkajs by default); SASL without a password stops either at start-up', () => {
  assert.equal(createKafkaClient(loadConfig(commonSchema, base), { log }).kind, 'kafkajs');
  assert.equal(createKafkaClient(loadConfig(commonSchema, { ...base, PIONEER_KAFKA_CLIENT: 'platformatic' }), { log }).kind, 'platformatic');
  assert.throws(() => loadConfig(commonSchema, { ...base, PIONEER_KAFKA_CLIENT: 'librdkafka' }), /PIONEER_KAFKA_CLIENT is invalid/);
  for (const kind of ['kafkajs', 'platformatic']) {
    const cfg = loadConfig(commonSchema, { ...base, PIONEER_KAFKA_CLIENT: kind, PIONEER_KAFKA_SASL_MECHANISM: 'scram-sha-256', PIONEER_KAFKA_SASL_USERNAME: 'u' });
    assert.throws(() => createKafkaClient(cfg, { log }), (err: unknown) => {
      assert.ok(err instanceof ConfigError, kind);
      assert.match(err.message, /PIONEER_KAFKA_SASL_PASSWORD is required with PIONEER_KAFKA_SASL_MECHANISM/);
      return true;
    });
  }
});
