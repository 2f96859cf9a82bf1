/**
 * A role's identity in its certificate (FC-INV-6 "authenticated Gate identity", L7 hardening:
 * mutual TLS between roles). A certificate names its role with exactly one subject alternative
 * name URI `urn:failclosed:role:<role>`; peers read that URI, never the subject's common name.
 * docs/deployment.md "Mutual TLS" says what an operator's own CA must put in a certificate.
 */
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { x509 } from './x509-load.js';

/** The roles a certificate can name: the four roles of SPEC §1, and clients of the Gate. */
export const ROLES = ['gate', 'control-plane', 'executor', 'ledger', 'client'] as const;

/** A role named by a certificate. */
export type Role = (typeof ROLES)[number];

/** The SAN URI prefix that carries a role. */
export const ROLE_URI_PREFIX = 'urn:failclosed:role:';

/** True when `v` names a role. */
export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}

/** The SAN URI that names `role`. */
export function roleUri(role: Role): string {
  return `${ROLE_URI_PREFIX}${role}`;
}

/** What a certificate says about its holder, as peers use it. */
export interface PeerIdentity {
  /** The one role its SAN URI names; undefined when it names none, several, or an unknown one. */
  readonly role: Role | undefined;
  /** Serial number, lowercase hex without leading zeros (as revocation lists are compared). */
  readonly serial: string;
  /** SHA-256 of the DER certificate, lowercase hex. */
  readonly fingerprint: string;
}

/** A serial number as compared: lowercase hex, no `:` separators, no leading zeros. */
export function normalizeSerial(serial: string): string {
  const hex = serial.replace(/:/g, '').toLowerCase().replace(/^0+/, '');
  return hex.length === 0 ? '0' : hex;
}

/**
 * Reads the identity of a DER certificate presented by a peer (attacker-controlled bytes, but
 * already chain-verified by the TLS stack before this is called). Throws on a malformed one.
 */
export function identityOf(der: Uint8Array, fingerprint: string): PeerIdentity {
  const { SubjectAlternativeNameExtension, X509Certificate } = x509();
  const cert = new X509Certificate(der);
  const san = cert.getExtension(SubjectAlternativeNameExtension);
  // The URN scheme and namespace are case-insensitive (RFC 8141 §3.1): every spelling of the
  // prefix is a role URI and counts; the role after it is compared exactly.
  const uris = (san?.names.toJSON() ?? []).filter(
    (n) => n.type === 'url' && n.value.slice(0, ROLE_URI_PREFIX.length).toLowerCase() === ROLE_URI_PREFIX,
  );
  // Exactly one role URI: two would make the role ambiguous, and ambiguous is a refusal.
  const named = uris.length === 1 ? uris[0]!.value.slice(ROLE_URI_PREFIX.length) : undefined;
  return Object.freeze({
    role: isRole(named) ? named : undefined,
    serial: normalizeSerial(cert.serialNumber),
    fingerprint: fingerprint.replace(/:/g, '').toLowerCase(),
  });
}

/**
 * The host names and IP addresses a certificate names in its subject alternative names (`dns` and
 * `ip` entries), the names under which a TLS client accepts it as a server. `cert` is DER, or PEM
 * whose first block is the certificate (its chain may follow). Throws on a certificate that does
 * not parse, or whose subject alternative names do not: what it names is then unknown.
 */
export function serverNamesOf(cert: string | Uint8Array): string[] {
  const { SubjectAlternativeNameExtension, X509Certificate } = x509();
  const c = new X509Certificate(cert);
  const san = c.getExtension(SubjectAlternativeNameExtension);
  return (san?.names.toJSON() ?? [])
    .filter((n) => n.type === 'dns' || n.type === 'ip')
    .map((n) => `${n.type === 'dns' ? 'DNS' : 'IP'}:${n.value}`);
}

/**
 * Refuses a certificate of one's own that does not name `role` as peers read it
 * ({@link identityOf}: exactly one role URI): a listener serving it would be refused by every
 * peer that expects that role, or, worse, pass with another role's certificate for a peer that
 * decides by host name alone (FC-INV-6, L7 mutual TLS between roles). `pem` is the certificate
 * file's text (its leaf as TLS reads it), `path` names it in the error, `fix` says how to get one.
 */
export function assertNamesRole(pem: string, role: Role, path: string, fix: string): void {
  let named: Role | undefined;
  try {
    const leaf = new NodeX509Certificate(Buffer.from(pem, 'latin1'));
    named = identityOf(leaf.raw, leaf.fingerprint256).role;
  } catch (err) {
    throw new TypeError(`${path}: its role cannot be read (${(err as Error).message})`);
  }
  if (named !== role)
    throw new TypeError(
      `${path} names ${named === undefined ? 'no role' : `the ${named} role`}, not ${role} (${roleUri(role)}): ${fix}`,
    );
}

/**
 * Refuses an identity that only ever connects out (a keyless Gate, FC-INV-6) when its
 * certificate names a host or an IP address: whoever holds that key could then serve under those
 * names and pass, to any peer that expects its role of a server, for the server it meant (no
 * peer expects a `gate` server today: the Control Plane's internal listener is accepted by the
 * `control-plane` role only; this keeps it so should one). A certificate whose names cannot
 * be read is refused as well. `pem` is the certificate file's text, `path` names it in the error.
 */
export function assertNamesNoHost(pem: string, path: string): void {
  let names: string[];
  try {
    // The leaf as TLS reads it (OpenSSL skips PEM blocks not labelled as certificates).
    names = serverNamesOf(new NodeX509Certificate(Buffer.from(pem, 'latin1')).raw);
  } catch (err) {
    throw new TypeError(`${path}: its subject alternative names cannot be read (${(err as Error).message})`);
  }
  if (names.length > 0)
    throw new TypeError(
      `${path} names ${names.join(', ')}: a certificate used only to connect out must name no host or IP address, or its holder could serve under those names as the peer they belong to (issue one with: failclosed certs issue --role R --name N --no-host)`,
    );
}
