/**
 * Approver key files in the approver's own place (OE-INV-020 "distinct humans", L7 Identity &
 * Signing): `failclosed approvers keygen` writes the private key there, never into the gate's
 * data directory, so whoever holds the gate host cannot sign as an approver. The default place is
 * `$XDG_CONFIG_HOME/failclosed/approvers/NAME.json` (else `~/.config/failclosed/approvers/`),
 * the file 0600 in a 0700 directory. Data directories of earlier releases hold such files under
 * `approvers/`: they are still read, with a warning to move them (docs/approvals.md "Migration").
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseJson } from '../kernel/index.js';
import type { JsonObject } from '../kernel/index.js';
import { dataPaths } from '../embedded/lean.js';

/** An approver name (as the approval service accepts it). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The approver's own key directory: `$XDG_CONFIG_HOME/failclosed/approvers` or `~/.config/failclosed/approvers`. */
export function approverKeyDir(env: Readonly<Record<string, string | undefined>>): string {
  const xdg = env['XDG_CONFIG_HOME'];
  const base = xdg !== undefined && xdg.startsWith('/') ? xdg : join(env['HOME'] ?? homedir(), '.config');
  return join(base, 'failclosed', 'approvers');
}

/** The default key file of approver `name`. `TypeError` for a malformed name. */
export function approverKeyPath(env: Readonly<Record<string, string | undefined>>, name: string): string {
  if (!NAME.test(name)) throw new TypeError('approver name is malformed');
  return join(approverKeyDir(env), `${name}.json`);
}

/**
 * Writes a new approver key file (0600; a directory it creates is 0700, and the default
 * directory is made 0700 as well). Never overwrites: an existing file is refused (`TypeError`),
 * so a key already registered is not lost by a second keygen.
 */
export function writeApproverKey(
  path: string,
  name: string,
  privateJwk: JsonObject,
  ownDir: boolean,
): string {
  const file = resolve(path);
  if (existsSync(file)) throw new TypeError(`${file} exists: refusing to overwrite an approver key`);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  if (ownDir) chmodSync(dirname(file), 0o700);
  writeFileSync(file, `${JSON.stringify({ name, key: privateJwk }, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return file;
}

/** Reads an approver key file written by keygen (or an earlier release's `approvers/NAME.json`): its private JWK. */
export function readApproverKey(path: string, name: string): JsonObject {
  if (!existsSync(path))
    throw new TypeError(`no approver key at ${path} (failclosed approvers keygen ${name})`);
  const o = parseJson(readFileSync(path), { maxBytes: 8192 }) as Record<string, unknown>;
  if (
    typeof o !== 'object' ||
    o === null ||
    (o['name'] !== undefined && o['name'] !== name) ||
    typeof o['key'] !== 'object' ||
    o['key'] === null
  )
    throw new TypeError(`${path} is not the approver key of ${name}`);
  return o['key'] as JsonObject;
}

/** Approver private key files an earlier release left in the data directory (`approvers/*.json`). */
export function legacyApproverKeys(dataDir: string): readonly string[] {
  const dir = join(dataPaths(dataDir).root, 'approvers');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => join(dir, f));
}

/** The legacy key file of `name` in the data directory. */
export function legacyApproverKeyPath(dataDir: string, name: string): string {
  if (!NAME.test(name)) throw new TypeError('approver name is malformed');
  return join(dataPaths(dataDir).root, 'approvers', `${name}.json`);
}
