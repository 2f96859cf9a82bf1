/**
 * The files of one mutual-TLS identity (CA, own certificate and key, revocations), read and
 * checked as one unit so that a reload replaces all of it or nothing (docs/deployment.md
 * "Mutual TLS"). Every file is configuration, parsed at this edge: a malformed, mismatched or
 * unverifiable one is an error, never a weaker check.
 */
import { X509Certificate as NodeX509Certificate, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { X509Certificate, X509Crl } from './x509.js';
import { x509 } from './x509-load.js';
import { normalizeSerial } from './identity.js';

const crypto = webcrypto;

/** Where one role's mutual-TLS files are. */
export interface TlsFiles {
  /** PEM: the CA certificate(s) that peers' certificates must chain to. */
  readonly ca: string;
  /** PEM: this role's certificate (its chain after it, if any). */
  readonly cert: string;
  /** PEM: this role's private key. */
  readonly key: string;
  /**
   * PEM: one CRL per issuing CA (or one DER CRL), each signed by a CA of the `ca` bundle, each
   * with a `nextUpdate` (past it every peer is refused). A CRL applies to the certificates its CA
   * issued, leaf or intermediate: an intermediate CA revoked by its root's CRL takes every
   * certificate under it with it. A reload refuses a CRL older than the one loaded for the same CA
   * (lower CRL number, or earlier `thisUpdate`), or one CA's CRL dropped.
   */
  readonly crl?: string;
  /** Revoked serial numbers (hex), besides the CRL's. */
  readonly revokedSerials?: readonly string[];
}

/** A CRL as checked: its issuer, revoked serials, until when it speaks, and how recent it is. */
export interface LoadedCrl {
  /** The issuing CA's subject name, as certificates name their issuer. */
  readonly issuer: string;
  readonly revoked: ReadonlySet<string>;
  /** ms; required: a CRL without one would never go stale. */
  readonly nextUpdate: number;
  /** ms. */
  readonly thisUpdate: number;
  /** Its CRL number extension (RFC 5280 §5.2.3), when it has one. */
  readonly number: bigint | undefined;
}

/** One identity's material, loaded and checked. */
export interface TlsMaterial {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly revoked: ReadonlySet<string>;
  /** The CRLs by their issuer's subject name (empty: no CRL configured). */
  readonly crls: ReadonlyMap<string, LoadedCrl>;
  /** The `ca` bundle's certificates, for rebuilding a peer's chain by signature (peer.ts). */
  readonly anchors: readonly NodeX509Certificate[];
}

/** One certificate of a peer's chain as revocation checks it: its serial (normalized) and issuer. */
export interface ChainLink {
  readonly serial: string;
  readonly issuer: string;
}

/** Why a revocation check refuses: a serial is revoked, or a CRL is past its next update. */
export type RevocationVerdict = 'ok' | 'revoked' | 'stale';

/**
 * Checks a peer's chain (`chain[0]` the leaf, then the intermediates above it; not the self-signed
 * root) against `m`'s revocations at `now` (ms): a link is revoked when its serial is among the
 * configured serials or on the CRL of the CA that issued it. Any CRL past its next update makes
 * the answer `stale`: what it would say now is unknown.
 */
export function revocationOf(m: TlsMaterial, chain: readonly ChainLink[], now: number): RevocationVerdict {
  for (const link of chain) {
    if (m.revoked.has(link.serial)) return 'revoked';
    if (m.crls.get(link.issuer)?.revoked.has(link.serial) === true) return 'revoked';
  }
  for (const crl of m.crls.values()) if (now > crl.nextUpdate) return 'stale';
  return 'ok';
}

/** The CRLs of the file at `path`: one DER CRL, or PEM blocks of one or more. */
function readCrls(path: string): X509Crl[] {
  const { PemConverter, X509Crl } = x509();
  const bytes = readFileSync(path);
  const text = bytes.toString('latin1');
  if (!PemConverter.isPem(text)) return [new X509Crl(new Uint8Array(bytes))];
  const crls = PemConverter.decodeWithHeaders(text)
    .filter((b) => b.type === 'X509 CRL' || b.type === 'CRL')
    .map((b) => new X509Crl(new Uint8Array(b.rawData)));
  if (crls.length === 0) throw new TypeError(`${path} holds no CRL`);
  return crls;
}

async function loadCrls(path: string, cas: readonly X509Certificate[]): Promise<Map<string, LoadedCrl>> {
  const out = new Map<string, LoadedCrl>();
  for (const crl of readCrls(path)) {
    const loaded = await checkCrl(crl, path, cas);
    // Two CRLs of one CA would leave which one speaks to chance.
    if (out.has(loaded.issuer)) throw new TypeError(`CRL ${path} holds two CRLs of ${loaded.issuer}`);
    out.set(loaded.issuer, loaded);
  }
  return out;
}

async function checkCrl(crl: X509Crl, path: string, cas: readonly X509Certificate[]): Promise<LoadedCrl> {
  // The CRL is trusted only under the signature of a configured CA that issued it.
  const issuer = cas.find((c) => c.subject === crl.issuer);
  if (issuer === undefined) throw new TypeError(`CRL ${path} was not issued by a configured CA`);
  if (!(await crl.verify({ publicKey: issuer.publicKey }, crypto)))
    throw new TypeError(`CRL ${path} signature does not verify`);
  const nextUpdate = crl.nextUpdate?.getTime();
  if (nextUpdate === undefined) throw new TypeError(`CRL ${path} has no nextUpdate`);
  const numberExt = crl.extensions.find((e) => e.type === CRL_NUMBER_OID);
  return Object.freeze({
    issuer: crl.issuer,
    revoked: new Set(crl.entries.map((e) => normalizeSerial(e.serialNumber))),
    nextUpdate,
    thisUpdate: crl.thisUpdate.getTime(),
    number: numberExt === undefined ? undefined : derInteger(new Uint8Array(numberExt.value), path),
  });
}

const CRL_NUMBER_OID = '2.5.29.20';

/** A DER INTEGER (the CRL number's extension value), non-negative, at most 20 octets (RFC 5280). */
function derInteger(b: Uint8Array, path: string): bigint {
  const bad = () => new TypeError(`CRL ${path} has a malformed CRL number`);
  if (b.length < 3 || b[0] !== 0x02) throw bad();
  const len = b[1]!;
  if (len === 0 || len > 21 || b.length !== 2 + len || (b[2]! & 0x80) !== 0) throw bad();
  let n = 0n;
  for (const octet of b.subarray(2)) n = (n << 8n) | BigInt(octet);
  return n;
}

/** Why `next` may not replace `loaded`: it is older (a rollback would un-revoke). */
function olderThan(next: LoadedCrl, loaded: LoadedCrl): boolean {
  if (next.number !== undefined && loaded.number !== undefined && next.number < loaded.number) return true;
  return next.thisUpdate < loaded.thisUpdate;
}

/**
 * Reads and checks `files`: the CA bundle parses, the key matches the certificate (Node builds a
 * secure context from them), each CRL verifies under a configured CA and names its next update,
 * and none is older than `options.notOlderThan`'s CRL of its CA (the CRLs loaded before: a reload
 * never rolls revocations back, nor drops a CA's CRL). Throws on any failure.
 */
export async function loadTlsMaterial(
  files: TlsFiles,
  options: { readonly notOlderThan?: ReadonlyMap<string, LoadedCrl> | undefined } = {},
): Promise<TlsMaterial> {
  const ca = readFileSync(files.ca);
  const cert = readFileSync(files.cert);
  const key = readFileSync(files.key);
  const { PemConverter, X509Certificate } = x509();
  const cas = PemConverter.decode(ca.toString('latin1')).map((der) => new X509Certificate(der));
  if (cas.length === 0) throw new TypeError(`${files.ca} holds no CA certificate`);
  // Throws when the key does not match the certificate, or either is malformed.
  createSecureContext({ ca, cert, key });
  const revoked = new Set((files.revokedSerials ?? []).map(normalizeSerial));
  const crls = files.crl === undefined ? new Map<string, LoadedCrl>() : await loadCrls(files.crl, cas);
  for (const [issuer, floor] of options.notOlderThan ?? []) {
    const next = crls.get(issuer);
    if (next === undefined || olderThan(next, floor))
      throw new TypeError(`CRL ${files.crl ?? '(none)'} of ${issuer} is older than the one loaded`);
  }
  const anchors = PemConverter.decode(ca.toString('latin1')).map(
    (der) => new NodeX509Certificate(Buffer.from(der)),
  );
  return Object.freeze({ ca, cert, key, revoked, crls, anchors });
}
