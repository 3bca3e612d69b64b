// Prints TCP ports that are free on 127.0.0.1 right now (the kernel picks them): node free-port.mjs [COUNT]
// One port by default; with COUNT, that many distinct ports, one a line (all are held open until every one is
// picked, so none is handed out twice).
import { createServer } from 'node:net';
const count = Number(process.argv[2] ?? 1);
if (!Number.isInteger(count) || count < 1) { console.error('usage: node free-port.mjs [COUNT]'); process.exit(1); }
const servers = [];
for (let i = 0; i < count; i++) {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
}
const ports = servers.map((s) => s.address().port);
await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
console.log(ports.join('\n'));
