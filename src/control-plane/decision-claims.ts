/**
 * The Control Plane's claims of the requests it decides for separate Gates (FC-INV-3, FC-INV-6,
 * docs/deployment.md "Separate Gate"): one row per (tenant, client identity, request id), taken
 * by ONE atomic statement on its primary key (`INSERT … ON CONFLICT DO NOTHING`, SQLite
 * `INSERT OR IGNORE`) before the decision is taken. Only the asker that inserted the row decides;
 * every other asker, in this process or in any other Control Plane process on the same store, is
 * refused (`ERR_REQUEST_REPLAYED`). So one request has at most one envelope by construction, not
 * by a read of the ledger followed by an issuance that another process may race.
 *
 * A claim is never given back: a claim whose asker died stays, and the request is refused from
 * then on, never issued twice. The one request a Gate legitimately asks again for, a client's
 * retry of an escalated call (docs/approvals.md "Retries"), is recognised by its approval record
 * instead (`gate-routes.ts`), and its single issuance is the approval's (`markIssued`).
 *
 * Every failure rejects: the Control Plane then denies `ERR_LEDGER_UNAVAILABLE`.
 */
import Database from 'better-sqlite3';
import { openStoreConnection, type SchemaMigration, type SqliteCommitUnit } from '../kernel/index.js';

/** The request a claim names: request ids are the client's own, so its tenant and identity too. */
export interface DecisionClaimKey {
  readonly tenant: string;
  readonly identity: string;
  readonly request_id: string;
}

/** Claims of requests being decided or decided, shared by every Control Plane process on the store. */
export interface DecisionClaimStore {
  /**
   * Claims `key` for `holder` (a value unique to this asker): true when this call inserted the
   * row, false when the request was claimed already. Rejects when the store cannot answer.
   */
  claim(key: DecisionClaimKey, holder: string, atMs: number): Promise<boolean>;
  close(): Promise<void>;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS decision_claims (
  tenant TEXT NOT NULL,
  identity TEXT NOT NULL,
  request_id TEXT NOT NULL,
  holder TEXT NOT NULL,
  claimed_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, identity, request_id)
) STRICT, WITHOUT ROWID;
`;

/** Schema versions of the decision claims (store `decision_claims`; append-only). */
const MIGRATIONS: readonly SchemaMigration[] = [
  { version: 1, name: 'requests claimed before they are decided', up: SCHEMA },
];

/**
 * The decision claims in SQLite (`ledger.db`, on the deployment's one connection when `unit` is
 * given): each claim commits before it returns (`writeNow`).
 */
export function createSqliteDecisionClaims(
  path: string,
  options: { readonly unit?: SqliteCommitUnit } = {},
): DecisionClaimStore {
  const { unit } = options;
  const db = openStoreConnection(() => new Database(path), {
    unit,
    store: 'decision_claims',
    migrations: MIGRATIONS,
  });
  const write = <T>(fn: () => T): T => (unit === undefined ? fn() : unit.writeNow(fn));
  const insert = db.prepare(
    'INSERT OR IGNORE INTO decision_claims (tenant, identity, request_id, holder, claimed_at) VALUES (?, ?, ?, ?, ?)',
  );
  let closed = false;
  const open = (): void => {
    if (closed) throw new Error('the decision claims are closed');
  };
  return Object.freeze({
    claim: (key: DecisionClaimKey, holder: string, atMs: number) =>
      new Promise<boolean>((resolve) => {
        open();
        const n = write(
          () => insert.run(key.tenant, key.identity, key.request_id, holder, Math.trunc(atMs)).changes,
        );
        if (n !== 0 && n !== 1) throw new TypeError('a claim changed more than one row');
        resolve(n === 1);
      }),
    close: () => {
      if (!closed) {
        closed = true;
        if (unit === undefined) db.close();
      }
      return Promise.resolve();
    },
  });
}
