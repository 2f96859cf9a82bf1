/**
 * A loopback port for a listener that must be named before it binds: processes and nodes whose
 * configuration files name each other (a Gate's `executor_url`, an Execution Layer's
 * `gate_url`).
 *
 * Such a port is free when picked and bound later, so something else may take it in between.
 * Asking the kernel for port 0 hands out a port from its ephemeral range, the same range every
 * outgoing loopback connection of the suite (PostgreSQL's pool, HTTP clients) takes its source
 * port from: a parallel test file's connection took one between pick and bind and a start failed
 * with `EADDRINUSE`. The ports here come from below that range instead (checked free by binding,
 * never handed out twice by one process), where only another test's listener can collide (a
 * listener of a parallel test file picked between this check and its bind: rarer still).
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

const LOW = 20_000;
const handedOut = new Set<number>();

/** The first port of the kernel's ephemeral range (32768 when it cannot be read). */
function ephemeralStart(): number {
  try {
    const first = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0],
    );
    return Number.isInteger(first) ? first : 32_768;
  } catch {
    return 32_768;
  }
}

const HIGH = ephemeralStart();

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/** A port on `host` (default 127.0.0.1) outside the ephemeral range, free when returned. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  // A kernel whose ephemeral range leaves too little below it: its own choice (the old race).
  if (HIGH < LOW + 1000) return kernelPort(host);
  for (let tries = 0; tries < 200; tries += 1) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (handedOut.has(port)) continue;
    if (await bindable(port, host)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port between ${LOW} and ${HIGH} on ${host}`);
}

function kernelPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
