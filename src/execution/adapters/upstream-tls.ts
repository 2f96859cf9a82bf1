/**
 * TLS to an upstream the Execution Layer reaches itself (a Streamable HTTP MCP server, a
 * declarative `http` tool, an OAuth token endpoint): the certificate is verified against Node's
 * default trusted roots, or only against the CA the bundle pins (`tls.ca`, PEM inline: a CA is
 * not a secret, and the signed bundle hashes it like every other field), with the url's host as
 * the name it must carry in its subject alternative names (never its common name: the product's
 * one host check, `checkServerName`); optionally with a client certificate and key for mutual TLS, both by
 * secret reference (`tls.client_cert_ref`, `tls.client_key_ref`), never in the bundle.
 *
 * {@link connectVerifiedTls} opens the connection to the address checked before the call and
 * resolves only after the handshake verified the certificate: no byte of a request (body,
 * header, secret) is written to a socket whose peer was not verified. There is no way to turn
 * verification off. A certificate that does not verify is `ERR_UPSTREAM_TLS`, its reason naming
 * the destination and the check that failed. (OE-INV-011, OE-INV-009)
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { checkServerName, deny, FailclosedError } from '../../kernel/index.js';
import type { Deny, EgressDestination } from '../../kernel/index.js';
import type { SecretResolver } from '../secrets.js';
import { SECRET_NAME } from '../secrets.js';

/** Largest `tls.ca` a bundle may pin (one or a few PEM certificates). */
export const MAX_CA_PEM_CHARS = 65_536;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/g;

/** An upstream's TLS trust as declared in a bundle spec. */
export interface UpstreamTlsSpec {
  /** PEM certificates: the only CAs the upstream's certificate may chain to. */
  readonly ca?: string;
  /** Secret reference to the client certificate (PEM) for mutual TLS. */
  readonly client_cert_ref?: string;
  /** Secret reference to the client key (PEM) for mutual TLS. */
  readonly client_key_ref?: string;
}

/** The material a connection uses, secrets resolved. */
export interface TlsMaterial {
  readonly ca?: readonly string[];
  readonly cert?: string;
  readonly key?: string;
}

/** The PEM certificates in `text`, each parsed (X.509), or undefined when any is malformed or none. */
export function parseCaPem(text: unknown): readonly string[] | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_CA_PEM_CHARS) return undefined;
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  // Nothing but certificates and whitespace: no key, no stray text.
  if (blocks.length === 0 || text.replace(PEM_CERTIFICATE, '').trim() !== '') return undefined;
  try {
    for (const b of blocks) new X509Certificate(b);
  } catch {
    return undefined;
  }
  return blocks;
}

/**
 * The `tls` member of a spec: absent → `{}`; malformed (unknown keys, a CA that is not PEM
 * certificates, only one of the client certificate and key) → undefined.
 */
export function parseUpstreamTls(raw: unknown): UpstreamTlsSpec | undefined {
  if (raw === undefined) return {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const r = raw as Record<string, unknown>;
  if (!Object.keys(r).every((k) => k === 'ca' || k === 'client_cert_ref' || k === 'client_key_ref'))
    return undefined;
  if (r['ca'] !== undefined && parseCaPem(r['ca']) === undefined) return undefined;
  const cert = r['client_cert_ref'];
  const key = r['client_key_ref'];
  if ((cert === undefined) !== (key === undefined)) return undefined;
  for (const ref of [cert, key])
    if (ref !== undefined && (typeof ref !== 'string' || !SECRET_NAME.test(ref))) return undefined;
  return Object.freeze({
    ...(typeof r['ca'] === 'string' ? { ca: r['ca'] } : {}),
    ...(typeof cert === 'string' && typeof key === 'string'
      ? { client_cert_ref: cert, client_key_ref: key }
      : {}),
  });
}

/** The connection material of `spec`, the client certificate and key resolved; a deny names the reference. */
export function resolveTlsMaterial(
  spec: UpstreamTlsSpec,
  secrets: SecretResolver | undefined,
): TlsMaterial | Deny {
  const ca = spec.ca === undefined ? undefined : parseCaPem(spec.ca);
  if (spec.ca !== undefined && ca === undefined)
    return deny('ERR_ADAPTER_UNAVAILABLE', 'tls.ca is malformed');
  if (spec.client_cert_ref === undefined || spec.client_key_ref === undefined)
    return ca === undefined ? {} : { ca };
  if (secrets === undefined) return deny('ERR_ADAPTER_UNAVAILABLE', 'secret reference cannot be resolved');
  try {
    return {
      ...(ca === undefined ? {} : { ca }),
      cert: secrets.resolve(spec.client_cert_ref),
      key: secrets.resolve(spec.client_key_ref),
    };
  } catch (err) {
    if (err instanceof FailclosedError) return deny(err.code, err.message);
    return deny('ERR_ADAPTER_UNAVAILABLE', 'the client certificate cannot be resolved');
  }
}

/** OpenSSL and Node verification codes, by the check they report. */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
]);
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/**
 * The deny for a failed connection to `to`: a certificate or handshake failure is
 * `ERR_UPSTREAM_TLS` naming which check failed, anything else (refused, reset before TLS)
 * `ERR_TOOL_FAILED`. The reason holds the destination and a code of failclosed's or OpenSSL's
 * own vocabulary, never text from the peer.
 */
export function tlsFailure(err: unknown, to: EgressDestination): Deny {
  const raw = (err as { code?: unknown } | null)?.code;
  const code = typeof raw === 'string' && /^[A-Z0-9_]{1,64}$/.test(raw) ? raw : 'UNKNOWN';
  const at = `tls to ${to.key}`;
  if (UNTRUSTED.has(code))
    return deny('ERR_UPSTREAM_TLS', `${at}: the certificate does not chain to the trusted CA (${code})`);
  if (EXPIRED.has(code))
    return deny('ERR_UPSTREAM_TLS', `${at}: the certificate is expired or not yet valid (${code})`);
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return deny('ERR_UPSTREAM_TLS', `${at}: the certificate does not name the host (${code})`);
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || code === 'EPROTO')
    return deny('ERR_UPSTREAM_TLS', `${at}: the TLS handshake failed (${code})`);
  return deny('ERR_TOOL_FAILED', 'the connection to the upstream failed');
}

/**
 * The alerts a server sends when it refuses the client certificate. Under TLS 1.3 it judges the
 * certificate after the client's side of the handshake ended, so its refusal arrives on a
 * connection the client already wrote its request to (encrypted; the server's HTTP layer never
 * saw it).
 */
const CLIENT_CERT_REFUSED =
  /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(?:CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED|CERTIFICATE_EXPIRED|CERTIFICATE_UNKNOWN|UNKNOWN_CA|ACCESS_DENIED|DECRYPT_ERROR)$/;

/**
 * The deny for a failure on a connection whose handshake verified (the request was written to
 * it): the server refusing the client certificate is `ERR_UPSTREAM_TLS` (nothing reached its HTTP
 * layer); anything else, a corrupt record included, is `ERR_TOOL_FAILED`: the request may have
 * reached the upstream, and the receipt must not say that nothing was sent.
 */
export function tlsFailureAfterHandshake(err: unknown, to: EgressDestination): Deny {
  const raw = (err as { code?: unknown } | null)?.code;
  const code = typeof raw === 'string' && /^[A-Z0-9_]{1,64}$/.test(raw) ? raw : 'UNKNOWN';
  if (CLIENT_CERT_REFUSED.test(code))
    return deny('ERR_UPSTREAM_TLS', `tls to ${to.key}: the server refused the client certificate (${code})`);
  return deny('ERR_TOOL_FAILED', 'the connection to the upstream failed after the request was written');
}

/** Where {@link connectVerifiedTls} connects. */
export interface TlsTarget {
  /** The url's destination: its host is the name the certificate must carry (and the SNI). */
  readonly to: EgressDestination;
  /** The address checked before the call: the connection goes there, nothing resolves again. */
  readonly address: string;
  readonly material: TlsMaterial;
  readonly signal: AbortSignal;
}

/**
 * A TLS connection to `target.address` whose certificate verified for `target.to.host`, or the
 * deny of {@link tlsFailure}. Resolves only after the handshake and the verification (Node
 * destroys a socket that fails either before `secureConnect`), so nothing has been written to it.
 */
export function connectVerifiedTls(target: TlsTarget): Promise<TLSSocket | Deny> {
  const { to, address, material, signal } = target;
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(deny('ERR_TOOL_TIMEOUT', 'aborted before the connection'));
      return;
    }
    const socket = tlsConnect({
      host: address,
      port: to.port,
      // SNI carries a name, never an address (RFC 6066 §3).
      ...(isIP(to.host) === 0 ? { servername: to.host } : {}),
      ...(material.ca === undefined ? {} : { ca: [...material.ca] }),
      ...(material.cert === undefined ? {} : { cert: material.cert }),
      ...(material.key === undefined ? {} : { key: material.key }),
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      ALPNProtocols: ['http/1.1'],
      // The name checked is the url's host, not the address connected to, and only against the
      // certificate's subject alternative names: never its common name (checkServerName).
      checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerName(to.host, cert),
    });
    const onAbort = (): void => {
      socket.destroy();
      settle(deny('ERR_TOOL_TIMEOUT', 'aborted during the TLS handshake'));
    };
    let done = false;
    const settle = (r: TLSSocket | Deny): void => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      resolve(r);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('secureConnect', () => {
      // rejectUnauthorized already refused an unverified peer; this is the belt to its braces.
      if (!socket.authorized) {
        socket.destroy();
        settle(deny('ERR_UPSTREAM_TLS', `tls to ${to.key}: the certificate is not verified`));
        return;
      }
      settle(socket);
    });
    socket.once('error', (err) => {
      socket.destroy();
      settle(tlsFailure(err, to));
    });
    // Closed without an error before the handshake ended: not verified, so not used.
    socket.once('close', () => settle(deny('ERR_TOOL_FAILED', 'the connection to the upstream failed')));
  });
}
