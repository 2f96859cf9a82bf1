/**
 * Authorizing a peer whose certificate the TLS stack has already verified against the CA
 * (FC-INV-6, L7 hardening): it must name exactly one allowed role, be within its validity window
 * on the injected clock (a resumed session is not re-verified by the TLS stack), and neither it nor
 * an intermediate CA above it may be revoked, by the configured serials or by a current CRL of its
 * issuer. Anything else is a refusal with a reason.
 */
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';
import { x509 } from './x509-load.js';
import { identityOf, normalizeSerial } from './identity.js';
import type { PeerIdentity, Role } from './identity.js';
import { revocationOf } from './material.js';
import type { ChainLink, TlsMaterial } from './material.js';

/**
 * Why a peer was refused: `handshake` (no certificate, not from the CA, expired, self-signed:
 * refused by the TLS stack itself), `no_role` (no single role URI), `wrong_role`, `expired`,
 * `revoked`, `revocation_stale` (the CRL is past its next update: revocation status unknown),
 * `unavailable` (this side's TLS material failed to reload: it refuses everyone until it loads).
 */
export type RefusalReason =
  'handshake' | 'no_role' | 'wrong_role' | 'expired' | 'revoked' | 'revocation_stale' | 'unavailable';

/** Every refusal reason, for counters. */
export const REFUSAL_REASONS: readonly RefusalReason[] = [
  'handshake',
  'no_role',
  'wrong_role',
  'expired',
  'revoked',
  'revocation_stale',
  'unavailable',
];

/** A refused peer, as recorded (never a key or a request body). */
export interface Refusal {
  readonly reason: RefusalReason;
  /** The TLS stack's error code for `handshake`; otherwise absent. */
  readonly detail?: string;
  readonly peer_role?: string;
  readonly serial?: string;
  readonly fingerprint?: string;
  readonly address?: string;
}

/** The verdict on one peer. */
export type PeerVerdict =
  { readonly ok: true; readonly peer: PeerIdentity } | { readonly ok: false; readonly refusal: Refusal };

/**
 * A peer certificate as read once per connection: its identity, validity window (ms), and the
 * certificates it presented (the leaf, then what came with it), from which the chain revocation
 * is checked along is rebuilt by signature under each configuration ({@link verifiedChain}).
 */
export interface ParsedPeer {
  readonly id: PeerIdentity;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly leaf: NodeX509Certificate;
  readonly presented: readonly NodeX509Certificate[];
  /** Chains rebuilt so far, per loaded material (a reload rebuilds; undefined: no chain verifies). */
  readonly chains: WeakMap<TlsMaterial, readonly ChainLink[] | undefined>;
}

/** A chain longer than this is not followed further: no operator's PKI is that deep. */
const MAX_CHAIN = 8;

/** The certificates Node reports with the peer's (`getPeerCertificate(true)`), leaf excluded. */
function presentedOf(cert: DetailedPeerCertificate): NodeX509Certificate[] {
  const out: NodeX509Certificate[] = [];
  let at: DetailedPeerCertificate = cert;
  for (let i = 0; i < MAX_CHAIN; i += 1) {
    const up = at.issuerCertificate as DetailedPeerCertificate | undefined;
    // Node ends the chain with the root pointing at itself.
    if (up === undefined || up === at || up.raw === undefined || up.raw.length === 0) break;
    out.push(new NodeX509Certificate(up.raw));
    at = up;
  }
  return out;
}

/** Revocation's view of one certificate: its serial and its issuer as CRLs name it. */
function linkOf(c: NodeX509Certificate): ChainLink {
  const x = new (x509().X509Certificate)(c.raw);
  return { serial: normalizeSerial(x.serialNumber), issuer: x.issuer };
}

const isSelfSigned = (c: NodeX509Certificate): boolean => c.checkIssued(c) && c.verify(c.publicKey);

/**
 * The peer's chain as revocation must see it: from the leaf, each next certificate one whose
 * public key verifies the previous one's signature (Node reports a chain matched by names only,
 * so a peer could present a look-alike of a revoked intermediate; OpenSSL verified the real one),
 * found among the configured CA certificates first, then among those the peer presented; up to
 * a configured CA (a self-signed root is not a link: nothing revokes it). Undefined when no such
 * chain can be rebuilt: what OpenSSL verified is then unknown here, and the peer is refused.
 */
export function verifiedChain(p: ParsedPeer, material: TlsMaterial): readonly ChainLink[] | undefined {
  if (p.chains.has(material)) return p.chains.get(material);
  let chain: readonly ChainLink[] | undefined;
  try {
    chain = rebuild(p, material);
  } catch {
    // A certificate that cannot be read or checked here: no chain, so the peer is refused.
    chain = undefined;
  }
  p.chains.set(material, chain);
  return chain;
}

function rebuild(p: ParsedPeer, material: TlsMaterial): ChainLink[] | undefined {
  const pool = [...material.anchors, ...p.presented];
  const anchor = (c: NodeX509Certificate): boolean =>
    material.anchors.some((a) => a.fingerprint256 === c.fingerprint256);
  const chain: ChainLink[] = [];
  let at = p.leaf;
  for (let i = 0; !anchor(at); i += 1) {
    const issuer = i < MAX_CHAIN ? pool.find((c) => at.checkIssued(c) && at.verify(c.publicKey)) : undefined;
    if (issuer === undefined || issuer.fingerprint256 === at.fingerprint256) return undefined;
    chain.push(linkOf(at));
    at = issuer;
  }
  if (!isSelfSigned(at)) chain.push(linkOf(at));
  return chain;
}

/**
 * Reads the verified certificate `cert` of a peer once, so that every request on its connection
 * can be authorized afresh ({@link authorizeParsed}) without parsing it again.
 */
export function parsePeer(
  cert: PeerCertificate | undefined,
): { readonly ok: true; readonly parsed: ParsedPeer } | { readonly ok: false; readonly refusal: Refusal } {
  if (cert?.raw === undefined || cert.raw.length === 0)
    return { ok: false, refusal: { reason: 'handshake' } };
  try {
    // Attacker-chosen bytes, but chain-verified by the TLS stack before this runs.
    const id = identityOf(cert.raw, cert.fingerprint256);
    const x = new (x509().X509Certificate)(cert.raw);
    return {
      ok: true,
      parsed: {
        id,
        notBefore: x.notBefore.getTime(),
        notAfter: x.notAfter.getTime(),
        leaf: new NodeX509Certificate(cert.raw),
        presented: presentedOf(cert as DetailedPeerCertificate),
        chains: new WeakMap(),
      },
    };
  } catch {
    return { ok: false, refusal: { reason: 'no_role' } };
  }
}

/**
 * Authorizes a parsed peer for `allow` under `material` at `now` (ms): run on every request of a
 * kept-alive connection, so that a certificate that expires, is revoked by a reload, or whose CRL
 * goes stale, or material that fails to reload, stops the connection's next request.
 * `material` undefined: this side could not load its own material, every peer is refused.
 */
export function authorizeParsed(
  p: ParsedPeer,
  allow: readonly Role[],
  material: TlsMaterial | undefined,
  now: number,
): PeerVerdict {
  if (material === undefined) return { ok: false, refusal: { reason: 'unavailable' } };
  const id = p.id;
  const who = { serial: id.serial, fingerprint: id.fingerprint };
  if (id.role === undefined) return { ok: false, refusal: { reason: 'no_role', ...who } };
  if (!allow.includes(id.role))
    return { ok: false, refusal: { reason: 'wrong_role', peer_role: id.role, ...who } };
  if (now < p.notBefore || now > p.notAfter)
    return { ok: false, refusal: { reason: 'expired', peer_role: id.role, ...who } };
  const chain = verifiedChain(p, material);
  if (chain === undefined)
    return { ok: false, refusal: { reason: 'handshake', detail: 'CHAIN_NOT_REBUILT', ...who } };
  const revocation = revocationOf(material, chain, now);
  if (revocation === 'revoked')
    return { ok: false, refusal: { reason: 'revoked', peer_role: id.role, ...who } };
  if (revocation === 'stale')
    return { ok: false, refusal: { reason: 'revocation_stale', peer_role: id.role, ...who } };
  return { ok: true, peer: id };
}

/**
 * Authorizes the verified certificate `cert` of a peer for `allow` under `material` at `now` (ms).
 * `material` undefined: this side could not load its own material, every peer is refused.
 */
export function authorizePeer(
  cert: PeerCertificate | undefined,
  allow: readonly Role[],
  material: TlsMaterial | undefined,
  now: number,
): PeerVerdict {
  if (material === undefined) return { ok: false, refusal: { reason: 'unavailable' } };
  const read = parsePeer(cert);
  return read.ok ? authorizeParsed(read.parsed, allow, material, now) : read;
}
