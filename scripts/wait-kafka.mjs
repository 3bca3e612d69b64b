// Waits until a Kafka broker answers a metadata request: node wait-kafka.mjs HOST:PORT [TIMEOUT_MS]
import { Kafka, logLevel } from 'kafkajs';
const [broker, timeoutArg] = process.argv.slice(2);
const deadline = Date.now() + Number(timeoutArg ?? 60000);
const kafka = new Kafka({ brokers: [broker], logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 1000 });
for (;;) {
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.describeCluster();
    await admin.disconnect();
    process.exit(0);
  } catch {
    await admin.disconnect().catch(() => {});
    if (Date.now() > deadline) { console.error(`no answer from Kafka at ${broker}`); process.exit(1); }
    await new Promise((r) => setTimeout(r, 250));
  }
}
