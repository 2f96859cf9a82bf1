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
  /** PEM or DER CRL signed by one of the CAs; past its `nextUpdate` every peer is refused. */
  readonly crl?: string;
  /** Revoked serial numbers (hex), besides the CRL's. */
  readonly revokedSerials?: readonly string[];
}

/** The CRL as checked: its revoked serials and until when it speaks. */
interface LoadedCrl {
  readonly revoked: ReadonlySet<string>;
  /** ms; undefined when the CRL names no next update (then it never goes stale). */
  readonly nextUpdate: number | undefined;
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
  if (m.crl.nextUpdate !== undefined && now > m.crl.nextUpdate) return 'stale';
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
  return Object.freeze({
    revoked: new Set(crl.entries.map((e) => normalizeSerial(e.serialNumber))),
    nextUpdate: crl.nextUpdate?.getTime(),
  });
}

/**
 * Reads and checks `files`: the CA bundle parses, the key matches the certificate (Node builds a
 * secure context from them), the CRL verifies under a configured CA. Throws on any failure.
 */
export async function loadTlsMaterial(files: TlsFiles): Promise<TlsMaterial> {
  const ca = readFileSync(files.ca);
  const cert = readFileSync(files.cert);
  const key = readFileSync(files.key);
  const cas = PemConverter.decode(ca.toString('latin1')).map((der) => new X509Certificate(der));
  if (cas.length === 0) throw new TypeError(`${files.ca} holds no CA certificate`);
  // Throws when the key does not match the certificate, or either is malformed.
  createSecureContext({ ca, cert, key });
  const revoked = new Set((files.revokedSerials ?? []).map(normalizeSerial));
  const crl = files.crl === undefined ? undefined : await loadCrl(files.crl, cas);
  return Object.freeze({ ca, cert, key, revoked, crl });
}
