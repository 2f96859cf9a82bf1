/**
 * `tls` and `executor_url` in `failclosed.json`: mutual TLS between the Gate, the Control Plane
 * and the Execution Layer (docs/deployment.md "Mutual TLS", FC-INV-6, L7 hardening). Relative
 * paths are resolved against the data directory. Parsed at this edge; anything malformed refuses
 * the start.
 */
import { isAbsolute, join } from 'node:path';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import type { TlsFiles } from '../transport/index.js';

/** A certificate and its private key. */
export interface TlsIdentityConfig {
  readonly cert: string;
  readonly key: string;
}

/** `failclosed.json` `tls`. */
export interface TlsConfig {
  /** The CA bundle peers' certificates must chain to. */
  readonly ca: string;
  /** A CRL signed by that CA (optional). */
  readonly crl?: string;
  /** Revoked serial numbers, hex (optional). */
  readonly revoked_serials?: readonly string[];
  /** The Execution Layer's listener identity: with it, `/v1/execute` is served over mTLS to the `gate` role only. */
  readonly executor?: TlsIdentityConfig;
  /** The Gate's identity when it calls an Execution Layer at `executor_url` (a client only). */
  readonly gate?: TlsIdentityConfig;
  /**
   * The Control Plane's identity: the certificate its internal listener (`internal_port`) serves,
   * which must name the `control-plane` role; Execution Layers and keyless Gates accept no other.
   */
  readonly control_plane?: TlsIdentityConfig;
}

const bad = (m: string): TypeError => new TypeError(`failclosed.json: tls: ${m}`);

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function path(o: JsonObject, k: string): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length === 0 || v.length > 4096) throw bad(`${k} must be a file path`);
  return v;
}

function identity(v: JsonValue | undefined, name: string): TlsIdentityConfig | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw bad(`${name} must be an object`);
  for (const k of Object.keys(v)) if (k !== 'cert' && k !== 'key') throw bad(`${name}: unknown field ${k}`);
  return Object.freeze({ cert: path(v, 'cert'), key: path(v, 'key') });
}

/** Parses `tls`. */
export function parseTlsConfig(v: JsonValue): TlsConfig {
  if (!isObject(v)) throw bad('must be an object');
  const fields = ['ca', 'crl', 'revoked_serials', 'executor', 'gate', 'control_plane'];
  for (const k of Object.keys(v)) if (!fields.includes(k)) throw bad(`unknown field ${k}`);
  const serials = v['revoked_serials'];
  if (
    serials !== undefined &&
    (!Array.isArray(serials) ||
      !serials.every((s) => typeof s === 'string' && /^[0-9a-fA-F:]{1,64}$/.test(s)))
  )
    throw bad('revoked_serials must be a list of hexadecimal serial numbers');
  const executor = identity(v['executor'], 'executor');
  const gate = identity(v['gate'], 'gate');
  const controlPlane = identity(v['control_plane'], 'control_plane');
  return Object.freeze({
    ca: path(v, 'ca'),
    ...(v['crl'] === undefined ? {} : { crl: path(v, 'crl') }),
    ...(serials === undefined ? {} : { revoked_serials: Object.freeze([...(serials as string[])]) }),
    ...(executor === undefined ? {} : { executor }),
    ...(gate === undefined ? {} : { gate }),
    ...(controlPlane === undefined ? {} : { control_plane: controlPlane }),
  });
}

/** Parses `executor_url`: an `https://` URL without credentials, path, query or fragment. */
export function parseExecutorUrl(v: JsonValue): string {
  if (typeof v !== 'string') throw new TypeError('failclosed.json: executor_url must be a string');
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new TypeError('failclosed.json: executor_url must be a URL');
  }
  if (u.protocol !== 'https:' || u.username !== '' || u.password !== '' || u.search !== '' || u.hash !== '')
    throw new TypeError('failclosed.json: executor_url must be https://HOST:PORT');
  if (u.pathname !== '/') throw new TypeError('failclosed.json: executor_url must have no path');
  return u.origin;
}

/** The files of `identity` under `tls`, resolved against the data directory `root`. */
export function tlsFilesFor(root: string, tls: TlsConfig, id: TlsIdentityConfig): TlsFiles {
  const at = (p: string): string => (isAbsolute(p) ? p : join(root, p));
  return {
    ca: at(tls.ca),
    cert: at(id.cert),
    key: at(id.key),
    ...(tls.crl === undefined ? {} : { crl: at(tls.crl) }),
    ...(tls.revoked_serials === undefined ? {} : { revokedSerials: tls.revoked_serials }),
  };
}
