/**
 * An HTTPS listener with mutual TLS that admits only peers of the allowed roles (FC-INV-6:
 * "only the Gate reaches execution", L7 hardening). The TLS stack refuses at the handshake a
 * peer without a certificate, or whose certificate does not chain to the configured CA, is
 * self-signed or outside its validity; every admitted connection is then authorized by role and
 * revocation ({@link authorizeParsed}) before a byte of a request is read, and refused connections
 * are closed. Each refusal is counted and handed to `onRefused` (the composition records it).
 *
 * Every request on a kept-alive connection is authorized again against the current material and
 * clock: a certificate past its `notAfter`, a CRL past its `nextUpdate`, or a serial revoked by a
 * reload stops the connection at its next request (refused and closed, the handler never runs).
 *
 * With `serves`, the listener's own certificate must name that role, at start and at every reload.
 *
 * `reload()` re-reads the certificate, key, CA and revocations and swaps them in with
 * `server.setSecureContext` without closing the listener; open connections are re-authorized
 * under the new revocations. A reload that fails closes every open connection and leaves the
 * listener refusing every peer (`unavailable`) until one succeeds: revocations that cannot be read
 * are not assumed away.
 */
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { constants } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { assertNamesRole } from './identity.js';
import type { PeerIdentity, Role } from './identity.js';
import { loadTlsMaterial } from './material.js';
import type { LoadedCrl, TlsFiles, TlsMaterial } from './material.js';
import { authorizeParsed, parsePeer, REFUSAL_REASONS } from './peer.js';
import type { ParsedPeer, Refusal, RefusalReason } from './peer.js';

/** A request handler that is told who the authorized peer is. */
export type MtlsHandler = (req: IncomingMessage, res: ServerResponse, peer: PeerIdentity) => void;

/** Options of {@link createMtlsServer}. */
export interface MtlsServerOptions {
  readonly files: TlsFiles;
  /** The roles admitted (e.g. the Execution Layer: `['gate']`). */
  readonly allow: readonly Role[];
  readonly host: string;
  readonly port: number;
  /** Clock (ms) of validity and CRL checks; default `Date.now`. */
  readonly now?: () => number;
  /** Told of every refusal (after it is counted); must not throw. */
  readonly onRefused?: (refusal: Refusal) => void;
  /**
   * The role this listener's own certificate must name ({@link assertNamesRole}), with what the
   * error tells the operator to do otherwise: checked at start (which then throws) and at every
   * reload (which then fails, and the listener refuses every peer until one succeeds).
   */
  readonly serves?: { readonly role: Role; readonly fix: string };
  /** Longest TLS handshake (ms); default {@link MTLS_HANDSHAKE_TIMEOUT_MS}. */
  readonly handshakeTimeoutMs?: number;
}

/**
 * A connection that has not finished its TLS handshake by then is closed (refused `handshake`,
 * `ERR_TLS_HANDSHAKE_TIMEOUT`). Node's default is 120 s: a peer that connects and sends nothing
 * held a socket that long, and held a stopping listener's close with it. Role peers on one
 * network finish in milliseconds.
 */
export const MTLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** A listening mutual-TLS endpoint. */
export interface MtlsServer {
  readonly server: Server;
  readonly url: string;
  /** Re-reads the TLS files; rejects (and refuses every peer until a reload succeeds) on failure. */
  reload(): Promise<void>;
  /** Refusals so far, by reason. */
  refusals(): Readonly<Record<RefusalReason, number>>;
  close(): Promise<void>;
}

function secureOptions(m: TlsMaterial) {
  return {
    ca: m.ca,
    cert: m.cert,
    key: m.key,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3' as const,
    // No session tickets: every connection presents and verifies its certificate afresh.
    secureOptions: constants.SSL_OP_NO_TICKET,
  };
}

/** Starts an mTLS HTTPS listener on `host:port` that hands authorized requests to `handler`. */
export async function createMtlsServer(
  handler: MtlsHandler,
  options: MtlsServerOptions,
): Promise<MtlsServer> {
  const now = options.now ?? Date.now;
  const load = async (notOlderThan?: ReadonlyMap<string, LoadedCrl>): Promise<TlsMaterial> => {
    const m = await loadTlsMaterial(options.files, { notOlderThan });
    const serves = options.serves;
    if (serves !== undefined)
      assertNamesRole(m.cert.toString('latin1'), serves.role, options.files.cert, serves.fix);
    return m;
  };
  let material: TlsMaterial | undefined = await load();
  // The newest CRL loaded so far: a reload never goes back before it, even after a failed one.
  let crlFloor = material.crls;
  const counts = Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as Record<RefusalReason, number>;
  const peers = new WeakMap<TLSSocket, ParsedPeer>();
  const open = new Set<TLSSocket>();
  const refuse = (refusal: Refusal): void => {
    counts[refusal.reason] += 1;
    try {
      options.onRefused?.(refusal);
    } catch {
      // Recording is the composition's; the refusal stands whatever happens there.
    }
  };
  /** The peer of `socket` if it is allowed now, under the current material; else refused and closed. */
  const authorize = (socket: TLSSocket): PeerIdentity | undefined => {
    let parsed = peers.get(socket);
    if (parsed === undefined) {
      const read = parsePeer(socket.getPeerCertificate(true));
      if (read.ok) parsed = read.parsed;
      else {
        refuse({ ...read.refusal, ...addressOf(socket) });
        socket.destroy();
        return undefined;
      }
      peers.set(socket, parsed);
    }
    const verdict = authorizeParsed(parsed, options.allow, material, now());
    if (verdict.ok) return verdict.peer;
    peers.delete(socket);
    refuse({ ...verdict.refusal, ...addressOf(socket) });
    socket.destroy();
    return undefined;
  };
  const admit = (socket: TLSSocket): boolean => authorize(socket) !== undefined;
  const server = createServer(
    { ...secureOptions(material), handshakeTimeout: options.handshakeTimeoutMs ?? MTLS_HANDSHAKE_TIMEOUT_MS },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      // Only admitted sockets reach here; a request on any other is cut, never answered.
      if (!open.has(socket)) {
        socket.destroy();
        return;
      }
      // Authorized again for every request: expiry, revocation and CRL freshness move on.
      const peer = authorize(socket);
      if (peer === undefined) return;
      handler(req, res, peer);
    },
  );
  server.on('secureConnection', (socket: TLSSocket) => {
    if (!admit(socket)) return;
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  server.on('tlsClientError', (err: Error & { code?: unknown }, socket: TLSSocket) => {
    refuse({
      reason: 'handshake',
      ...(typeof err.code === 'string' ? { detail: err.code.slice(0, 80) } : {}),
      ...addressOf(socket),
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    server,
    url: `https://${host}:${port}`,
    async reload() {
      let next: TlsMaterial;
      try {
        next = await load(crlFloor);
      } catch (err) {
        material = undefined;
        // Nothing is allowed without material: every open connection is refused and closed.
        for (const socket of [...open]) if (!admit(socket)) open.delete(socket);
        throw err;
      }
      server.setSecureContext(secureOptions(next));
      material = next;
      crlFloor = next.crls;
      // Connections admitted before: still allowed under the new revocations?
      for (const socket of [...open]) if (!admit(socket)) open.delete(socket);
    },
    refusals: () => ({ ...counts }),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function addressOf(socket: TLSSocket): { address?: string } {
  const a = socket.remoteAddress;
  return typeof a === 'string' ? { address: a.slice(0, 64) } : {};
}
