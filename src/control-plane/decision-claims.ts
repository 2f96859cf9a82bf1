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
 * **Pruning** (FC-INV-3; the rule and walk of `kernel/request-memory-prune.ts`, as the Gate's
 * replay memory): a claim goes only once a request of its id could no longer be decided anyway.
 * `decideFor` refuses a request whose signed timestamp t is more than the tolerance `tol` off the
 * Control Plane's clock (`ERR_REQUEST_TIMESTAMP`) BEFORE it claims, so a claim taken at a clock
 * reading c has |c − t| ≤ tol, and the request can be decided again only at a reading
 * n ≤ t + tol ≤ c + 2·tol. Each claim is stamped `claimed_at` = max(c, the latest `claimed_at`
 * recorded): the stamps never go back, whatever a clock does. A claim goes only when its stamp is
 * older than the retention measured against the latest stamp (never the clock now), the retention
 * at least 7 days and at least 2·tol (`core.ts`). So a clock set back prunes nothing more, and a
 * claim taken while a clock was set back is stamped as recent as the newest claim and stays for
 * the whole retention after it: for it to go, a clock must have read its stamp plus the retention,
 * more than 2·tol past any reading at which its request could be decided. A clock that ran ahead
 * (with the clients' clocks: a Control Plane whose clock alone is ahead refuses every request by
 * its timestamp and records no claim) then comes back could leave recent claims behind the
 * horizon; each client (tenant and identity) keeps its newest `keepPerClient` claims whatever
 * their stamp for that. A request whose envelope was issued stays refused by the ledger's
 * `envelope.issued` besides, which is never pruned. A prune that stops early or fails only keeps
 * more claims: no decision depends on it. The cost of a clock far ahead is space: until the clocks
 * pass the horizon it set, claims are stamped with it and none of them goes.
 *
 * Every failure rejects: the Control Plane then denies `ERR_LEDGER_UNAVAILABLE`.
 */
import Database from 'better-sqlite3';
import {
  createRequestMemoryPruner,
  openStoreConnection,
  type SchemaMigration,
  type SqliteCommitUnit,
} from '../kernel/index.js';

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
  /**
   * Deletes the claims no request can be decided by any more (see the module doc), until done;
   * the store also starts one in the background every `pruneEvery` claims. Resolves with the
   * claims deleted; rejects when the store fails or closes (nothing is decided by it).
   */
  prune(): Promise<number>;
  /** Closes the store once a background prune ended. */
  close(): Promise<void>;
}

/** How long and how many claims are kept (defaults: 7 days, 100,000 per client, a prune every 1000 claims). */
export interface DecisionClaimRetention {
  /**
   * Claims younger than this (ms), measured back from the latest `claimed_at` recorded, always
   * stay. At least twice the request timestamp tolerance (see the module doc).
   */
  readonly retentionMs?: number;
  /** Claims each client (tenant and identity) always keeps, whatever their age. */
  readonly keepPerClient?: number;
  /** Claims of this store between two prunes it starts by itself, in the background. */
  readonly pruneEvery?: number;
}

/** The retention settings, checked: never a prune on a malformed value. */
export function decisionClaimRetention(r: DecisionClaimRetention): Required<DecisionClaimRetention> {
  const out = {
    retentionMs: Math.trunc(r.retentionMs ?? 7 * 86_400_000),
    keepPerClient: Math.trunc(r.keepPerClient ?? 100_000),
    pruneEvery: Math.trunc(r.pruneEvery ?? 1000),
  };
  for (const [name, v] of Object.entries(out))
    if (!(v >= 1 && Number.isSafeInteger(v))) throw new TypeError(`${name} must be a positive integer`);
  return out;
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

/**
 * Version 2: the claims in insertion order (a rowid table, rebuilt in place with its rows, the
 * oldest first) with the indexes the prune walks: a client's claims by rowid, the latest
 * `claimed_at`.
 */
const V2_PRUNE = `
CREATE TABLE decision_claims_v2 (
  tenant TEXT NOT NULL,
  identity TEXT NOT NULL,
  request_id TEXT NOT NULL,
  holder TEXT NOT NULL,
  claimed_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, identity, request_id)
) STRICT;
INSERT INTO decision_claims_v2 (tenant, identity, request_id, holder, claimed_at)
  SELECT tenant, identity, request_id, holder, claimed_at FROM decision_claims ORDER BY claimed_at;
DROP TABLE decision_claims;
ALTER TABLE decision_claims_v2 RENAME TO decision_claims;
CREATE INDEX decision_claims_client ON decision_claims (tenant, identity);
CREATE INDEX decision_claims_at ON decision_claims (claimed_at);
`;

/** Schema versions of the decision claims (store `decision_claims`; append-only). */
export const DECISION_CLAIMS_MIGRATIONS: readonly SchemaMigration[] = [
  { version: 1, name: 'requests claimed before they are decided', up: SCHEMA },
  { version: 2, name: 'claims in insertion order, pruned', up: V2_PRUNE },
];

/** Rows one prune transaction examines at most: it holds the file's write lock only briefly. */
const PRUNE_BATCH = 2000;
/** Wall time one background prune may take before it leaves the rest to the next one (ms). */
const BACKGROUND_BUDGET_MS = 1000;

/** A client of the claims: request ids are its own. */
interface ClaimClient {
  readonly tenant: string;
  readonly identity: string;
}

/**
 * The decision claims in SQLite (`ledger.db`, on the deployment's one connection when `unit` is
 * given): each claim commits before it returns (`writeNow`).
 */
export function createSqliteDecisionClaims(
  path: string,
  options: { readonly unit?: SqliteCommitUnit } & DecisionClaimRetention = {},
): DecisionClaimStore {
  const { unit } = options;
  const { retentionMs, keepPerClient, pruneEvery } = decisionClaimRetention(options);
  const db = openStoreConnection(() => new Database(path), {
    unit,
    store: 'decision_claims',
    migrations: DECISION_CLAIMS_MIGRATIONS,
  });
  const write = <T>(fn: () => T): T => (unit === undefined ? fn() : unit.writeNow(fn));
  // Stamped never below the latest stamp (the module doc): one index step back on claimed_at.
  const insert = db.prepare(
    `INSERT OR IGNORE INTO decision_claims (tenant, identity, request_id, holder, claimed_at)
     VALUES (?, ?, ?, ?, max(?, coalesce((SELECT max(claimed_at) FROM decision_claims), 0)))`,
  );
  const latest = db.prepare<[], { m: number | null }>('SELECT max(claimed_at) AS m FROM decision_claims');
  // The clients with claims, one probe of the client index each (never a pass over the rows).
  const firstClient = db.prepare<[], ClaimClient>(
    'SELECT tenant, identity FROM decision_claims ORDER BY tenant, identity LIMIT 1',
  );
  const nextClient = db.prepare<[string, string], ClaimClient>(
    'SELECT tenant, identity FROM decision_claims WHERE (tenant, identity) > (?, ?) ORDER BY tenant, identity LIMIT 1',
  );
  // The rowid of the client's keep-th newest claim (none with fewer: nothing of it goes).
  const floorOf = db.prepare<[string, string, number], { r: number }>(
    'SELECT rowid AS r FROM decision_claims WHERE tenant = ? AND identity = ? ORDER BY rowid DESC LIMIT 1 OFFSET ?',
  );
  // One batch: the client's next claims past the cursor and below its floor, in the client
  // index's order (it ends in the rowid); those claimed before the cutoff go.
  const BATCH_ROWS = `SELECT rowid FROM decision_claims
    WHERE tenant = @tenant AND identity = @identity AND rowid > @cursor AND rowid < @floor
    ORDER BY rowid LIMIT @batch`;
  interface BatchParams extends ClaimClient {
    readonly cursor: number;
    readonly floor: number;
    readonly batch: number;
  }
  const examineBatch = db.prepare<BatchParams, { n: number; last: number | null }>(
    `SELECT count(*) AS n, max(rowid) AS last FROM (${BATCH_ROWS})`,
  );
  const deleteBatch = db.prepare<BatchParams & { readonly cutoff: number }>(
    `DELETE FROM decision_claims WHERE rowid IN (${BATCH_ROWS}) AND claimed_at < @cutoff`,
  );
  const pruneBatch = db.transaction((b: BatchParams & { readonly cutoff: number }) => {
    const params = {
      tenant: b.tenant,
      identity: b.identity,
      cursor: b.cursor,
      floor: b.floor,
      batch: b.batch,
    };
    const seen = examineBatch.get(params);
    const deleted = deleteBatch.run({ ...params, cutoff: b.cutoff }).changes;
    return { examined: seen?.n ?? 0, last: seen?.last ?? b.cursor, deleted };
  });
  let closed = false;
  const open = (): void => {
    if (closed) throw new Error('the decision claims are closed');
  };
  const pruner = createRequestMemoryPruner<ClaimClient>(
    {
      latest: () => settle(() => latest.get()?.m ?? undefined),
      clients: () =>
        settle(() => {
          const found: ClaimClient[] = [];
          for (let c = firstClient.get(); c !== undefined; c = nextClient.get(c.tenant, c.identity))
            found.push({ tenant: c.tenant, identity: c.identity });
          return found;
        }),
      keyOf: (c) => JSON.stringify([c.tenant, c.identity]),
      floor: (c) => settle(() => floorOf.get(c.tenant, c.identity, keepPerClient - 1)?.r),
      batch: (c, cursor, floor, cutoff, batch) =>
        settle(() => {
          const b = { tenant: c.tenant, identity: c.identity, cursor, floor, cutoff, batch };
          return unit === undefined ? pruneBatch.immediate(b) : unit.stage(() => pruneBatch(b)).value;
        }),
    },
    {
      retentionMs,
      batchRows: PRUNE_BATCH,
      budgetMs: BACKGROUND_BUDGET_MS,
      closed: () => closed,
      closedError: () => new Error('the decision claims are closed'),
    },
  );
  let claimsSincePrune = 0;
  return Object.freeze({
    claim: (key: DecisionClaimKey, holder: string, atMs: number) =>
      new Promise<boolean>((resolve) => {
        open();
        const n = write(
          () => insert.run(key.tenant, key.identity, key.request_id, holder, Math.trunc(atMs)).changes,
        );
        if (n !== 0 && n !== 1) throw new TypeError('a claim changed more than one row');
        // After the claim committed, never in its transaction: a claim never waits for a prune.
        claimsSincePrune += 1;
        if (claimsSincePrune >= pruneEvery && pruner.start()) claimsSincePrune = 0;
        resolve(n === 1);
      }),
    prune: () => settle(open).then(() => pruner.run()),
    close: async () => {
      if (closed) return;
      closed = true;
      await pruner.idle();
      if (unit === undefined) db.close();
    },
  });
}

/** `fn`'s value as a promise; its throw as a rejection. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error('the decision claims failed'));
  }
}
