/**
 * A TCP proxy for tests that cut the network between a function and Redis or Kafka: it listens on a free port
 * of 127.0.0.1 and forwards every connection to a target host:port. Built on node:net alone: a proxy this small
 * needs no library.
 *
 * Its mode can be switched at any time:
 * - `pass`: bytes flow both ways, as written.
 * - `cut`: every open connection is reset (RST) on both sides, and every new one is reset as soon as it is
 *   accepted: what a client sees when a link goes down or a firewall starts rejecting.
 * - `blackhole`: connections are accepted and open ones are kept, but nothing is forwarded in either direction
 *   and nothing answers: what a client sees when packets are silently dropped. As TCP would (it retransmits
 *   until the path is back), the bytes sent meanwhile wait and flow once the proxy is healed; a connection the
 *   client gave up on meanwhile is closed once its waiting bytes are through.
 * `heal()` goes back to `pass`: new connections are forwarded again and black-holed ones resume.
 */
import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export type ProxyMode = 'pass' | 'cut' | 'blackhole';

export interface TcpProxy {
  /** the port it listens on (127.0.0.1) */
  readonly port: number;
  /** 127.0.0.1:<port> */
  readonly address: string;
  readonly mode: ProxyMode;
  /** connections open now */
  readonly open: number;
  /** connections accepted since the start, and those reset by a cut */
  readonly stats: { accepted: number; reset: number };
  cut(): void;
  blackhole(): void;
  /** back to pass */
  heal(): void;
  close(): Promise<void>;
}

/** One proxied connection: the client's socket and ours to the target, and whether a direction waits for drain. */
interface Pair {
  client: Socket;
  upstream: Socket;
  /** a direction paused because the other side's buffer is full (resumed on its drain) */
  full: { toUpstream: boolean; toClient: boolean };
}

export async function startTcpProxy(target: { host?: string; port: number }, opts: { port?: number } = {}): Promise<TcpProxy> {
  const host = target.host ?? '127.0.0.1';
  let mode: ProxyMode = 'pass';
  const pairs = new Set<Pair>();
  const stats = { accepted: 0, reset: 0 };

  const flowing = (p: Pair, dir: 'toUpstream' | 'toClient') => mode === 'pass' && !p.full[dir];
  const reset = (s: Socket) => {
    if (!s.destroyed) s.resetAndDestroy();
  };

  /** Forwards `from` to `to`; pauses `from` when `to` is full, or when the proxy is not passing bytes. */
  function forward(p: Pair, from: Socket, to: Socket, dir: 'toUpstream' | 'toClient') {
    from.on('data', (chunk: Buffer) => {
      if (to.destroyed) return;
      if (!to.write(chunk)) {
        p.full[dir] = true;
        from.pause();
        to.once('drain', () => {
          p.full[dir] = false;
          if (flowing(p, dir)) from.resume();
        });
      }
    });
    // the client (or target) closed its side: pass the close on once its bytes are through
    from.on('end', () => to.end());
  }

  function drop(p: Pair) {
    if (!pairs.delete(p)) return;
    p.client.destroy();
    p.upstream.destroy();
  }

  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client) => {
    stats.accepted++;
    if (mode === 'cut') {
      stats.reset++;
      reset(client);
      return;
    }
    const upstream = connect({ host, port: target.port, allowHalfOpen: true });
    upstream.pause();
    const p: Pair = { client, upstream, full: { toUpstream: false, toClient: false } };
    pairs.add(p);
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      s.on('error', () => drop(p));
      s.on('close', () => drop(p));
    }
    forward(p, client, upstream, 'toUpstream');
    forward(p, upstream, client, 'toClient');
    upstream.once('connect', () => {
      if (mode !== 'pass') return; // black-holed: resumed on heal
      client.resume();
      upstream.resume();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    address: `127.0.0.1:${port}`,
    get mode() {
      return mode;
    },
    get open() {
      return pairs.size;
    },
    stats,
    cut() {
      mode = 'cut';
      for (const p of [...pairs]) {
        stats.reset++;
        pairs.delete(p);
        reset(p.client);
        reset(p.upstream);
      }
    },
    blackhole() {
      mode = 'blackhole';
      for (const p of pairs) {
        p.client.pause();
        p.upstream.pause();
      }
    },
    heal() {
      mode = 'pass';
      for (const p of pairs) {
        if (p.upstream.connecting) continue; // resumed once connected
        if (flowing(p, 'toUpstream')) p.client.resume();
        if (flowing(p, 'toClient')) p.upstream.resume();
      }
    },
    async close() {
      for (const p of [...pairs]) drop(p);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
