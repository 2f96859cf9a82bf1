/**
 * Durable approval state (OE-INV-019/020, L7 Identity & Signing, Break-glass) in SQLite: the
 * approver registry (a namespace apart from clients, OE-INV-002), client owners (self-approval
 * detection), pending approvals, votes, break-glass grants and review items. Single use and
 * single issuance are enforced by the database: a primary key or a guarded UPDATE, where "one
 * row changed" is the only success (SPEC §8 nonce-store pitfall). Failures throw; the callers
 * deny.
 */
import Database from 'better-sqlite3';
import type { KeyObject } from 'node:crypto';
import { migrateSchema, parsePublicJwk, type SchemaMigration } from '../../kernel/index.js';
import type { Ed25519Jwks, JsonObject, JsonValue } from '../../kernel/index.js';
import type { LedgerRef } from '../ledger-port.js';

/** Life of a pending approval. `issued` is terminal: the envelope was issued once. */
export type PendingStatus = 'pending' | 'approved' | 'rejected' | 'expired' | 'issued';

/** What is being approved: a governed call or a policy activation (OE-INV-020). */
export type PendingKind = 'call' | 'policy_activation';

/** A pending approval as stored. */
export interface PendingRecord {
  readonly decision_id: string;
  readonly kind: PendingKind;
  readonly request_id: string;
  readonly trace_id: string;
  /** The requesting client (or `operator` for a policy activation). */
  readonly identity: string;
  /** The human owner of the requesting client; null when unknown (then nobody may approve). */
  readonly owner: string | null;
  readonly tenant: string;
  readonly tool: string;
  readonly session: string | null;
  readonly params_sha256: string;
  readonly intent_sha256: string;
  readonly params_view: JsonValue;
  readonly preview: JsonObject | null;
  readonly preview_sha256: string | null;
  readonly risk: string;
  readonly required: number;
  readonly roles: readonly string[];
  readonly policy_bundle: string | null;
  readonly decision_ref: LedgerRef | null;
  /** The envelope `constraints` computed at decision time (calls), or null. */
  readonly constraints: JsonObject | null;
  readonly created_at: number;
  readonly expires_at: number;
  readonly status: PendingStatus;
  /** Approval references (evidence hashes) once finalised. */
  readonly approvals: readonly string[];
  readonly grant_id: string | null;
}

/** One counted approval or rejection. */
export interface VoteRecord {
  readonly decision_id: string;
  readonly approver: string;
  readonly verdict: 'approve' | 'reject';
  readonly role: string;
  readonly method: 'key' | 'oidc';
  readonly approval_sha256: string;
  readonly at: number;
  readonly ledger_index: number;
  /** The submitted approval (statement with its signature, or the verified OIDC identity), re-counted at finalisation. */
  readonly candidate: JsonObject;
}

/** A registered approver (embedded default identity method). */
export interface ApproverRecord {
  readonly name: string;
  readonly roles: readonly string[];
  readonly kid: string;
  readonly status: 'active' | 'revoked';
  readonly registered_at: number;
}

/** A break-glass grant (L7). */
export interface BreakGlassGrant {
  readonly grant_id: string;
  readonly approver: string;
  readonly role: string;
  readonly tenant: string;
  readonly tool: string;
  readonly reason_category: string;
  readonly reason: string;
  readonly created_at: number;
  readonly expires_at: number;
  readonly ledger_index: number;
  /** SHA-256 of the signed break-glass statement (evidence); the envelope's approval reference. */
  readonly statement_sha256: string;
}

/** A post-incident review item opened by a break-glass use. */
export interface ReviewRecord {
  readonly review_id: string;
  readonly grant_id: string;
  readonly decision_id: string;
  /** Who used break-glass: may not close the review. */
  readonly opened_for: string;
  readonly opened_at: number;
  readonly status: 'open' | 'closed';
  readonly closed_by: string | null;
  readonly closed_at: number | null;
  readonly notes: string | null;
}

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

/** Schema versions of the approval state (store `approvals`; append-only): 1 is the pre-versioning schema. */
const MIGRATIONS: readonly SchemaMigration[] = [
  {
    version: 1,
    name: 'approvers, client owners, pending approvals, votes, break-glass grants, reviews',
    up: SCHEMA,
  },
];

/** The approval state. Every method is synchronous and throws when the database fails. */
export interface ApprovalStore {
  registerApprover(input: {
    name: string;
    roles: readonly string[];
    jwk: unknown;
    atMs: number;
  }): ApproverRecord;
  /** The approver and its checked public key, or undefined. */
  approver(name: string): (ApproverRecord & { readonly publicKey: KeyObject }) | undefined;
  listApprovers(): readonly ApproverRecord[];
  /** Approver public keys with the revoked kids (audit bundles). */
  approverJwks(): Ed25519Jwks;
  setOwner(identity: string, owner: string): void;
  ownerOf(identity: string): string | undefined;
  /** Inserts a pending approval; false when one exists for the decision. */
  insertPending(rec: PendingRecord): boolean;
  pending(decisionId: string): PendingRecord | undefined;
  listPending(): readonly PendingRecord[];
  /**
   * Records a vote and marks its approval hash used, atomically: `'duplicate'` when this approver
   * already voted on the decision, `'replayed'` when the signed approval was used before.
   */
  addVote(vote: VoteRecord): 'ok' | 'duplicate' | 'replayed';
  /** Marks a statement hash used (break-glass, reviews); false when it was used before. */
  markUsed(sha256: string, atMs: number): boolean;
  votes(decisionId: string): readonly VoteRecord[];
  /** `pending` → `status`; false when the decision was no longer pending. */
  finalize(
    decisionId: string,
    status: 'approved' | 'rejected' | 'expired',
    approvals: readonly string[],
    grantId?: string,
  ): boolean;
  /** `approved` → `issued`: true exactly once per decision (single issuance). */
  markIssued(decisionId: string): boolean;
  insertGrant(grant: BreakGlassGrant): void;
  /** The latest unexpired grant for `tenant` and `tool` at `atMs`. */
  activeGrant(tenant: string, tool: string, atMs: number): BreakGlassGrant | undefined;
  insertReview(review: ReviewRecord): void;
  review(id: string): ReviewRecord | undefined;
  listReviews(): readonly ReviewRecord[];
  /** `open` → `closed`; false when it was not open. */
  closeReview(id: string, by: string, notes: string, atMs: number): boolean;
  close(): void;
}

type Row = Record<string, unknown>;

/**
 * Opens (creating if needed) the approval state at `path` (`:memory:` for tests). WAL,
 * synchronous=FULL. Throws when the file records a schema newer than this build
 * (`SchemaVersionError`, fail closed).
 */
export function createSqliteApprovalStore(path: string): ApprovalStore {
  const db = new Database(path);
  db.pragma('busy_timeout = 2000');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  try {
    migrateSchema(db, 'approvals', MIGRATIONS);
  } catch (err) {
    db.close();
    throw err;
  }
  const keys = new Map<string, KeyObject>();
  const q = {
    approver: db.prepare<[string], Row>('SELECT * FROM approval_approvers WHERE name = ?'),
    approvers: db.prepare<[], Row>('SELECT * FROM approval_approvers ORDER BY name'),
    addApprover: db.prepare(
      'INSERT INTO approval_approvers (name, roles, kid, jwk, status, registered_at) VALUES (?, ?, ?, ?, ?, ?)',
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
      'SELECT * FROM approval_votes WHERE decision_id = ? ORDER BY ledger_index',
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
    grant: db.prepare<[string, string, number], Row>(
      'SELECT body FROM approval_grants WHERE tenant = ? AND tool = ? AND expires_at > ? ORDER BY expires_at DESC LIMIT 1',
    ),
    addReview: db.prepare('INSERT INTO approval_reviews (review_id, body, status) VALUES (?, ?, ?)'),
    review: db.prepare<[string], Row>('SELECT body FROM approval_reviews WHERE review_id = ?'),
    reviews: db.prepare<[], Row>('SELECT body FROM approval_reviews ORDER BY review_id'),
    closeReview: db.prepare(
      "UPDATE approval_reviews SET body = ?, status = 'closed' WHERE review_id = ? AND status = 'open'",
    ),
  };

  const toApprover = (r: Row): ApproverRecord =>
    Object.freeze({
      name: String(r['name']),
      roles: Object.freeze(JSON.parse(String(r['roles'])) as string[]),
      kid: String(r['kid']),
      status: r['status'] === 'active' ? 'active' : 'revoked',
      registered_at: Number(r['registered_at']),
    });
  const toPending = (r: Row): PendingRecord =>
    Object.freeze({
      ...(JSON.parse(String(r['body'])) as Omit<PendingRecord, 'status' | 'approvals' | 'grant_id'>),
      status: String(r['status']) as PendingStatus,
      approvals: Object.freeze(JSON.parse(String(r['approvals'])) as string[]),
      grant_id: typeof r['grant_id'] === 'string' ? r['grant_id'] : null,
    });
  const toVote = (r: Row): VoteRecord =>
    Object.freeze({
      decision_id: String(r['decision_id']),
      approver: String(r['approver']),
      verdict: r['verdict'] === 'approve' ? 'approve' : 'reject',
      role: String(r['role']),
      method: r['method'] === 'oidc' ? 'oidc' : 'key',
      approval_sha256: String(r['approval_sha256']),
      at: Number(r['at']),
      ledger_index: Number(r['ledger_index']),
      candidate: JSON.parse(String(r['candidate'])) as JsonObject,
    });

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
    if (changed !== 1) throw new Error('vote not recorded');
    return 'ok';
  });

  return {
    registerApprover({ name, roles, jwk, atMs }) {
      const key = parsePublicJwk(jwk);
      if (q.approver.get(name) !== undefined) throw new TypeError(`approver ${name} already exists`);
      const row = {
        name,
        roles: JSON.stringify([...roles].sort()),
        kid: key.kid,
        jwk: JSON.stringify(key.jwk),
        status: 'active',
        registered_at: Math.trunc(atMs),
      };
      q.addApprover.run(row.name, row.roles, row.kid, row.jwk, row.status, row.registered_at);
      return toApprover(row);
    },
    approver(name) {
      const r = q.approver.get(name);
      if (r === undefined) return undefined;
      const jwk = String(r['jwk']);
      let key = keys.get(jwk);
      if (key === undefined) {
        // Stored after the same checks by registerApprover; parsed again because the file is shared.
        key = parsePublicJwk(JSON.parse(jwk)).keyObject;
        keys.set(jwk, key);
      }
      return Object.freeze({ ...toApprover(r), publicKey: key });
    },
    listApprovers: () => Object.freeze(q.approvers.all().map(toApprover)),
    approverJwks() {
      const rows = q.approvers.all();
      const list = rows
        .map((r) => parsePublicJwk(JSON.parse(String(r['jwk']))).jwk)
        .sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
      const revoked = rows
        .filter((r) => r['status'] !== 'active')
        .map((r) => String(r['kid']))
        .sort();
      return Object.freeze({ keys: Object.freeze(list), revoked: Object.freeze(revoked) });
    },
    setOwner: (identity, owner) => void q.setOwner.run(identity, owner),
    ownerOf(identity) {
      const r = q.owner.get(identity);
      return r === undefined ? undefined : String(r['owner']);
    },
    insertPending(rec) {
      const { status, approvals, grant_id, ...body } = rec;
      return (
        q.addPending.run(
          rec.decision_id,
          JSON.stringify(body),
          status,
          JSON.stringify(approvals),
          grant_id,
          rec.expires_at,
          rec.created_at,
        ).changes === 1
      );
    },
    pending(id) {
      const r = q.pending.get(id);
      return r === undefined ? undefined : toPending(r);
    },
    listPending: () => Object.freeze(q.pendings.all().map(toPending)),
    addVote: (v) => voteTx(v),
    markUsed: (sha, atMs) => q.use.run(sha, Math.trunc(atMs)).changes === 1,
    votes: (id) => Object.freeze(q.votes.all(id).map(toVote)),
    finalize: (id, status, approvals, grantId) =>
      q.finalize.run(status, JSON.stringify(approvals), grantId ?? null, id).changes === 1,
    markIssued: (id) => q.issue.run(id).changes === 1,
    insertGrant: (g) => void q.addGrant.run(g.grant_id, JSON.stringify(g), g.tenant, g.tool, g.expires_at),
    activeGrant(tenant, tool, atMs) {
      const r = q.grant.get(tenant, tool, Math.trunc(atMs));
      return r === undefined ? undefined : (Object.freeze(JSON.parse(String(r['body']))) as BreakGlassGrant);
    },
    insertReview: (r) => void q.addReview.run(r.review_id, JSON.stringify(r), r.status),
    review(id) {
      const r = q.review.get(id);
      return r === undefined ? undefined : (Object.freeze(JSON.parse(String(r['body']))) as ReviewRecord);
    },
    listReviews: () =>
      Object.freeze(q.reviews.all().map((r) => Object.freeze(JSON.parse(String(r['body']))) as ReviewRecord)),
    closeReview(id, by, notes, atMs) {
      const r = q.review.get(id);
      if (r === undefined) return false;
      const body: ReviewRecord = {
        ...(JSON.parse(String(r['body'])) as ReviewRecord),
        status: 'closed',
        closed_by: by,
        closed_at: Math.trunc(atMs),
        notes,
      };
      return q.closeReview.run(JSON.stringify(body), id).changes === 1;
    },
    close: () => db.close(),
  };
}
