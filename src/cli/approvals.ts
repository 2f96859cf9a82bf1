/**
 * CLI commands for humans in the loop (OE-INV-019/020, L7 Identity & Signing, L7 Break-glass):
 * `approvers add|list`, `approvals list|show|approve|reject`, `break-glass`, `reviews
 * list|close`. argv → calls, no logic: signing happens in the approver client with the key file
 * `approvers/NAME.json`, and every check is the Control Plane's. See docs/approvals.md.
 */
import { createApproverClient } from '../client/index.js';
import type { ApproverAnswer } from '../client/index.js';
import { connect, operatorAction, readApproverFile, writeApproverFile } from '../embedded/index.js';
import type { Connection } from '../embedded/index.js';
import type { JsonObject } from '../kernel/index.js';
import { exportSigningKeyJwk, generateSigningKey } from '../kernel/signing/index.js';

/** Output of the approval commands. */
export interface ApprovalCliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

/** Option values the approval commands read. */
export type ApprovalCliOptions = Readonly<Record<string, string | boolean | undefined>>;

/** Usage lines of the approval commands (appended to the CLI usage). */
export const APPROVAL_USAGE = `  approvers add NAME --role ROLE[,ROLE]       register a human approver; writes its private key (0600)
  approvers list
  approvals list | show ID
  approvals approve|reject ID --as NAME --justification TEXT
  break-glass --as NAME --tool T --tenant X --reason-category C --reason TEXT --ttl SEC
  reviews list | close ID --as NAME --notes TEXT
`;

/** The CLI's option declarations for these commands (merged into `parseArgs`). */
export const APPROVAL_OPTIONS = {
  as: { type: 'string' },
  role: { type: 'string' },
  justification: { type: 'string' },
  reason: { type: 'string' },
  'reason-category': { type: 'string' },
  ttl: { type: 'string' },
  notes: { type: 'string' },
  tool: { type: 'string' },
} as const;

class Usage extends Error {}

function need(v: ApprovalCliOptions, name: string): string {
  const value = v[name];
  if (typeof value !== 'string' || value.length === 0) throw new Usage(`--${name} is required`);
  return value;
}

function print(io: ApprovalCliIo, a: ApproverAnswer): number {
  if (a.status >= 200 && a.status < 300) {
    io.out(`${JSON.stringify(a.body, null, 2)}\n`);
    return 0;
  }
  io.err(`${JSON.stringify(a.body)}\n`);
  return 1;
}

function approver(conn: Connection, dir: string, name: string) {
  const file = readApproverFile(dir, name);
  return createApproverClient({
    url: conn.url,
    name: file.name,
    key: file.key,
    authorization: `Bearer ${conn.token}`,
  });
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
      if (sub !== 'add' || id === undefined)
        throw new Usage('approvers add NAME --role ROLE | approvers list');
      const roles = need(v, 'role')
        .split(',')
        .map((r) => r.trim())
        .filter((r) => r.length > 0);
      const key = generateSigningKey();
      const a = await operatorAction(conn, 'approvers-add', {
        name: id,
        roles,
        public_jwk: { ...key.publicJwk },
      });
      if (a.status !== 201) return print(io, a);
      const path = writeApproverFile(dir, {
        name: id,
        roles,
        key: exportSigningKeyJwk(key) as unknown as JsonObject,
      });
      return print(io, { status: 201, body: { ...(a.body as JsonObject), key_file: path } });
    }
    case 'approvals':
      if (sub === 'list') return print(io, await reader.list());
      if (sub === 'show' && id !== undefined) return print(io, await reader.show(id));
      if ((sub === 'approve' || sub === 'reject') && id !== undefined) {
        return print(io, await approver(conn, dir, need(v, 'as')).decide(id, sub, need(v, 'justification')));
      }
      throw new Usage('approvals list | show ID | approve|reject ID --as NAME --justification TEXT');
    case 'break-glass': {
      const ttl = need(v, 'ttl');
      if (!/^\d{1,7}$/.test(ttl)) throw new Usage('--ttl must be a number of seconds');
      return print(
        io,
        await approver(conn, dir, need(v, 'as')).breakGlass({
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
        return print(io, await approver(conn, dir, need(v, 'as')).closeReview(id, need(v, 'notes')));
      throw new Usage('reviews list | close ID --as NAME --notes TEXT');
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
): Promise<number> {
  let conn: Connection | undefined;
  try {
    conn = await connect(dir);
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
