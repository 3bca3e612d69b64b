// Waits until Kafka serves: node wait-kafka.mjs BOOTSTRAP [TIMEOUT_MS] [BROKERS]
// BOOTSTRAP is host:port[,host:port...]. Ready means: BROKERS brokers (default 1) are registered, no partition of
// any topic lacks a leader or an in-sync replica, and a consumer group's coordinator answers. The coordinator is
// the last step on a new broker (it creates the offsets topic on the first request), and the first consumer
// group of a run would otherwise wait for it under its own timeout.
import { Kafka, logLevel } from 'kafkajs';
const [bootstrap, timeoutArg, brokersArg] = process.argv.slice(2);
const brokers = bootstrap.split(',');
const want = Number(brokersArg ?? 1);
const deadline = Date.now() + Number(timeoutArg ?? 60000);
const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 1000 });
let last = 'no answer';
for (;;) {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const { brokers: live } = await admin.describeCluster();
    if (live.length < want) throw new Error(`${live.length} of ${want} brokers serve`);
    const { topics } = await admin.fetchTopicMetadata();
    for (const t of topics)
      for (const p of t.partitions)
        if (p.leader < 0 || p.isr.length < p.replicas.length) throw new Error(`${t.name}/${p.partitionId} has ${p.isr.length} of ${p.replicas.length} replicas in sync`);
    await admin.describeGroups(['wait-kafka']); // finds the group's coordinator: fails until the offsets topic serves
    await admin.disconnect();
    process.exit(0);
  } catch (err) {
    last = err.message;
    await admin.disconnect().catch(() => {});
    if (Date.now() > deadline) {
      console.error(`Kafka at ${bootstrap} is not ready: ${last}`);
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
