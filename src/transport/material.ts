/**
 * The files of one mutual-TLS identity (CA, own certificate and key, revocations), read and
 * checked as one unit so that a reload replaces all of it or nothing (docs/deployment.md
 * "Mutual TLS"). Every file is configuration, parsed at this edge: a malformed, mismatched or
 * unverifiable one is an error, never a weaker check.
 */
import { webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { PemConverter, X509Certificate, X509Crl } from './x509.js';
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
   * PEM or DER CRL signed by one of the CAs, with a `nextUpdate` (past it every peer is refused).
   * A reload refuses a CRL older than the one loaded (lower CRL number, or earlier `thisUpdate`).
   */
  readonly crl?: string;
  /** Revoked serial numbers (hex), besides the CRL's. */
  readonly revokedSerials?: readonly string[];
}

/** The CRL as checked: its revoked serials, until when it speaks, and how recent it is. */
export interface LoadedCrl {
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
  readonly crl: LoadedCrl | undefined;
}

/** Why a revocation check refuses: the serial is revoked, or the CRL is past its next update. */
export type RevocationVerdict = 'ok' | 'revoked' | 'stale';

/** Checks `serial` (normalized) against `m`'s revocations at `now` (ms). */
export function revocationOf(m: TlsMaterial, serial: string, now: number): RevocationVerdict {
  if (m.revoked.has(serial)) return 'revoked';
  if (m.crl === undefined) return 'ok';
  if (m.crl.revoked.has(serial)) return 'revoked';
  if (now > m.crl.nextUpdate) return 'stale';
  return 'ok';
}

async function loadCrl(path: string, cas: readonly X509Certificate[]): Promise<LoadedCrl> {
  const bytes = readFileSync(path);
  const text = bytes.toString('latin1');
  const crl = new X509Crl(PemConverter.isPem(text) ? text : new Uint8Array(bytes));
  // The CRL is trusted only under the signature of a configured CA that issued it.
  const issuer = cas.find((c) => c.subject === crl.issuer);
  if (issuer === undefined) throw new TypeError(`CRL ${path} was not issued by a configured CA`);
  if (!(await crl.verify({ publicKey: issuer.publicKey }, crypto)))
    throw new TypeError(`CRL ${path} signature does not verify`);
  const nextUpdate = crl.nextUpdate?.getTime();
  if (nextUpdate === undefined) throw new TypeError(`CRL ${path} has no nextUpdate`);
  const numberExt = crl.extensions.find((e) => e.type === CRL_NUMBER_OID);
  return Object.freeze({
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
 * secure context from them), the CRL verifies under a configured CA and names its next update,
 * and is not older than `options.notOlderThan` (the CRL loaded before: a reload never rolls
 * revocations back). Throws on any failure.
 */
export async function loadTlsMaterial(
  files: TlsFiles,
  options: { readonly notOlderThan?: LoadedCrl | undefined } = {},
): Promise<TlsMaterial> {
  const ca = readFileSync(files.ca);
  const cert = readFileSync(files.cert);
  const key = readFileSync(files.key);
  const cas = PemConverter.decode(ca.toString('latin1')).map((der) => new X509Certificate(der));
  if (cas.length === 0) throw new TypeError(`${files.ca} holds no CA certificate`);
  // Throws when the key does not match the certificate, or either is malformed.
  createSecureContext({ ca, cert, key });
  const revoked = new Set((files.revokedSerials ?? []).map(normalizeSerial));
  const crl = files.crl === undefined ? undefined : await loadCrl(files.crl, cas);
  const floor = options.notOlderThan;
  if (floor !== undefined && (crl === undefined || olderThan(crl, floor)))
    throw new TypeError(`CRL ${files.crl ?? '(none)'} is older than the one loaded`);
  return Object.freeze({ ca, cert, key, revoked, crl });
}
