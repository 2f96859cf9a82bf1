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
 *
 * An operator may be bound to one OpenID Connect identity (issuer and subject, at most one active
 * operator per identity): the console then signs them in through the identity provider only and
 * refuses their bearer token (docs/console.md "Operator sign-in"); the CLI still uses the token.
 */
import Database from 'better-sqlite3';
import { openStoreConnection } from '../kernel/index.js';
import type { SchemaMigration, SqliteCommitUnit } from '../kernel/index.js';
import { BOOTSTRAP_OPERATOR, OPERATOR_NAME, OPERATOR_TENANT } from './operator-names.js';

export { BOOTSTRAP_OPERATOR, OPERATOR_NAME, OPERATOR_TENANT };

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
  /** The OIDC identity the operator is bound to, null when none (docs/console.md "Operator sign-in"). */
  readonly oidc: OperatorOidcBinding | null;
}

/** An operator's OIDC identity: the issuer (exact `iss`), the subject, and when it was bound (ms). */
export interface OperatorOidcBinding {
  readonly issuer: string;
  readonly subject: string;
  readonly bound_at: number;
}

/** An OIDC subject as an operator or an invitation is bound to it: 1 .. 255 printable ASCII characters. */
export const OIDC_SUBJECT = /^[\x21-\x7e]{1,255}$/;

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
    /** Bound at once (`bound_at` = `created_at`); refused (false) when an active operator holds it. */
    readonly oidc?: { readonly issuer: string; readonly subject: string };
  }): Promise<boolean>;
  get(name: string): Promise<OperatorRecord | undefined>;
  /** The ACTIVE operator whose token hashes to `tokenSha256`, if any. */
  byToken(tokenSha256: string): Promise<OperatorRecord | undefined>;
  /** The ACTIVE operator bound to this OIDC identity, if any. */
  bySubject(issuer: string, subject: string): Promise<OperatorRecord | undefined>;
  /**
   * Binds active, unbound `name` to an OIDC identity no other active operator holds; false
   * otherwise (absent, removed, bound already, or the identity taken).
   */
  bind(name: string, issuer: string, subject: string, atMs: number): Promise<boolean>;
  /** Unbinds active `name` while it is still bound to `issuer`/`subject`; false otherwise. */
  unbind(name: string, issuer: string, subject: string): Promise<boolean>;
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
  const issuer = r['oidc_issuer'] ?? null;
  const subject = r['oidc_subject'] ?? null;
  let oidc: OperatorOidcBinding | null = null;
  if (issuer !== null || subject !== null) {
    // Both or neither: half a binding is no binding, and the row is refused rather than guessed.
    if (typeof issuer !== 'string' || issuer.length === 0 || issuer.length > 2048) malformed('oidc_issuer');
    if (typeof subject !== 'string' || !OIDC_SUBJECT.test(subject)) malformed('oidc_subject');
    oidc = Object.freeze({ issuer, subject, bound_at: int(r, 'oidc_bound_at') });
  } else if (r['oidc_bound_at'] !== null && r['oidc_bound_at'] !== undefined) malformed('oidc_bound_at');
  return Object.freeze({
    name,
    tenants: tenantsOf(str(r, 'tenants')),
    token_sha256: sha,
    status,
    created_at: int(r, 'created_at'),
    rotated_at: intOrNull(r, 'rotated_at'),
    removed_at: intOrNull(r, 'removed_at'),
    oidc,
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

/**
 * Version 2: an operator bound to an OIDC identity. One ACTIVE operator per identity (a partial
 * unique index: a removed operator keeps its binding as history and frees the identity).
 */
const V2_OIDC = `
ALTER TABLE operators ADD COLUMN oidc_issuer TEXT;
ALTER TABLE operators ADD COLUMN oidc_subject TEXT;
ALTER TABLE operators ADD COLUMN oidc_bound_at INTEGER;
CREATE UNIQUE INDEX operators_oidc ON operators (oidc_issuer, oidc_subject)
  WHERE status = 'active' AND oidc_subject IS NOT NULL;
`;

const MIGRATIONS: readonly SchemaMigration[] = [
  { version: 1, name: 'operators with tenant scopes and token hashes', up: SCHEMA },
  { version: 2, name: 'operators bound to an OIDC identity', up: V2_OIDC },
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
  const db = openStoreConnection(() => new Database(path), {
    unit,
    store: 'operators',
    migrations: MIGRATIONS,
  });
  const write = <T>(fn: () => T): T => (unit === undefined ? fn() : unit.writeNow(fn));
  const q = {
    add: db.prepare(
      `INSERT INTO operators (name, tenants, token_sha256, status, created_at, oidc_issuer, oidc_subject, oidc_bound_at)
       VALUES (?, ?, ?, 'active', ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    ),
    get: db.prepare('SELECT * FROM operators WHERE name = ?'),
    byToken: db.prepare("SELECT * FROM operators WHERE token_sha256 = ? AND status = 'active'"),
    bySubject: db.prepare(
      "SELECT * FROM operators WHERE oidc_issuer = ? AND oidc_subject = ? AND status = 'active'",
    ),
    bind: db.prepare(
      `UPDATE operators SET oidc_issuer = ?, oidc_subject = ?, oidc_bound_at = ?
       WHERE name = ? AND status = 'active' AND oidc_subject IS NULL
         AND NOT EXISTS (SELECT 1 FROM operators o WHERE o.oidc_issuer = ? AND o.oidc_subject = ? AND o.status = 'active')`,
    ),
    unbind: db.prepare(
      `UPDATE operators SET oidc_issuer = NULL, oidc_subject = NULL, oidc_bound_at = NULL
       WHERE name = ? AND status = 'active' AND oidc_issuer = ? AND oidc_subject = ?`,
    ),
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
        // ON CONFLICT covers the name and the identity held by another active operator (the index).
        write(() =>
          q.add.run(
            rec.name,
            storedTenants(rec.tenants),
            rec.token_sha256,
            rec.created_at,
            rec.oidc?.issuer ?? null,
            rec.oidc?.subject ?? null,
            rec.oidc === undefined ? null : rec.created_at,
          ),
        ).changes === 1,
      ),
    get: (name: string) => Promise.resolve(row(q.get.get(name))),
    byToken: (sha: string) => Promise.resolve(row(q.byToken.get(sha))),
    bySubject: (issuer: string, subject: string) => Promise.resolve(row(q.bySubject.get(issuer, subject))),
    bind: (name: string, issuer: string, subject: string, atMs: number) =>
      Promise.resolve(write(() => q.bind.run(issuer, subject, atMs, name, issuer, subject)).changes === 1),
    unbind: (name: string, issuer: string, subject: string) =>
      Promise.resolve(write(() => q.unbind.run(name, issuer, subject)).changes === 1),
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
