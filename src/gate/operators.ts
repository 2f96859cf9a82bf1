/**
 * The operator registry (OE-INV-025, L7 Identity & Signing): the people who act behind
 * `/v1/admin/` and the evidence view, each with a name, a tenant scope (a list of tenants or `*`,
 * every tenant) and a bearer token of their own, stored only as its SHA-256. The data directory's
 * `operator.token` is the bootstrap operator, {@link BOOTSTRAP_OPERATOR}, of every tenant.
 *
 * The registry lives in the storage backend (SQLite `ledger.db`, or the PostgreSQL schema every
 * replica shares), so a token rotated or an operator removed through one gate is refused by every
 * gate on its next request. Rows read back are parsed as untrusted input: a malformed row throws
 * and the caller refuses (fail closed).
 */
import Database from 'better-sqlite3';
import { migrateSchema } from '../kernel/index.js';
import type { SchemaMigration, SqliteCommitUnit } from '../kernel/index.js';

/** The name of the bootstrap operator, the holder of the data directory's `operator.token`. */
export const BOOTSTRAP_OPERATOR = 'operator';

/** An operator's name: as a client's or approver's, without the `:` of principals. */
export const OPERATOR_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** A tenant name (as admin actions accept it). */
export const OPERATOR_TENANT = /^[A-Za-z0-9._-]{1,128}$/;

/** The tenants an operator acts for: a list, or `'*'` (every tenant, including global actions). */
export type OperatorTenants = readonly string[] | '*';

/** One operator as the registry holds it. */
export interface OperatorRecord {
  readonly name: string;
  readonly tenants: OperatorTenants;
  /** SHA-256 (lower-case hex) of the bearer token; the token itself is never stored. */
  readonly token_sha256: string;
  readonly status: 'active' | 'removed';
  /** ms since the epoch. */
  readonly created_at: number;
  /** When the token was last replaced (ms), null when never. */
  readonly rotated_at: number | null;
  /** When the operator was removed (ms), null while active. */
  readonly removed_at: number | null;
}

/** An authenticated operator: who acts, and for which tenants. */
export interface OperatorIdentity {
  readonly name: string;
  readonly tenants: OperatorTenants;
}

/**
 * The registry's store, one per backend; every failure rejects. Each change is one guarded write
 * whose "one row changed" is the only success, so two gates racing on one operator cannot both win.
 */
export interface OperatorStore {
  /** Adds an active operator; false when the name is taken (active or removed: names are not reused). */
  add(rec: {
    readonly name: string;
    readonly tenants: OperatorTenants;
    readonly token_sha256: string;
    readonly created_at: number;
  }): Promise<boolean>;
  get(name: string): Promise<OperatorRecord | undefined>;
  /** The ACTIVE operator whose token hashes to `tokenSha256`, if any. */
  byToken(tokenSha256: string): Promise<OperatorRecord | undefined>;
  /** Replaces the token of active `name` whose token is still `fromSha256`; false otherwise. */
  rotate(name: string, fromSha256: string, toSha256: string, atMs: number): Promise<boolean>;
  /** Marks active `name` removed; false when absent or removed already. */
  remove(name: string, atMs: number): Promise<boolean>;
  /** Every operator, removed ones included, by name. */
  list(): Promise<readonly OperatorRecord[]>;
  close(): Promise<void>;
}

/** True when `scope` covers `tenant`. */
export function operatorCovers(scope: OperatorTenants, tenant: string): boolean {
  return scope === '*' || scope.includes(tenant);
}

function malformed(column: string): never {
  throw new TypeError(`malformed operator row (${column})`);
}

const str = (r: Record<string, unknown>, c: string): string => {
  const v = r[c];
  return typeof v === 'string' ? v : malformed(c);
};

/** An integer column: a number (SQLite) or its decimal text (PostgreSQL `bigint`). */
const int = (r: Record<string, unknown>, c: string): number => {
  const raw = r[c];
  const v = typeof raw === 'string' && /^-?(?:0|[1-9]\d{0,15})$/.test(raw) ? Number(raw) : raw;
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : malformed(c);
};

const intOrNull = (r: Record<string, unknown>, c: string): number | null =>
  r[c] === null ? null : int(r, c);

/** Parses a tenant scope as stored (`"*"` or a JSON list of tenant names). */
function tenantsOf(raw: string): OperatorTenants {
  if (raw === '*') return '*';
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return malformed('tenants');
  }
  if (
    !Array.isArray(v) ||
    v.length === 0 ||
    !v.every((t): t is string => typeof t === 'string' && OPERATOR_TENANT.test(t))
  )
    return malformed('tenants');
  return Object.freeze([...v]);
}

/** How a tenant scope is stored. */
export function storedTenants(t: OperatorTenants): string {
  return t === '*' ? '*' : JSON.stringify([...t]);
}

/** Parses an operator row read back from a database. */
export function parseOperatorRow(r: Record<string, unknown>): OperatorRecord {
  const name = str(r, 'name');
  if (!OPERATOR_NAME.test(name)) malformed('name');
  const sha = str(r, 'token_sha256');
  if (!/^[0-9a-f]{64}$/.test(sha)) malformed('token_sha256');
  const status = str(r, 'status');
  if (status !== 'active' && status !== 'removed') malformed('status');
  return Object.freeze({
    name,
    tenants: tenantsOf(str(r, 'tenants')),
    token_sha256: sha,
    status,
    created_at: int(r, 'created_at'),
    rotated_at: intOrNull(r, 'rotated_at'),
    removed_at: intOrNull(r, 'removed_at'),
  });
}

const SCHEMA = `
CREATE TABLE operators (
  name TEXT PRIMARY KEY NOT NULL,
  tenants TEXT NOT NULL,
  token_sha256 TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL CHECK (status IN ('active', 'removed')),
  created_at INTEGER NOT NULL,
  rotated_at INTEGER,
  removed_at INTEGER
) STRICT;
`;

const MIGRATIONS: readonly SchemaMigration[] = [
  { version: 1, name: 'operators with tenant scopes and token hashes', up: SCHEMA },
];

/**
 * Opens (creating its table when absent) the operator registry at `path`, or on `unit`, the
 * deployment's shared connection over that file: then every write commits on its own before it
 * returns (`writeNow`), and closing the store leaves the connection open.
 */
export function createSqliteOperatorStore(
  path: string,
  options: { readonly unit?: SqliteCommitUnit } = {},
): OperatorStore {
  const { unit } = options;
  const db = unit?.db ?? new Database(path);
  try {
    if (unit === undefined) {
      db.pragma('busy_timeout = 2000');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
    }
    migrateSchema(db, 'operators', MIGRATIONS);
  } catch (err) {
    if (unit === undefined) db.close();
    throw err;
  }
  const write = <T>(fn: () => T): T => (unit === undefined ? fn() : unit.writeNow(fn));
  const q = {
    add: db.prepare(
      `INSERT INTO operators (name, tenants, token_sha256, status, created_at)
       VALUES (?, ?, ?, 'active', ?) ON CONFLICT DO NOTHING`,
    ),
    get: db.prepare('SELECT * FROM operators WHERE name = ?'),
    byToken: db.prepare("SELECT * FROM operators WHERE token_sha256 = ? AND status = 'active'"),
    rotate: db.prepare(
      `UPDATE operators SET token_sha256 = ?, rotated_at = ?
       WHERE name = ? AND token_sha256 = ? AND status = 'active'`,
    ),
    remove: db.prepare(
      "UPDATE operators SET status = 'removed', removed_at = ? WHERE name = ? AND status = 'active'",
    ),
    list: db.prepare('SELECT * FROM operators ORDER BY name'),
  };
  const row = (r: unknown): OperatorRecord | undefined =>
    r === undefined ? undefined : parseOperatorRow(r as Record<string, unknown>);
  return Object.freeze({
    add: (rec: Parameters<OperatorStore['add']>[0]) =>
      Promise.resolve(
        write(() => q.add.run(rec.name, storedTenants(rec.tenants), rec.token_sha256, rec.created_at))
          .changes === 1,
      ),
    get: (name: string) => Promise.resolve(row(q.get.get(name))),
    byToken: (sha: string) => Promise.resolve(row(q.byToken.get(sha))),
    rotate: (name: string, from: string, to: string, atMs: number) =>
      Promise.resolve(write(() => q.rotate.run(to, atMs, name, from)).changes === 1),
    remove: (name: string, atMs: number) =>
      Promise.resolve(write(() => q.remove.run(atMs, name)).changes === 1),
    list: () => Promise.resolve(q.list.all().map((r) => parseOperatorRow(r as Record<string, unknown>))),
    close: () => {
      if (unit === undefined) db.close();
      return Promise.resolve();
    },
  });
}
