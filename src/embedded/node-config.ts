/**
 * The parts every role process's configuration file shares (`failclosed serve executor`,
 * `failclosed serve gate`; docs/deployment.md): strict fields, a listen address, the mutual-TLS
 * files, https origins of peers, logs and metrics. Each parser takes the role's own error maker,
 * so a message names the file it is about. Unknown fields are refused everywhere.
 */
import { isAbsolute, join } from 'node:path';
import { isIP } from 'node:net';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import type { TlsFiles } from '../transport/index.js';
import { parseLogConfig, parseMetricsConfig } from './telemetry/config.js';
import type { LogConfig, MetricsConfig } from './telemetry/config.js';

/** Makes the role's configuration error. */
export type ConfigError = (message: string) => TypeError;

const TLS_FIELDS = ['ca', 'cert', 'key', 'crl', 'revoked_serials'];

export const isConfigObject = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `o[k]`, a non-empty string of at most `max` characters. */
export function configText(o: JsonObject, k: string, bad: ConfigError, max = 4096): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw bad(`${k} must be a non-empty string`);
  return v;
}

/** `o[k]`, a positive safe integer, or `fallback` when absent. */
export function configPositive(o: JsonObject, k: string, fallback: number, bad: ConfigError): number {
  const v = o[k];
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || (v as number) <= 0) throw bad(`${k} must be a positive integer`);
  return v as number;
}

/** `listen`: `{host, port}`, an IP literal and a port (0 = any free one). */
export function configListen(v: JsonValue | undefined, bad: ConfigError): { host: string; port: number } {
  if (!isConfigObject(v)) throw bad('listen must be { host, port }');
  const host = configText(v, 'host', bad, 64);
  if (isIP(host) === 0) throw bad('listen.host must be an IP address');
  const port = v['port'];
  if (!Number.isSafeInteger(port) || (port as number) < 0 || (port as number) > 65535)
    throw bad('listen.port must be a port number');
  return Object.freeze({ host, port: port as number });
}

/** `tls`: `{ca, cert, key, crl?, revoked_serials?}`, paths resolved against `base`. */
export function configTls(v: JsonValue | undefined, base: string, bad: ConfigError): TlsFiles {
  const at = (p: string): string => (isAbsolute(p) ? p : join(base, p));
  if (!isConfigObject(v)) throw bad('tls must be { ca, cert, key }');
  for (const k of Object.keys(v)) if (!TLS_FIELDS.includes(k)) throw bad(`tls: unknown field ${k}`);
  const serials = v['revoked_serials'];
  if (
    serials !== undefined &&
    (!Array.isArray(serials) ||
      !serials.every((s) => typeof s === 'string' && /^[0-9a-fA-F:]{1,64}$/.test(s)))
  )
    throw bad('tls.revoked_serials must be a list of hexadecimal serial numbers');
  return Object.freeze({
    ca: at(configText(v, 'ca', bad)),
    cert: at(configText(v, 'cert', bad)),
    key: at(configText(v, 'key', bad)),
    ...(v['crl'] === undefined ? {} : { crl: at(configText(v, 'crl', bad)) }),
    ...(serials === undefined ? {} : { revokedSerials: serials as string[] }),
  });
}

/** `o[k]`, an `https://HOST:PORT` origin (no credentials, path or query). */
export function configOrigin(o: JsonObject, k: string, bad: ConfigError): string {
  const text = configText(o, k, bad, 512);
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw bad(`${k} must be a URL`);
  }
  if (!isOrigin(u)) throw bad(`${k} must be https://HOST:PORT`);
  return u.origin;
}

const isOrigin = (u: URL): boolean =>
  u.protocol === 'https:' && u.username === '' && u.password === '' && u.pathname === '/' && u.search === '';

/** A list of 1 to 4 `https://HOST:PORT` origins (standby processes). */
export function standbyUrls(v: JsonValue, name: string, bad: ConfigError): readonly string[] {
  if (!Array.isArray(v) || v.length < 1 || v.length > 4) throw bad(`${name} must list 1 to 4 URLs`);
  return Object.freeze(
    v.map((x) => {
      let u: URL;
      try {
        u = new URL(typeof x === 'string' ? x : '');
      } catch {
        throw bad(`${name} must list https://HOST:PORT URLs`);
      }
      if (!isOrigin(u)) throw bad(`${name} must list https://HOST:PORT URLs`);
      return u.origin;
    }),
  );
}

/** `log` and `metrics`, when present. */
export function configObservability(
  v: JsonObject,
  bad: ConfigError,
): { readonly log?: LogConfig; readonly metrics?: MetricsConfig } {
  try {
    return {
      ...(v['log'] === undefined ? {} : { log: parseLogConfig(v['log']) }),
      ...(v['metrics'] === undefined ? {} : { metrics: parseMetricsConfig(v['metrics']) }),
    };
  } catch (err) {
    throw bad(err instanceof Error ? err.message : 'log or metrics is malformed');
  }
}
