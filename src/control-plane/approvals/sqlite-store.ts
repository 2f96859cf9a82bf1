/**
 * The approval state in SQLite (`state.db` of the data directory, beside the Gate's and the
 * Control Plane's other state): the {@link ApprovalStore} of the SQLite backend. One connection,
 * WAL, `synchronous=FULL`; its schema versions are recorded as store `approvals`. Each state
 * transition is one statement or one transaction, so another connection on the file (another
 * process) sees every single use. Every row read back is parsed (`records.ts`); every failure
 * rejects. The per-decision critical section (`withDecisionLock`) is an in-process mutex: one
 * process serves a SQLite approval state.
 */
import { resolve } from 'node:path';
import Database from 'better-sqlite3';
import { openStoreConnection, parsePublicJwk, type SchemaMigration } from '../../kernel/index.js';
import type { Ed25519Jwks, SqliteCommitUnit } from '../../kernel/index.js';
import {
  intOf,
  parseActivity,
  parseActivityRow,
  parseApproverKey,
  parseApproverRow,
  parseApproverWithKey,
  parseGrantBody,
  parsePendingRow,
  parseReviewBody,
  parseVoteRow,
  pendingBody,
  tenantsText,
  textOf,
  type ActivityColumns,
  type ApproverColumns,
  type PendingColumns,
  type VoteColumns,
} from './records.js';
import type { ApprovalStore, BreakGlassGrant, PendingRecord, ReviewRecord, VoteRecord } from './store.js';
import { createDecisionMutex, type DecisionLock } from './decision-lock.js';
import { utcHour, type ActivityRecord } from './watch.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS approval_approvers (
  name TEXT PRIMARY KEY NOT NULL, roles TEXT NOT NULL, kid TEXT NOT NULL, jwk TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'revoked')), registered_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS approval_client_owners (identity TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS approval_pending (
  decision_id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL, approvals TEXT NOT NULL,
  grant_id TEXT, expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS approval_votes (
  decision_id TEXT NOT NULL, approver TEXT NOT NULL, verdict TEXT NOT NULL, role TEXT NOT NULL, method TEXT NOT NULL,
  approval_sha256 TEXT NOT NULL UNIQUE, at INTEGER NOT NULL, ledger_index INTEGER NOT NULL, candidate TEXT NOT NULL,
  PRIMARY KEY (decision_id, approver)
) STRICT;
CREATE TABLE IF NOT EXISTS approval_used (approval_sha256 TEXT PRIMARY KEY NOT NULL, at INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS approval_grants (
  grant_id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL, tenant TEXT NOT NULL, tool TEXT NOT NULL, expires_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS approval_reviews (review_id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL) STRICT;
`;

/** Approvals watched (L7 hardening): rate-limit windows, who opened which view, approver history. */
const WATCH_SCHEMA = `
CREATE TABLE approval_rate (
  approver TEXT NOT NULL, window_start INTEGER NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY (approver, window_start)
) STRICT;
CREATE TABLE approval_views (
  decision_id TEXT NOT NULL, approver TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (decision_id, approver)
) STRICT;
CREATE TABLE approval_activity (
  decision_id TEXT NOT NULL, approver TEXT NOT NULL, tenant TEXT NOT NULL, hour INTEGER NOT NULL,
  at INTEGER NOT NULL, flags TEXT NOT NULL, extra INTEGER NOT NULL, PRIMARY KEY (decision_id, approver)
) STRICT;
CREATE INDEX approval_activity_by_approver ON approval_activity (approver, at);
`;

/**
 * The flags of each (decision, human), written before their `approval.flagged` entry: the
 * threshold a finalisation applies is read from here, so it is never below what the ledger
 * records (`extra` only ever rises). A rate-limit window remembers whether its refusal was ledgered.
 */
const FLAGS_SCHEMA = `
CREATE TABLE approval_flags (
  decision_id TEXT NOT NULL, approver TEXT NOT NULL, tenant TEXT NOT NULL, at INTEGER NOT NULL,
  flags TEXT NOT NULL, extra INTEGER NOT NULL, PRIMARY KEY (decision_id, approver)
) STRICT;
ALTER TABLE approval_rate ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
`;

/**
 * Each approver's history in summary: the count of counted approvals, and the tenants and UTC
 * hours seen. A vote's anomaly checks read these instead of the approver's every row, which grow
 * with their approvals. A trigger keeps them with every row inserted, whoever inserts it (a
 * repeat that `INSERT OR IGNORE` skips fires nothing); the summaries are filled from the rows
 * already there.
 */
const ACTIVITY_SUMMARY_SCHEMA = `
CREATE TABLE approval_activity_totals (approver TEXT PRIMARY KEY NOT NULL, total INTEGER NOT NULL) STRICT;
CREATE TABLE approval_activity_tenants (
  approver TEXT NOT NULL, tenant TEXT NOT NULL, PRIMARY KEY (approver, tenant)
) STRICT, WITHOUT ROWID;
CREATE TABLE approval_activity_hours (
  approver TEXT NOT NULL, hour INTEGER NOT NULL, PRIMARY KEY (approver, hour)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER approval_activity_summary AFTER INSERT ON approval_activity BEGIN
  INSERT INTO approval_activity_totals (approver, total) VALUES (NEW.approver, 1)
    ON CONFLICT (approver) DO UPDATE SET total = total + 1;
  INSERT OR IGNORE INTO approval_activity_tenants (approver, tenant) VALUES (NEW.approver, NEW.tenant);
  INSERT OR IGNORE INTO approval_activity_hours (approver, hour) VALUES (NEW.approver, NEW.hour);
END;
INSERT INTO approval_activity_totals (approver, total)
  SELECT approver, count(*) FROM approval_activity GROUP BY approver;
INSERT INTO approval_activity_tenants (approver, tenant) SELECT DISTINCT approver, tenant FROM approval_activity;
INSERT INTO approval_activity_hours (approver, hour) SELECT DISTINCT approver, hour FROM approval_activity;
`;

/** Schema versions of the approval state (store `approvals`; append-only): 1 is the pre-versioning schema. */
const MIGRATIONS: readonly SchemaMigration[] = [
  {
    version: 1,
    name: 'approvers, client owners, pending approvals, votes, break-glass grants, reviews',
    up: SCHEMA,
  },
  {
    version: 2,
    // Approvers registered before scopes were global: they stay so, recorded as every tenant.
    name: 'approver tenant scopes',
    // Approvers registered before scopes existed were global, and are recorded so; the column's
    // default is an empty scope, which never reads as a scope (a row that omits it refuses).
    up: `ALTER TABLE approval_approvers ADD COLUMN tenants TEXT NOT NULL DEFAULT '[]';
UPDATE approval_approvers SET tenants = '"*"';`,
  },
  {
    version: 3,
    name: 'approvals watched: rate-limit windows, views, approver activity',
    up: WATCH_SCHEMA,
  },
  {
    version: 4,
    name: 'approvals watched: flags recorded before they are ledgered, rate-limit refusals recorded once',
    up: FLAGS_SCHEMA,
  },
  {
    version: 5,
    // Every escalated call looks for an active break-glass grant of its tenant and tool; grants
    // are never deleted, so without it each escalation read the table whole (PostgreSQL has had
    // the same index since its schema version 4).
    name: 'break-glass grants by tenant, tool and expiry',
    up: 'CREATE INDEX IF NOT EXISTS approval_grants_scope ON approval_grants (tenant, tool, expires_at);',
  },
  {
    version: 6,
    name: "approvals watched: each approver's history in summary (count, tenants, hours)",
    up: ACTIVITY_SUMMARY_SCHEMA,
  },
];

type Row = Record<string, unknown>;

/**
 * Opens (creating if needed) the approval state at `path` (`:memory:` for tests). WAL,
 * synchronous=FULL. Throws when the file records a schema newer than this build
 * (`SchemaVersionError`, fail closed).
 */
export function createSqliteApprovalStore(
  path: string,
  options: {
    /**
     * The deployment's shared connection (`sqlite-commit.ts`), over the file at `path`: every
     * write commits on its own before it returns (`writeNow`), so no reader sees an approval
     * state that is not durable. Closing the store leaves the connection open.
     */
    readonly unit?: SqliteCommitUnit;
  } = {},
): ApprovalStore {
  const unit = options.unit;
  const db = openStoreConnection(() => new Database(path), {
    unit,
    store: 'approvals',
    migrations: MIGRATIONS,
  });
  const q = {
    approver: db.prepare<[string], Row>('SELECT * FROM approval_approvers WHERE name = ?'),
    approvers: db.prepare<[], Row>('SELECT * FROM approval_approvers ORDER BY name'),
    addApprover: db.prepare(
      'INSERT OR IGNORE INTO approval_approvers (name, roles, tenants, kid, jwk, status, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    revokeApprover: db.prepare(
      "UPDATE approval_approvers SET status = 'revoked' WHERE name = ? AND status = 'active'",
    ),
    setOwner: db.prepare(
      'INSERT INTO approval_client_owners (identity, owner) VALUES (?, ?) ON CONFLICT (identity) DO UPDATE SET owner = excluded.owner',
    ),
    owner: db.prepare<[string], Row>('SELECT owner FROM approval_client_owners WHERE identity = ?'),
    addPending: db.prepare(
      'INSERT OR IGNORE INTO approval_pending (decision_id, body, status, approvals, grant_id, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    pending: db.prepare<[string], Row>('SELECT * FROM approval_pending WHERE decision_id = ?'),
    pendings: db.prepare<[], Row>('SELECT * FROM approval_pending ORDER BY created_at, decision_id'),
    addVote: db.prepare(
      'INSERT OR IGNORE INTO approval_votes (decision_id, approver, verdict, role, method, approval_sha256, at, ledger_index, candidate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    voted: db.prepare<[string, string], Row>(
      'SELECT 1 AS one FROM approval_votes WHERE decision_id = ? AND approver = ?',
    ),
    use: db.prepare('INSERT OR IGNORE INTO approval_used (approval_sha256, at) VALUES (?, ?)'),
    votes: db.prepare<[string], Row>(
      'SELECT * FROM approval_votes WHERE decision_id = ? ORDER BY ledger_index, approver',
    ),
    finalize: db.prepare(
      "UPDATE approval_pending SET status = ?, approvals = ?, grant_id = ? WHERE decision_id = ? AND status = 'pending'",
    ),
    issue: db.prepare(
      "UPDATE approval_pending SET status = 'issued' WHERE decision_id = ? AND status = 'approved'",
    ),
    addGrant: db.prepare(
      'INSERT INTO approval_grants (grant_id, body, tenant, tool, expires_at) VALUES (?, ?, ?, ?, ?)',
    ),
    endGrant: db.prepare('UPDATE approval_grants SET expires_at = ? WHERE grant_id = ? AND expires_at > ?'),
    grants: db.prepare<[number], Row>(
      'SELECT body FROM approval_grants WHERE expires_at > ? ORDER BY expires_at DESC, grant_id LIMIT 1000',
    ),
    grant: db.prepare<[string, string, number], Row>(
      'SELECT body FROM approval_grants WHERE tenant = ? AND tool = ? AND expires_at > ? ORDER BY expires_at DESC, grant_id LIMIT 1',
    ),
    addReview: db.prepare(
      'INSERT OR IGNORE INTO approval_reviews (review_id, body, status) VALUES (?, ?, ?)',
    ),
    review: db.prepare<[string], Row>('SELECT body, status FROM approval_reviews WHERE review_id = ?'),
    reviews: db.prepare<[], Row>('SELECT body, status FROM approval_reviews ORDER BY review_id'),
    closeReview: db.prepare(
      "UPDATE approval_reviews SET body = ?, status = 'closed' WHERE review_id = ? AND status = 'open'",
    ),
    pruneSlots: db.prepare('DELETE FROM approval_rate WHERE approver = ? AND window_start < ?'),
    // True once per window: the first rate-limited refusal of the window is ledgered.
    rateRefused: db.prepare(
      'UPDATE approval_rate SET refused = 1 WHERE approver = ? AND window_start = ? AND refused = 0',
    ),
    // One statement: a slot is taken only while fewer than the limit are.
    takeSlot: db.prepare<[string, number, number], Row>(
      'INSERT INTO approval_rate (approver, window_start, count) VALUES (?, ?, 1) ON CONFLICT (approver, window_start) DO UPDATE SET count = count + 1 WHERE count < ? RETURNING count',
    ),
    addView: db.prepare('INSERT OR IGNORE INTO approval_views (decision_id, approver, at) VALUES (?, ?, ?)'),
    view: db.prepare<[string, string], Row>(
      'SELECT at FROM approval_views WHERE decision_id = ? AND approver = ?',
    ),
    addActivity: db.prepare(
      'INSERT OR IGNORE INTO approval_activity (decision_id, approver, tenant, hour, at, flags, extra) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    activityTotal: db.prepare<[string], Row>(
      'SELECT coalesce((SELECT total FROM approval_activity_totals WHERE approver = ?), 0) AS n',
    ),
    activityRecent: db.prepare<[string, number], Row>(
      'SELECT count(*) AS n FROM approval_activity WHERE approver = ? AND at >= ?',
    ),
    activityTenants: db.prepare<[string], Row>(
      'SELECT tenant FROM approval_activity_tenants WHERE approver = ? ORDER BY tenant',
    ),
    activityHours: db.prepare<[string], Row>(
      'SELECT hour FROM approval_activity_hours WHERE approver = ? ORDER BY hour',
    ),
    // A repeat keeps the first flags; `extra` only rises (any require_extra flag raises).
    addFlag: db.prepare(
      'INSERT INTO approval_flags (decision_id, approver, tenant, at, flags, extra) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (decision_id, approver) DO UPDATE SET extra = max(extra, excluded.extra)',
    ),
    flagged: db.prepare<[string], Row>(
      'SELECT * FROM approval_flags WHERE decision_id = ? ORDER BY approver',
    ),
  };

  // One transaction: of two identical votes only one finds neither its approver nor its hash.
  const voteTx = db.transaction((v: VoteRecord): 'ok' | 'duplicate' | 'replayed' => {
    if (q.voted.get(v.decision_id, v.approver) !== undefined) return 'duplicate';
    if (q.use.run(v.approval_sha256, v.at).changes !== 1) return 'replayed';
    const changed = q.addVote.run(
      v.decision_id,
      v.approver,
      v.verdict,
      v.role,
      v.method,
      v.approval_sha256,
      v.at,
      v.ledger_index,
      JSON.stringify(v.candidate),
    ).changes;
    // A hash unused but already on a vote cannot be: roll the used mark back and refuse.
    if (changed !== 1) throw new Error('vote not recorded');
    return 'ok';
  });

  let closed = false;
  const open = (): void => {
    if (closed) throw new Error('the approval store is closed');
  };
  const sync: Synchronous<Omit<ApprovalStore, 'withDecisionLock'>> = {
    registerApprover({ name, roles, tenants, jwk, atMs }: Parameters<ApprovalStore['registerApprover']>[0]) {
      open();
      const key = parsePublicJwk(jwk);
      if (tenants !== '*' && tenants.length === 0) throw new TypeError('an approver needs a tenant scope');
      const row = {
        name,
        roles: JSON.stringify([...roles].sort()),
        tenants: tenantsText(tenants),
        kid: key.kid,
        jwk: JSON.stringify(key.jwk),
        status: 'active',
        registered_at: Math.trunc(atMs),
      };
      const changed = q.addApprover.run(
        row.name,
        row.roles,
        row.tenants,
        row.kid,
        row.jwk,
        row.status,
        row.registered_at,
      );
      if (changed.changes !== 1) throw new TypeError(`approver ${name} already exists`);
      return parseApproverRow(row);
    },
    revokeApprover(name: string) {
      open();
      return q.revokeApprover.run(name).changes === 1;
    },
    approver(name: string) {
      open();
      const r = q.approver.get(name);
      return r === undefined ? undefined : parseApproverWithKey(r as unknown as ApproverColumns);
    },
    listApprovers() {
      open();
      return Object.freeze(q.approvers.all().map((r) => parseApproverRow(r as unknown as ApproverColumns)));
    },
    approverJwks() {
      open();
      return jwksOf(q.approvers.all() as unknown as ApproverColumns[]);
    },
    setOwner(identity: string, owner: string) {
      open();
      q.setOwner.run(identity, owner);
    },
    ownerOf(identity: string) {
      open();
      const r = q.owner.get(identity);
      return r === undefined ? undefined : textOf(r['owner'], 'owner');
    },
    insertPending(rec: PendingRecord) {
      open();
      return (
        q.addPending.run(
          rec.decision_id,
          pendingBody(rec),
          rec.status,
          JSON.stringify(rec.approvals),
          rec.grant_id,
          rec.expires_at,
          rec.created_at,
        ).changes === 1
      );
    },
    pending(id: string) {
      open();
      const r = q.pending.get(id);
      return r === undefined ? undefined : parsePendingRow(r as unknown as PendingColumns);
    },
    listPending() {
      open();
      return Object.freeze(q.pendings.all().map((r) => parsePendingRow(r as unknown as PendingColumns)));
    },
    addVote(v: VoteRecord) {
      open();
      return voteTx(v);
    },
    markUsed(sha: string, atMs: number) {
      open();
      return q.use.run(sha, Math.trunc(atMs)).changes === 1;
    },
    votes(id: string) {
      open();
      return Object.freeze(q.votes.all(id).map((r) => parseVoteRow(r as unknown as VoteColumns)));
    },
    finalize(
      id: string,
      status: 'approved' | 'rejected' | 'expired',
      approvals: readonly string[],
      grantId?: string,
    ) {
      open();
      return q.finalize.run(status, JSON.stringify(approvals), grantId ?? null, id).changes === 1;
    },
    markIssued(id: string) {
      open();
      return q.issue.run(id).changes === 1;
    },
    insertGrant(g: BreakGlassGrant) {
      open();
      q.addGrant.run(g.grant_id, JSON.stringify(g), g.tenant, g.tool, g.expires_at);
    },
    activeGrant(tenant: string, tool: string, atMs: number) {
      open();
      const r = q.grant.get(tenant, tool, Math.trunc(atMs));
      if (r === undefined) return undefined;
      const g = parseGrantBody(r['body']);
      // The row must be what the query selected.
      if (g.tenant !== tenant || g.tool !== tool || !(g.expires_at > atMs))
        throw new TypeError('approval_grants row does not match its columns');
      return g;
    },
    activeGrants(atMs: number) {
      open();
      return q.grants.all(Math.trunc(atMs)).map((r) => {
        const g = parseGrantBody(r['body']);
        if (!(g.expires_at > atMs)) throw new TypeError('approval_grants row does not match its columns');
        return g;
      });
    },
    endGrant(grantId: string, atMs: number) {
      open();
      const at = Math.trunc(atMs);
      return q.endGrant.run(at, grantId, at).changes === 1;
    },
    insertReview(r: ReviewRecord) {
      open();
      q.addReview.run(r.review_id, JSON.stringify(r), r.status);
    },
    review(id: string) {
      open();
      const r = q.review.get(id);
      return r === undefined ? undefined : parseReviewBody(r['body'], r['status']);
    },
    listReviews() {
      open();
      return Object.freeze(q.reviews.all().map((r) => parseReviewBody(r['body'], r['status'])));
    },
    closeReview(id: string, by: string, notes: string, atMs: number) {
      open();
      const r = q.review.get(id);
      if (r === undefined) return false;
      const body: ReviewRecord = {
        ...parseReviewBody(r['body'], r['status']),
        status: 'closed',
        closed_by: by,
        closed_at: Math.trunc(atMs),
        notes,
      };
      // Guarded by the status: of two closings racing only one changes the row.
      return q.closeReview.run(JSON.stringify(body), id).changes === 1;
    },
    takeApprovalSlot(approver: string, windowStart: number, windowMs: number, limit: number) {
      open();
      if (!Number.isSafeInteger(limit) || limit < 1) throw new TypeError('limit must be a positive integer');
      if (!Number.isSafeInteger(windowMs) || windowMs < 1)
        throw new TypeError('windowMs must be a positive integer');
      // The window before stays: a replica whose clock lags still counts in it.
      q.pruneSlots.run(approver, Math.trunc(windowStart) - windowMs);
      return q.takeSlot.get(approver, Math.trunc(windowStart), limit) !== undefined;
    },
    markRateRefusal(approver: string, windowStart: number) {
      open();
      return q.rateRefused.run(approver, Math.trunc(windowStart)).changes === 1;
    },
    recordFlag(a: ActivityRecord) {
      open();
      q.addFlag.run(
        a.decision_id,
        a.approver,
        a.tenant,
        Math.trunc(a.at),
        JSON.stringify(a.flags),
        a.extra ? 1 : 0,
      );
    },
    recordView(decisionId: string, approver: string, atMs: number) {
      open();
      q.addView.run(decisionId, approver, Math.trunc(atMs));
    },
    viewedAt(decisionId: string, approver: string) {
      open();
      const r = q.view.get(decisionId, approver);
      return r === undefined ? undefined : intOf(r['at'], 'approval_views.at');
    },
    recordActivity(a: ActivityRecord) {
      open();
      // Its summary is kept by the table's trigger (ACTIVITY_SUMMARY_SCHEMA).
      q.addActivity.run(
        a.decision_id,
        a.approver,
        a.tenant,
        utcHour(a.at),
        Math.trunc(a.at),
        JSON.stringify(a.flags),
        a.extra ? 1 : 0,
      );
    },
    activity(approver: string, recentSince: number) {
      open();
      return parseActivity(
        q.activityTotal.get(approver)?.['n'],
        q.activityRecent.get(approver, Math.trunc(recentSince))?.['n'],
        q.activityTenants.all(approver).map((r) => r['tenant']),
        q.activityHours.all(approver).map((r) => r['hour']),
      );
    },
    flagged(decisionId: string) {
      open();
      return Object.freeze(
        q.flagged.all(decisionId).map((r) => parseActivityRow(r as unknown as ActivityColumns)),
      );
    },
    close() {
      if (closed) return;
      closed = true;
      if (unit === undefined) db.close();
    },
  };
  // Typed: a name in READS that is no method of the store does not compile.
  const reads: ReadonlySet<string> = new Set<keyof typeof sync>(READS);
  if (unit !== undefined)
    for (const name of Object.keys(sync) as (keyof typeof sync)[]) {
      if (name === 'close' || reads.has(name)) continue;
      const write = sync[name] as (...args: never[]) => unknown;
      (sync as Record<string, unknown>)[name] = (...args: never[]) => unit.writeNow(() => write(...args));
    }
  // One process serves a SQLite approval state: an in-process mutex per decision is the section,
  // shared by every instance of this process over the same file.
  const lock = decisionMutexOf(path);
  // Every method is async: a throwing statement becomes a rejection, never a synchronous throw.
  return Object.freeze({
    ...promised(sync),
    withDecisionLock: <T>(decisionId: string, fn: (held: () => boolean) => Promise<T>): Promise<T> =>
      closed
        ? Promise.reject(new Error('the approval store is closed'))
        : // One process: the mutex is held until fn settles.
          lock(decisionId, () => fn(() => true)),
  });
}

/**
 * The methods that only read. On the shared connection every other method (but `close`) is a
 * write that commits, and its log is synced, before it returns (`writeNow`): a method added
 * later is durable unless it is named here, never the other way round.
 */
const READS = [
  'approver',
  'listApprovers',
  'approverJwks',
  'ownerOf',
  'pending',
  'listPending',
  'votes',
  'activeGrant',
  'activeGrants',
  'review',
  'listReviews',
  'viewedAt',
  'activity',
  'flagged',
] as const;

/** The per-decision mutexes of each state file opened by this process (`:memory:`: its own). */
const MUTEXES = new Map<string, DecisionLock>();

function decisionMutexOf(path: string): DecisionLock {
  if (path === ':memory:' || path === '') return createDecisionMutex();
  const key = resolve(path);
  const known = MUTEXES.get(key);
  if (known !== undefined) return known;
  const made = createDecisionMutex();
  MUTEXES.set(key, made);
  return made;
}

/** `T` with every method answering synchronously what it resolves to. */
type Synchronous<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => Promise<infer R> ? (...args: A) => R : never;
};

/** Every method of `sync` as one that resolves to its result and rejects with what it throws. */
function promised(
  sync: Synchronous<Omit<ApprovalStore, 'withDecisionLock'>>,
): Omit<ApprovalStore, 'withDecisionLock'> {
  const out: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
  for (const [name, fn] of Object.entries(sync) as [string, (...args: unknown[]) => unknown][]) {
    out[name] = (...args) => {
      try {
        return Promise.resolve(fn(...args));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error('approval store failure'));
      }
    };
  }
  return Object.freeze(out) as unknown as Omit<ApprovalStore, 'withDecisionLock'>;
}

/** Approver public keys with the revoked kids, from approver rows (each key checked again). */
export function jwksOf(rows: readonly ApproverColumns[]): Ed25519Jwks {
  const list = rows
    .map((r) => parseApproverKey(r).jwk)
    .sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
  const revoked = rows
    .map((r) => parseApproverRow(r))
    .filter((r) => r.status !== 'active')
    .map((r) => r.kid)
    .sort();
  return Object.freeze({ keys: Object.freeze(list), revoked: Object.freeze(revoked) });
}
