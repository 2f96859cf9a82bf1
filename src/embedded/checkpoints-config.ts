/**
 * `checkpoints` in `failclosed.json`: the ledger process that signs this Control Plane's
 * checkpoints (`failclosed serve ledger`; docs/deployment.md "The ledger process"), and the
 * public checkpoint key pinned for it. See `ledger-link.ts`.
 */
import type { JsonValue } from '../kernel/index.js';
import { ledgerKeyFromVkey } from '../ledger/lean.js';
import { configOrigin, configPositive, configText, isConfigObject, standbyUrls } from './node-config.js';
import type { ConfigError } from './node-config.js';

/** `checkpoints` in `failclosed.json`: where the ledger process is, and its public key. */
export interface CheckpointsConfig {
  /** `https://HOST:PORT` of the ledger process. */
  readonly url: string;
  /** Further ledger processes on the same schema (a standby), tried when `url` cannot be connected to. */
  readonly standby_urls?: readonly string[];
  /** The ledger's public checkpoint key (C2SP vkey), named after the origin: pinned, never fetched. */
  readonly vkey: string;
  /** Deadline (ms) of one checkpoint request; default 5000. */
  readonly timeout_ms: number;
}

const FIELDS = ['url', 'standby_urls', 'vkey', 'timeout_ms'];

/** Parses `checkpoints` strictly; the vkey must be a valid key named `origin`. */
export function parseCheckpointsConfig(v: JsonValue, origin: string, bad: ConfigError): CheckpointsConfig {
  if (!isConfigObject(v)) throw bad('checkpoints must be an object');
  for (const k of Object.keys(v)) if (!FIELDS.includes(k)) throw bad(`checkpoints: unknown field ${k}`);
  const vkey = configText(v, 'vkey', bad, 512);
  try {
    ledgerKeyFromVkey(vkey);
  } catch {
    throw bad('checkpoints.vkey is not a valid Ed25519 note verifier key');
  }
  if (vkey.slice(0, vkey.indexOf('+')) !== origin)
    throw bad(`checkpoints.vkey must be the key named after this ledger's origin (${origin})`);
  return Object.freeze({
    url: configOrigin(v, 'url', bad),
    ...(v['standby_urls'] === undefined
      ? {}
      : { standby_urls: standbyUrls(v['standby_urls'], 'checkpoints.standby_urls', bad) }),
    vkey,
    timeout_ms: configPositive(v, 'timeout_ms', 5000, bad),
  });
}
