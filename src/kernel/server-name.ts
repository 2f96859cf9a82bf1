/**
 * The host check of every TLS client of failclosed: the mutual-TLS links between roles
 * (src/transport/client.ts) and the Execution Layer's connections to upstreams (MCP Streamable
 * HTTP, declarative `http` tools, OAuth token endpoints: src/execution/adapters/upstream-tls.ts).
 * A server certificate is accepted for a host only when its subject alternative names name that
 * host (a DNS name, wildcards as Node matches them, or an IP address). The subject's common name
 * is never read: RFC 9525 forbids that fallback and RFC 6125 §6.4.4 lets a client skip it.
 * Node's `checkServerIdentity` falls back to the common name whenever the certificate has no DNS
 * name, also when it names only an IP address, so a certificate naming no host at all (a keyless
 * Gate's, FC-INV-6) or one issued for an address would pass for any DNS host spelled like its
 * common name (OE-INV-011: an upstream is reached only under the name the bundle gives it).
 */
import { checkServerIdentity } from 'node:tls';
import type { PeerCertificate } from 'node:tls';

/**
 * Undefined when `cert`'s subject alternative names name `host`; otherwise the error Node gives
 * for a name mismatch (`code` `ERR_TLS_CERT_ALTNAME_INVALID`), which a client's
 * `checkServerIdentity` returns to fail the handshake before anything is written.
 */
export function checkServerName(host: string, cert: PeerCertificate): Error | undefined {
  // Without the subject, Node has no common name to fall back to: no DNS SAN means no DNS host.
  return checkServerIdentity(host, { ...cert, subject: {} });
}
