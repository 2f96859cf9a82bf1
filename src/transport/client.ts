/**
 * The client side of mutual TLS between roles: an https Agent that presents this role's
 * certificate and accepts a server only if its certificate chains to the configured CA, matches
 * the host name, and names one of the expected roles, unrevoked (FC-INV-6: the Gate talks only
 * to an `executor` certificate). The server is authorized again each time a kept-alive connection
 * is reused (and when it is returned to the pool), against the Agent's material and clock: a
 * server certificate past its `notAfter`, revoked, or under a CRL past its `nextUpdate` is not
 * used again; the request is refused before a byte is written. `reload()` swaps in a new Agent
 * over re-read files; requests already under way finish on the old one.
 */
import { Agent } from 'node:https';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { ClientRequest } from 'node:http';
import type { Duplex } from 'node:stream';
import { checkServerName } from '../kernel/index.js';
import { assertNamesNoHost, serverNamesOf } from './identity.js';
import type { Role } from './identity.js';
import { loadTlsMaterial } from './material.js';
import type { LoadedCrl, TlsFiles, TlsMaterial } from './material.js';
import { authorizeParsed, authorizePeer, parsePeer } from './peer.js';
import type { PeerVerdict } from './peer.js';

/** A connection's server certificate, read once (as the server side reads its clients'). */
type ReadPeer = ReturnType<typeof parsePeer>;

/** How long requests under way on a replaced Agent may take before its sockets are closed. */
const DRAIN_MS = 60_000;

/** Options of {@link createMtlsAgent}. */
export interface MtlsAgentOptions {
  readonly files: TlsFiles;
  /** The roles a server may have (e.g. the Gate calling the Execution Layer: `['executor']`). */
  readonly expect: readonly Role[];
  /** Clock (ms) of validity and CRL checks; default `Date.now`. */
  readonly now?: () => number;
  /**
   * This identity only ever connects out (a keyless Gate): its certificate must name no host or
   * IP address, at the first load (which then throws) and at every reload (which then fails, and
   * the Agent refuses every server until a reload succeeds), as {@link assertNamesNoHost} says.
   */
  readonly clientOnly?: boolean;
}

/**
 * The product's host check ({@link checkServerName}: subject alternative names only, never the
 * common name), after reading the names itself: a certificate whose names cannot be read, or
 * that names no host (a keyless Gate's, FC-INV-6, whose common name is only a label), is refused
 * with a reason that says so.
 */
function namedServer(host: string, cert: PeerCertificate): Error | undefined {
  let names: string[];
  try {
    names = serverNamesOf(cert.raw);
  } catch {
    return new Error('server refused: its subject alternative names cannot be read');
  }
  if (names.length === 0) return new Error(`server refused: its certificate names no host (${host})`);
  return checkServerName(host, cert);
}

/** A reloadable mutual-TLS https Agent. */
export interface MtlsAgent {
  /** The Agent to use for the next request. */
  current(): Agent;
  /** Re-reads the TLS files; on failure the Agent refuses every server until a reload succeeds. */
  reload(): Promise<void>;
  close(): void;
}

/**
 * An https Agent that re-authorizes the server of a kept-alive connection before reusing it. The
 * certificate of a connection cannot change (TLS 1.3, no renegotiation): it is read and parsed
 * once per connection, and only the verdict (expiry, revocation, CRL freshness) is taken again.
 */
class CheckedAgent extends Agent {
  readonly #authorize: (peer: ReadPeer) => PeerVerdict;
  readonly #peers = new WeakMap<Duplex, ReadPeer>();

  constructor(opts: ConstructorParameters<typeof Agent>[0], authorize: (peer: ReadPeer) => PeerVerdict) {
    super(opts);
    this.#authorize = authorize;
  }

  private verdict(socket: Duplex): PeerVerdict {
    let read = this.#peers.get(socket);
    if (read === undefined) {
      const s = socket as TLSSocket;
      read = parsePeer(typeof s.getPeerCertificate === 'function' ? s.getPeerCertificate(true) : undefined);
      this.#peers.set(socket, read);
    }
    return this.#authorize(read);
  }

  /** Pools a finished connection only while its server is still allowed. */
  override keepSocketAlive(socket: Duplex): boolean {
    if (!this.verdict(socket).ok) return false;
    return super.keepSocketAlive(socket) as unknown as boolean;
  }

  /** Reuses a pooled connection only if its server is still allowed now; else the request fails. */
  override reuseSocket(socket: Duplex, req: ClientRequest): void {
    const v = this.verdict(socket);
    if (!v.ok) {
      // Destroying the request before it has its socket: nothing is written, the socket is closed.
      req.destroy(new Error(`server refused: ${v.refusal.reason}`));
      return;
    }
    super.reuseSocket(socket, req);
  }
}

function agentOver(m: TlsMaterial | undefined, options: MtlsAgentOptions): Agent {
  const now = options.now ?? Date.now;
  return new CheckedAgent(
    {
      ...(m === undefined ? {} : { ca: m.ca, cert: m.cert, key: m.key }),
      minVersion: 'TLSv1.3',
      keepAlive: true,
      // No resumed sessions: every connection verifies the server's certificate afresh.
      maxCachedSessions: 0,
      checkServerIdentity(host: string, cert: PeerCertificate): Error | undefined {
        const named = namedServer(host, cert);
        if (named !== undefined) return named;
        const verdict = authorizePeer(cert, options.expect, m, now());
        return verdict.ok ? undefined : new Error(`server refused: ${verdict.refusal.reason}`);
      },
    },
    (read) => (read.ok ? authorizeParsed(read.parsed, options.expect, m, now()) : read),
  );
}

/** Loads `options.files` and returns an Agent over them. */
export async function createMtlsAgent(options: MtlsAgentOptions): Promise<MtlsAgent> {
  const load = async (notOlderThan?: ReadonlyMap<string, LoadedCrl>): Promise<TlsMaterial> => {
    const m = await loadTlsMaterial(options.files, { notOlderThan });
    if (options.clientOnly === true) assertNamesNoHost(m.cert.toString('latin1'), options.files.cert);
    return m;
  };
  const first = await load();
  let agent = agentOver(first, options);
  // The newest CRL loaded so far: a reload never goes back before it.
  let crlFloor = first.crls;
  const swap = (next: Agent): void => {
    const old = agent;
    agent = next;
    // Idle sockets go now; busy ones finish their request, then the old Agent is destroyed.
    for (const list of Object.values(old.freeSockets)) for (const s of list ?? []) s.destroy();
    setTimeout(() => old.destroy(), DRAIN_MS).unref();
  };
  return {
    current: () => agent,
    async reload() {
      let m: TlsMaterial | undefined;
      try {
        m = await load(crlFloor);
        crlFloor = m.crls;
      } finally {
        swap(agentOver(m, options));
      }
    },
    close: () => agent.destroy(),
  };
}
