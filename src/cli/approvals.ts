/**
 * CLI commands for humans in the loop (OE-INV-019/020, L7 Identity & Signing, L7 Break-glass):
 * `approvers keygen|add|list|remove`, `approvals list|show|approve|reject`, `break-glass`,
 * `reviews list|close`. argv → calls, no logic: signing happens in the approver client with the
 * approver's own key file (`approver-keys.ts`: in the approver's home, never the gate's data
 * directory), and every check is the Control Plane's. See docs/approvals.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createApproverClient } from '../client/index.js';
import type { ApproverAnswer } from '../client/index.js';
import { connect, operatorAction } from '../embedded/lean.js';
import type { ConnectOptions, Connection } from '../embedded/index.js';
import { parseJson } from '../kernel/index.js';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import { exportSigningKeyJwk, generateSigningKey } from '../kernel/signing/index.js';
import {
  approverKeyPath,
  legacyApproverKeyPath,
  legacyApproverKeys,
  readApproverKey,
  writeApproverKey,
} from './approver-keys.js';

/** Output of the approval commands. */
export interface ApprovalCliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Where the approver's own key directory is found (`XDG_CONFIG_HOME`, `HOME`); default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Reads standard input (`--public-key -`); default the process's. */
  readonly readStdin?: () => Promise<string>;
}

/** Option values the approval commands read (`tenant` may repeat). */
export type ApprovalCliOptions = Readonly<Record<string, string | boolean | readonly string[] | undefined>>;

/** Usage lines of the approval commands (appended to the CLI usage). */
export const APPROVAL_USAGE = `  approvers keygen NAME [--out FILE]          (run by the approver) new Ed25519 key in the approver's own
                                              place (default $XDG_CONFIG_HOME/failclosed/approvers/NAME.json,
                                              0600); prints the public JWK to give the operator
  approvers add NAME --role ROLE[,ROLE] --tenant T [--tenant T]... | --all-tenants --public-key FILE|-
                                              register an approver's public key, scoped to tenants
  approvers invite NAME --role ROLE[,ROLE] --tenant T [--tenant T]... | --all-tenants [--ttl SEC] [--oidc-subject SUB]
                                              a one-time code to enrol a device key in the console
                                              (/console/); only its hash is kept; expires (24 h)
  approvers confirm NAME --kid KID            after comparing the fingerprint with the person: the
                                              enrolled device key may sign approvals (ledgered)
  approvers remove NAME [--reason TEXT]       its votes stop counting (ledgered)
  approvers list
  approvals list [--all] | show ID            pending items (--all: finished ones too)
  approvals approve|reject ID --as NAME --justification TEXT [--key FILE]
  break-glass --as NAME --tool T --tenant X --reason-category C --reason TEXT --ttl SEC [--key FILE]
  reviews list | close ID --as NAME --notes TEXT [--key FILE]
`;

/** The CLI's option declarations for these commands (merged into `parseArgs`). */
export const APPROVAL_OPTIONS = {
  as: { type: 'string' },
  role: { type: 'string', multiple: true },
  justification: { type: 'string' },
  reason: { type: 'string' },
  'reason-category': { type: 'string' },
  ttl: { type: 'string' },
  'oidc-subject': { type: 'string' },
  notes: { type: 'string' },
  tool: { type: 'string' },
  key: { type: 'string' },
  'public-key': { type: 'string' },
  'all-tenants': { type: 'boolean' },
  all: { type: 'boolean' },
  kid: { type: 'string' },
} as const;

class Usage extends Error {}

function need(v: ApprovalCliOptions, name: string): string {
  const value = v[name];
  const one: unknown = Array.isArray(value)
    ? value.length === 1
      ? (value[0] as unknown)
      : undefined
    : value;
  if (typeof one !== 'string' || one.length === 0) throw new Usage(`--${name} is required (once)`);
  return one;
}

function list(v: ApprovalCliOptions, name: string): string[] {
  const value = v[name];
  const all = Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
  return all
    .flatMap((x: string) => x.split(','))
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
}

function print(io: ApprovalCliIo, a: ApproverAnswer): number {
  if (a.status >= 200 && a.status < 300) {
    io.out(`${JSON.stringify(a.body, null, 2)}\n`);
    return 0;
  }
  io.err(`${JSON.stringify(a.body)}\n`);
  return 1;
}

const envOf = (io: ApprovalCliIo): Readonly<Record<string, string | undefined>> => io.env ?? process.env;

/**
 * The signing key of approver `name`: `--key FILE`, else the approver's own default place, else
 * (an earlier release's data directory) `approvers/NAME.json` there, with a warning to move it.
 */
function approverKey(io: ApprovalCliIo, dir: string, name: string, v: ApprovalCliOptions): JsonObject {
  const given = v['key'];
  if (typeof given === 'string') return readApproverKey(given, name);
  const own = approverKeyPath(envOf(io), name);
  if (existsSync(own)) return readApproverKey(own, name);
  const legacy = legacyApproverKeyPath(dir, name);
  if (existsSync(legacy)) {
    io.err(
      `failclosed: warning: signing with ${legacy}, a private approver key in the gate's data directory; move it to ${own} (docs/approvals.md "Migration")\n`,
    );
    return readApproverKey(legacy, name);
  }
  throw new TypeError(
    `no key for approver ${name}: pass --key FILE, or run \`failclosed approvers keygen ${name}\` as ${name} (${own})`,
  );
}

function approver(io: ApprovalCliIo, conn: Connection, dir: string, name: string, v: ApprovalCliOptions) {
  return createApproverClient({
    url: conn.url,
    name,
    key: approverKey(io, dir, name, v),
    authorization: `Bearer ${conn.token}`,
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks).toString('utf8');
}

/** The public JWK of `--public-key FILE|-` (a JWK, or `{public_jwk}` as keygen prints it); a private key is refused. */
async function publicKeyOf(io: ApprovalCliIo, source: string): Promise<JsonValue> {
  const text = source === '-' ? await (io.readStdin ?? readStdin)() : readFileSync(source, 'utf8');
  const v = parseJson(text, { maxBytes: 8192 });
  const o = typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};
  const jwk = o['public_jwk'] ?? v;
  const key = typeof jwk === 'object' && jwk !== null && !Array.isArray(jwk) ? (jwk as JsonObject) : {};
  if ('d' in key || 'key' in o)
    throw new Usage(
      'that file holds a private key: register only the public key (`failclosed approvers keygen` prints it)',
    );
  return jwk;
}

/** `approvers keygen`: runs on the approver's own machine, needs no gate. */
function keygen(io: ApprovalCliIo, name: string, v: ApprovalCliOptions): number {
  const out = v['out'];
  const path = typeof out === 'string' ? out : approverKeyPath(envOf(io), name);
  const key = generateSigningKey();
  const file = writeApproverKey(
    path,
    name,
    exportSigningKeyJwk(key) as unknown as JsonObject,
    typeof out !== 'string',
  );
  io.out(`${JSON.stringify({ name, kid: key.kid, public_jwk: { ...key.publicJwk } }, null, 2)}\n`);
  io.err(
    `private key written to ${file} (0600): it never leaves this machine. Give the public key above to the operator:\n  failclosed approvers add ${name} --role ROLE --tenant TENANT --public-key FILE\n`,
  );
  return 0;
}

/** `approvers invite`: prints the one-time code and where to use it (the code is not kept). */
async function invite(
  io: ApprovalCliIo,
  conn: Connection,
  name: string,
  roles: readonly string[],
  tenants: readonly string[] | '*',
  v: ApprovalCliOptions,
): Promise<number> {
  const ttl = v['ttl'];
  if (ttl !== undefined && (typeof ttl !== 'string' || !/^\d{1,7}$/.test(ttl)))
    throw new Usage('--ttl must be a number of seconds');
  const a = await operatorAction(conn, 'approvers-invite', {
    name,
    roles: [...roles],
    tenants: tenants === '*' ? '*' : [...tenants],
    ...(typeof ttl === 'string' ? { ttl_sec: Number(ttl) } : {}),
    ...(typeof v['oidc-subject'] === 'string' ? { oidc_subject: v['oidc-subject'] } : {}),
  });
  if (a.status !== 201) return print(io, a);
  const b = a.body as JsonObject;
  io.out(
    `${JSON.stringify({ ...b, console_url: `${conn.url}/console/` }, null, 2)}\n` +
      `Give ${name} the code (once, over a channel you trust) and the console URL. ${name} signs in\n` +
      `with it${typeof v['oidc-subject'] === 'string' ? ' and then with the identity provider as that subject' : ''}, and the browser makes a device key and shows its fingerprint (kid). Compare it with\n` +
      `${name} out of band, then: failclosed approvers confirm ${name} --kid KID\n`,
  );
  return 0;
}

async function run(
  io: ApprovalCliIo,
  dir: string,
  conn: Connection,
  pos: readonly string[],
  v: ApprovalCliOptions,
): Promise<number> {
  const [cmd, sub, id] = pos;
  // Reading needs no approver key: any operator may list; `--as` picks the key for signing.
  const reader = createApproverClient({
    url: conn.url,
    name: 'operator',
    key: generateSigningKey(),
    authorization: `Bearer ${conn.token}`,
  });
  switch (cmd) {
    case 'approvers': {
      if (sub === 'list') return print(io, await operatorAction(conn, 'approvers-list', {}));
      if (sub === 'remove' && id !== undefined)
        return print(
          io,
          await operatorAction(conn, 'approvers-remove', {
            name: id,
            ...(typeof v['reason'] === 'string' ? { reason: v['reason'] } : {}),
          }),
        );
      if (sub === 'confirm' && id !== undefined)
        return print(io, await operatorAction(conn, 'approvers-confirm', { name: id, kid: need(v, 'kid') }));
      if ((sub !== 'add' && sub !== 'invite') || id === undefined)
        throw new Usage(
          'approvers keygen NAME | approvers add NAME --role ROLE --tenant T|--all-tenants --public-key FILE | approvers invite NAME --role ROLE --tenant T|--all-tenants [--ttl SEC] [--oidc-subject SUB] | approvers confirm NAME --kid KID | approvers remove NAME | approvers list',
        );
      const roles = list(v, 'role');
      if (roles.length === 0) throw new Usage('--role is required');
      const tenants = list(v, 'tenant');
      if (tenants.length > 0 === (v['all-tenants'] === true))
        throw new Usage('give --tenant T (repeatable) or --all-tenants, not both');
      if (sub === 'invite') return invite(io, conn, id, roles, v['all-tenants'] === true ? '*' : tenants, v);
      const source = v['public-key'];
      // The gate host never makes or holds an approver's private key (OE-INV-020).
      if (typeof source !== 'string')
        throw new Usage(
          `--public-key FILE|- is required: the approver makes the key on their own machine with \`failclosed approvers keygen ${id}\` and hands over only the public key`,
        );
      return print(
        io,
        await operatorAction(conn, 'approvers-add', {
          name: id,
          roles,
          tenants: v['all-tenants'] === true ? '*' : tenants,
          public_jwk: await publicKeyOf(io, source),
        }),
      );
    }
    case 'approvals':
      if (sub === 'list') {
        const a = await reader.list();
        if (v['all'] === true || a.status !== 200) return print(io, a);
        const items = ((a.body as JsonObject)['approvals'] ?? []) as JsonObject[];
        return print(io, {
          status: 200,
          body: { approvals: items.filter((p) => p['status'] === 'pending') },
        });
      }
      if (sub === 'show' && id !== undefined) return print(io, await reader.show(id));
      if ((sub === 'approve' || sub === 'reject') && id !== undefined) {
        const c = approver(io, conn, dir, need(v, 'as'), v);
        return print(io, await c.decide(id, sub, need(v, 'justification')));
      }
      throw new Usage(
        'approvals list [--all] | show ID | approve|reject ID --as NAME --justification TEXT [--key FILE]',
      );
    case 'break-glass': {
      if (sub === 'list') return print(io, await operatorAction(conn, 'break-glass-list', {}));
      if (sub === 'revoke' && id !== undefined)
        return print(
          io,
          await operatorAction(conn, 'break-glass-revoke', {
            grant_id: id,
            ...(typeof v['reason'] === 'string' ? { reason: v['reason'] } : {}),
          }),
        );
      if (sub !== undefined)
        throw new Usage(
          'break-glass --as NAME --tool T --tenant X --reason-category C --reason TEXT --ttl SEC [--key FILE] | break-glass list | break-glass revoke GRANT_ID [--reason TEXT]',
        );
      const ttl = need(v, 'ttl');
      if (!/^\d{1,7}$/.test(ttl)) throw new Usage('--ttl must be a number of seconds');
      return print(
        io,
        await approver(io, conn, dir, need(v, 'as'), v).breakGlass({
          tenant: need(v, 'tenant'),
          tool: need(v, 'tool'),
          reason_category: need(v, 'reason-category'),
          reason: need(v, 'reason'),
          ttl_sec: Number(ttl),
        }),
      );
    }
    case 'reviews':
      if (sub === 'list') return print(io, await reader.reviews());
      if (sub === 'close' && id !== undefined)
        return print(io, await approver(io, conn, dir, need(v, 'as'), v).closeReview(id, need(v, 'notes')));
      throw new Usage('reviews list | close ID --as NAME --notes TEXT [--key FILE]');
    default:
      throw new Usage(`unknown command ${String(cmd)}`);
  }
}

/** True when `cmd` is one of the approval commands. */
export function isApprovalCommand(cmd: string | undefined): boolean {
  return cmd === 'approvers' || cmd === 'approvals' || cmd === 'break-glass' || cmd === 'reviews';
}

/** Runs one approval command against the running server (or an in-process one). Exit 0 ok, 1 denied or failed, 2 usage. */
export async function runApprovalCommand(
  io: ApprovalCliIo,
  dir: string,
  positionals: readonly string[],
  values: ApprovalCliOptions,
  /** The operator the command connects as (`--operator`), read only once a gate is needed. */
  connectAs?: () => ConnectOptions,
  /**
   * The gate to act on, when the caller already holds one: then no announced server is looked
   * for, and no instance is started in-process should it not answer.
   */
  connection?: Connection,
): Promise<number> {
  let conn: Connection | undefined;
  try {
    const [cmd, sub, name] = positionals;
    // On the approver's own machine: no gate, no data directory.
    if (cmd === 'approvers' && sub === 'keygen') {
      if (name === undefined) throw new Usage('approvers keygen NAME [--out FILE]');
      return keygen(io, name, values);
    }
    for (const file of legacyApproverKeys(dir))
      io.err(
        `failclosed: warning: ${file} is a private approver key in the gate's data directory: whoever holds this host can approve with it; move it to the approver's own place (docs/approvals.md "Migration")\n`,
      );
    conn = connection ?? (await connect(dir, connectAs?.() ?? {}));
    return await run(io, dir, conn, positionals, values);
  } catch (err) {
    if (err instanceof Usage) {
      io.err(`failclosed: ${err.message}\n\n${APPROVAL_USAGE}`);
      return 2;
    }
    io.err(`failclosed: ${err instanceof Error ? err.message : 'failed'}\n`);
    return 1;
  } finally {
    await conn?.close();
  }
}
