/**
 * Operators as people (OE-INV-025, L7 Identity & Signing): `failclosed operators add|rotate|
 * remove|bind|unbind|list` and `admin rotate-operator-token`, and which operator a command acts as. A person's
 * token lives in their own place, `$XDG_CONFIG_HOME/failclosed/operators/NAME.token` (else
 * `~/.config/failclosed/operators/`), 0600 in a 0700 directory, never in the gate's data directory;
 * the bootstrap operator's is the data directory's `operator.token`. Every change goes through the
 * Gate (`operators-*` admin actions), which ledgers it with the person who made it before it applies.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { BOOTSTRAP_OPERATOR, OPERATOR_NAME } from '../gate/lean.js';
import { dataPaths } from '../embedded/lean.js';
import type { ConnectOptions } from '../embedded/index.js';
import type { JsonObject } from '../kernel/index.js';

/** A command-line mistake in an operators command (exit 2). */
export class OperatorUsageError extends Error {}

/** Usage lines of the operator commands (part of the CLI usage). */
export const OPERATOR_USAGE = `  operators add NAME --tenant T [--tenant T]... | --all-tenants [--out FILE] [--oidc-subject SUB] [--reason TEXT]
                                              a person who operates the tenants named (or every tenant);
                                              the token is written 0600 to --out (default
                                              $XDG_CONFIG_HOME/failclosed/operators/NAME.token), never printed;
                                              --oidc-subject: the console signs them in at console.oidc only
  operators bind NAME SUB [--reason TEXT]     bind NAME to subject SUB of console.oidc's issuer (ledgered):
                                              the console refuses NAME's token from then on (the CLI keeps it)
  operators unbind NAME [--reason TEXT]       undo the binding (ledgered); NAME's console sessions end
  operators rotate NAME [--out FILE]          new token for NAME (ledgered; the old one is refused at once)
  operators remove NAME [--reason TEXT]       NAME's token is refused from now on (ledgered)
  operators list                              every operator, tenant scope and status (no tokens)
  admin rotate-operator-token                 new bootstrap token, written to DATA/operator.token
  global option: --operator NAME (or $FAILCLOSED_OPERATOR): act as NAME with its token file
                                              (default the bootstrap operator, DATA/operator.token)
`;

/** The operator's own token directory: `$XDG_CONFIG_HOME/failclosed/operators` or `~/.config/failclosed/operators`. */
export function operatorTokenDir(env: Readonly<Record<string, string | undefined>>): string {
  const xdg = env['XDG_CONFIG_HOME'];
  const base = xdg !== undefined && xdg.startsWith('/') ? xdg : join(env['HOME'] ?? homedir(), '.config');
  return join(base, 'failclosed', 'operators');
}

/** Where operator `name`'s token lives: the data directory's `operator.token` for the bootstrap. */
export function operatorTokenPath(
  dir: string,
  env: Readonly<Record<string, string | undefined>>,
  name: string,
): string {
  if (!OPERATOR_NAME.test(name)) throw new OperatorUsageError('operator name is malformed');
  return name === BOOTSTRAP_OPERATOR
    ? dataPaths(dir).operatorToken
    : join(operatorTokenDir(env), `${name}.token`);
}

/**
 * How a command connects: as operator `name` (`--operator`, else `$FAILCLOSED_OPERATOR`), with the
 * token read from its file; the bootstrap operator when neither names one.
 */
export function operatorConnection(
  dir: string,
  env: Readonly<Record<string, string | undefined>>,
  name: string | undefined,
): ConnectOptions {
  const who = name ?? env['FAILCLOSED_OPERATOR'];
  if (who === undefined || who === '' || who === BOOTSTRAP_OPERATOR) return {};
  const path = operatorTokenPath(dir, env, who);
  if (!existsSync(path)) throw new TypeError(`no operator token for ${who} at ${path}`);
  const token = readFileSync(path, 'utf8').trim();
  if (token.length === 0) throw new TypeError(`the operator token file ${path} is empty`);
  return { token };
}

/**
 * Writes a token file (0600; a directory it creates is 0700), through a temporary file renamed
 * over `path`, so a reader never sees half a token. `fresh`: refuse an existing file.
 */
export function writeOperatorToken(path: string, token: string, fresh: boolean): string {
  const file = resolve(path);
  if (fresh && existsSync(file))
    throw new TypeError(`${file} exists: refusing to overwrite an operator token`);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${token}\n`, { mode: 0o600, flag: 'w' });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return file;
}

/** A token out of an answer body, undefined when there is none. */
function tokenOf(body: unknown): string | undefined {
  const t = (body as { token?: unknown } | null)?.token;
  return typeof t === 'string' && /^[A-Za-z0-9_-]{43}$/.test(t) ? t : undefined;
}

/** The answer body shown to the user: the token never. */
export function withoutToken(body: unknown, file: string): JsonObject {
  const { token: _t, ...rest } = (body ?? {}) as JsonObject;
  return { ...rest, token_file: file };
}

/** An operator action as the command runs it: `POST /v1/admin/{action}` over its connection. */
export type RunAction = (
  action: string,
  body: JsonObject,
) => Promise<{ readonly status: number; readonly body: unknown }>;

/** What an operators command needs. */
export interface OperatorCommand {
  readonly dir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly out?: string | undefined;
  readonly tenants?: readonly string[] | undefined;
  readonly allTenants?: boolean | undefined;
  readonly reason?: string | undefined;
  readonly oidcSubject?: string | undefined;
}

/**
 * Runs `operators SUB [NAME [SUBJECT]]` (`rotate-operator-token` is `rotate operator`). Answers
 * the status and the body to print: a token is written to its file first and never part of what
 * is printed.
 */
export async function runOperatorsCommand(
  run: RunAction,
  sub: string | undefined,
  name: string | undefined,
  c: OperatorCommand,
  subject?: string,
): Promise<{ readonly status: number; readonly body: unknown }> {
  const reason = c.reason === undefined ? {} : { reason: c.reason };
  if (sub === 'list') return run('operators-list', {});
  if (name === undefined) throw new OperatorUsageError('operators add|rotate|remove|bind|unbind NAME');
  if (sub === 'bind') {
    if (subject === undefined) throw new OperatorUsageError('operators bind NAME SUBJECT');
    return run('operators-bind', { name, oidc_subject: subject, ...reason });
  }
  if (sub === 'unbind') return run('operators-unbind', { name, ...reason });
  if (sub === 'add') {
    const tenants = c.tenants ?? [];
    if (tenants.length > 0 === (c.allTenants === true))
      throw new OperatorUsageError('operators add NAME needs --tenant T (repeatable) or --all-tenants');
    const path = c.out ?? operatorTokenPath(c.dir, c.env, name);
    // Refused before anything changes: a token already there is someone's.
    if (existsSync(path))
      throw new TypeError(`${resolve(path)} exists: refusing to overwrite an operator token`);
    const a = await run('operators-add', {
      name,
      tenants: c.allTenants === true ? '*' : [...tenants],
      ...(c.oidcSubject === undefined ? {} : { oidc_subject: c.oidcSubject }),
      ...reason,
    });
    const token = tokenOf(a.body);
    if (a.status !== 201 || token === undefined) return a;
    return { status: a.status, body: withoutToken(a.body, writeOperatorToken(path, token, true)) };
  }
  if (sub === 'rotate') {
    const path = c.out ?? operatorTokenPath(c.dir, c.env, name);
    const a = await run('operators-rotate', { name, ...reason });
    const token = tokenOf(a.body);
    if (a.status !== 200 || token === undefined) return a;
    let file: string;
    try {
      file = writeOperatorToken(path, token, false);
    } catch (err) {
      // The old token is refused already: a token that cannot be written is shown once rather
      // than lost (else the bootstrap operator could lock itself out).
      throw new Error(
        `could not write ${path} (${err instanceof Error ? err.message : 'failed'}); the new token, shown once: ${token}`,
      );
    }
    return { status: a.status, body: withoutToken(a.body, file) };
  }
  if (sub === 'remove') return run('operators-remove', { name, ...reason });
  throw new OperatorUsageError('operators add|rotate|remove|bind|unbind NAME | operators list');
}
