/**
 * The development PKI behind `failclosed certs` (docs/cli.md, docs/deployment.md "Mutual TLS"):
 * a CA, per-role certificates and a CRL, all ECDSA P-256 / SHA-256. Production uses the
 * operator's own CA; these files follow the same rules a production certificate must (one SAN
 * URI `urn:failclosed:role:<role>`, serverAuth and clientAuth, a positive random serial; a
 * certificate only to connect out with, a `client`'s or a keyless Gate's, names no host and has
 * clientAuth alone).
 *
 * Why P-256 and not Ed25519: Node's TLS accepts Ed25519 certificates (OpenSSL 3, TLS 1.3), but
 * operators' CAs, HSMs, cert-manager issuers and most TLS clients outside Node issue and accept
 * ECDSA P-256 everywhere; the development PKI shows what production will use.
 */
import { webcrypto, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JsonGeneralName, X509Certificate, X509Crl } from './x509.js';
import { x509 } from './x509-load.js';
import { isIP } from 'node:net';
import { normalizeSerial, roleUri } from './identity.js';
import type { Role } from './identity.js';

const crypto = webcrypto;
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

/** Paths of the development PKI inside its directory. */
export function pkiPaths(dir: string) {
  return {
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    crl: join(dir, 'crl.pem'),
    revoked: join(dir, 'revoked.json'),
    cert: (name: string) => join(dir, `${name}.pem`),
    key: (name: string) => join(dir, `${name}.key`),
  } as const;
}

/** Names of certificate files: a role, or a client's name. */
const FILE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function writeSecretFile(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
}

function writePublicFile(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o644 });
}

async function newKeyPair(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const { PemConverter } = x509();
  return `${PemConverter.encode(await crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY')}\n`;
}

/** A positive 128-bit serial (RFC 5280 §4.1.2.2: positive, at most 20 octets). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

/** Options of {@link createDevCa}. */
export interface DevCaOptions {
  /** Validity in days; default 365. */
  readonly days?: number;
  readonly now?: () => number;
}

/** What {@link createDevCa} wrote. */
export interface DevCaResult {
  readonly created: boolean;
  readonly caCert: string;
}

/**
 * Creates the development CA in `dir` (`ca.pem`, `ca.key` 0600) once; an existing CA is kept
 * (`created: false`), so certificates issued under it stay valid.
 */
export async function createDevCa(dir: string, options: DevCaOptions = {}): Promise<DevCaResult> {
  const {
    BasicConstraintsExtension,
    KeyUsageFlags,
    KeyUsagesExtension,
    SubjectKeyIdentifierExtension,
    X509CertificateGenerator,
  } = x509();
  const p = pkiPaths(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (existsSync(p.caCert) || existsSync(p.caKey)) return { created: false, caCert: p.caCert };
  const now = options.now?.() ?? Date.now();
  const keys = await newKeyPair();
  const cert = await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: 'CN=failclosed development CA',
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + (options.days ?? 365) * DAY_MS),
      keys,
      signingAlgorithm: ALG,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        await SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  writeSecretFile(p.caKey, await privateKeyPem(keys.privateKey));
  writePublicFile(p.caCert, `${cert.toString('pem')}\n`);
  return { created: true, caCert: p.caCert };
}

async function readCa(dir: string): Promise<{ cert: X509Certificate; key: CryptoKey }> {
  const { PemConverter, X509Certificate } = x509();
  const p = pkiPaths(dir);
  if (!existsSync(p.caCert) || !existsSync(p.caKey))
    throw new TypeError(`${dir} holds no development CA (run: failclosed certs init --dir ${dir})`);
  const cert = new X509Certificate(readFileSync(p.caCert, 'utf8'));
  const der = PemConverter.decodeFirst(readFileSync(p.caKey, 'utf8'));
  const key = await crypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']);
  return { cert, key };
}

/** Options of {@link issueCert}. */
export interface IssueOptions {
  readonly role: Role;
  /** File name (and subject CN); default the role. */
  readonly name?: string;
  /** Validity in days; default 90. */
  readonly days?: number;
  /** Start of validity (ms); default now minus a minute. Tests make expired certificates with it. */
  readonly notBefore?: number;
  /** DNS names and IP addresses it serves under (not for `client`); default localhost, 127.0.0.1, ::1. */
  readonly hosts?: readonly string[];
  /**
   * A certificate only to connect out with, as a `client`'s always is: no host or IP address in
   * its subject alternative names, and `clientAuth` alone as its extended key usage, so that no
   * TLS client accepts it as a server's. A keyless Gate's (FC-INV-6): whoever holds it cannot
   * serve under any name, whatever role a peer would accept of a server.
   */
  readonly clientOnly?: boolean;
  readonly now?: () => number;
}

/** What {@link issueCert} wrote. */
export interface IssueResult {
  readonly cert: string;
  readonly key: string;
  readonly serial: string;
}

/**
 * Issues a certificate for `role` under the development CA in `dir`: `<name>.pem` and
 * `<name>.key` (0600), replacing earlier ones of that name (rotation: the old serial stays valid
 * until it expires or is revoked).
 */
export async function issueCert(dir: string, options: IssueOptions): Promise<IssueResult> {
  const {
    AuthorityKeyIdentifierExtension,
    BasicConstraintsExtension,
    ExtendedKeyUsage,
    ExtendedKeyUsageExtension,
    KeyUsageFlags,
    KeyUsagesExtension,
    SubjectAlternativeNameExtension,
    SubjectKeyIdentifierExtension,
    X509CertificateGenerator,
  } = x509();
  const name = options.name ?? options.role;
  if (!FILE_NAME.test(name)) throw new TypeError('certificate name must match [a-z0-9][a-z0-9._-]*');
  if (['ca', 'crl', 'revoked'].includes(name)) throw new TypeError(`certificate name ${name} is reserved`);
  const days = options.days ?? 90;
  if (!Number.isFinite(days) || days <= 0) throw new TypeError('days must be positive');
  const ca = await readCa(dir);
  const p = pkiPaths(dir);
  const now = options.now?.() ?? Date.now();
  const notBefore = options.notBefore ?? now - 60_000;
  const keys = await newKeyPair();
  if (options.clientOnly === true && options.hosts !== undefined && options.hosts.length > 0)
    throw new TypeError('a client-only certificate names no host');
  const server = options.role !== 'client' && options.clientOnly !== true;
  const hosts = server ? (options.hosts ?? ['localhost', '127.0.0.1', '::1']) : [];
  const names: JsonGeneralName[] = [
    { type: 'url', value: roleUri(options.role) },
    ...hosts.map((h): JsonGeneralName => ({ type: isIP(h) === 0 ? 'dns' : 'ip', value: h })),
  ];
  const serial = randomSerial();
  const cert = await X509CertificateGenerator.create(
    {
      serialNumber: serial,
      subject: `CN=${name}, OU=${options.role}, O=failclosed`,
      issuer: ca.cert.subject,
      notBefore: new Date(notBefore),
      notAfter: new Date(notBefore + days * DAY_MS),
      publicKey: keys.publicKey,
      signingKey: ca.key,
      signingAlgorithm: ALG,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension(
          server ? [ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth] : [ExtendedKeyUsage.clientAuth],
        ),
        new SubjectAlternativeNameExtension(names),
        await SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await AuthorityKeyIdentifierExtension.create(ca.cert, false, crypto),
      ],
    },
    crypto,
  );
  writeSecretFile(p.key(name), await privateKeyPem(keys.privateKey));
  writePublicFile(p.cert(name), `${cert.toString('pem')}\n`);
  return { cert: p.cert(name), key: p.key(name), serial: normalizeSerial(cert.serialNumber) };
}

/** Options of {@link revokeCert} and {@link writeCrl}. */
export interface CrlOptions {
  /** The CRL's `nextUpdate`, in days; default 30. Past it, peers refuse everyone (status unknown). */
  readonly days?: number;
  readonly now?: () => number;
}

function readRevoked(dir: string): string[] {
  const p = pkiPaths(dir).revoked;
  if (!existsSync(p)) return [];
  const v: unknown = JSON.parse(readFileSync(p, 'utf8'));
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string'))
    throw new TypeError(`${p} is not a list of serials`);
  return v;
}

/**
 * Adds `serial` to the development CA's revocations (`revoked.json`) and rewrites `crl.pem`,
 * signed by the CA. Returns the CRL's path.
 */
export async function revokeCert(dir: string, serial: string, options: CrlOptions = {}): Promise<string> {
  if (!/^[0-9a-fA-F:]{1,64}$/.test(serial)) throw new TypeError('serial must be hexadecimal');
  const revoked = [...new Set([...readRevoked(dir), normalizeSerial(serial)])].sort();
  writePublicFile(pkiPaths(dir).revoked, `${JSON.stringify(revoked, null, 2)}\n`);
  return writeCrl(dir, options);
}

/** Rewrites `crl.pem` over `revoked.json` (also to move its `nextUpdate` on). */
export async function writeCrl(dir: string, options: CrlOptions = {}): Promise<string> {
  const { PemConverter, X509CrlGenerator } = x509();
  const ca = await readCa(dir);
  const now = options.now?.() ?? Date.now();
  const revoked = readRevoked(dir);
  const crl: X509Crl = await X509CrlGenerator.create(
    {
      issuer: ca.cert.subject,
      thisUpdate: new Date(now - 60_000),
      nextUpdate: new Date(now + (options.days ?? 30) * DAY_MS),
      entries: revoked.map((s) => ({
        serialNumber: s.length % 2 === 0 ? s : `0${s}`,
        revocationDate: new Date(now),
      })),
      signingKey: ca.key,
      signingAlgorithm: ALG,
    },
    crypto,
  );
  const path = pkiPaths(dir).crl;
  // The PEM label OpenSSL and every other reader expect (RFC 7468 §5).
  writePublicFile(path, `${PemConverter.encode(crl.rawData, 'X509 CRL')}\n`);
  return path;
}
