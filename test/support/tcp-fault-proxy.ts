/**
 * A TCP proxy in front of a real server (PostgreSQL here) that tests switch between passing
 * traffic through and failing in the ways a database fails: refusing connections ("stopped"),
 * holding every byte ("slow past its deadline"), or answering garbage. Fault injection around
 * the real dependency, in test code only (STYLE "Production code knows nothing of tests").
 */
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';

/** How the proxy treats traffic. */
export type ProxyMode = 'pass' | 'refuse' | 'hang' | 'garbage';

/** A running proxy. */
export interface FaultProxy {
  /** `127.0.0.1:<port>` to connect to instead of the real server. */
  readonly port: number;
  /** `url` with its host and port replaced by the proxy's. */
  urlThrough(url: string): string;
  /**
   * Switches the mode. Every mode but `pass` also cuts the connections open now, so pooled
   * connections see the fault too (as they would when the server stops).
   */
  setMode(mode: ProxyMode): void;
  /** Connections accepted so far, in any mode (how a test knows a client tried again). */
  accepted(): number;
  close(): Promise<void>;
}

/** Starts a proxy to `target` (host, port) in mode `pass`. */
export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let mode: ProxyMode = 'pass';
  let accepted = 0;
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    accepted += 1;
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => undefined);
    if (mode === 'refuse') {
      client.destroy();
      return;
    }
    if (mode === 'hang') return; // accept and never answer
    if (mode === 'garbage') {
      client.on('data', () => {
        if (!client.destroyed) client.write(Buffer.from('\x00garbage\xff\xfe not a postgres message\n'));
      });
      return;
    }
    const upstream = connect(target.port, target.host);
    open.add(upstream);
    upstream.on('close', () => {
      open.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    urlThrough(url) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(address.port);
      return u.toString();
    },
    setMode(next) {
      mode = next;
      if (next !== 'pass') for (const s of open) s.destroy();
    },
    accepted: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
