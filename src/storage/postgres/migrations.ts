/**
 * Versioned schema migrations of the PostgreSQL backend. Each migration is applied once, in
 * order, in one transaction together with its row in `failclosed_schema`; concurrent starters
 * serialize on a transaction-level advisory lock, so two replicas starting at once never apply a
 * migration twice. A database whose schema is NEWER than this build knows is refused: an older
 * binary must not write into tables whose rules it does not know (fail closed).
 *
 * Migrations are append-only: a released migration is never edited, a change is a new version.
 */
import type pg from 'pg';
import { pgDriver } from './driver.js';
import { inTransaction } from './pool.js';
import type { PostgresPool } from './pool.js';
import { rowInt } from './rows.js';

/** One schema change. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** Advisory lock key of schema migrations ("fcmigrat" read as a 64-bit integer, truncated). */
const MIGRATION_LOCK = 0x66636d6967726174n;

/**
 * Version 1: the ledger (entries, checkpoints, evidence, tree snapshot, open requests, writer
 * epoch), the
 * Execution Layer's envelope nonces, the governance state, and the policy bundles with their
 * active pointer.
 */
const V1 = `
CREATE TABLE ledger_entries (
  idx bigint PRIMARY KEY CHECK (idx >= 0),
  entry_hash text NOT NULL,
  type text NOT NULL,
  trace_id text NOT NULL,
  request_id text NOT NULL,
  tenant text NOT NULL,
  -- payload.jti of envelope.issued, payload.decision_id of approval.finalized: the Execution
  -- Layer's envelope context lookups (one indexed read each).
  jti text,
  decision_id text,
  body text NOT NULL
);
CREATE INDEX ledger_entries_trace ON ledger_entries (trace_id, idx);
CREATE INDEX ledger_entries_request ON ledger_entries (request_id, idx);
CREATE INDEX ledger_entries_tenant ON ledger_entries (tenant, idx);
CREATE INDEX ledger_entries_issued_jti ON ledger_entries (jti, idx) WHERE type = 'envelope.issued';
CREATE INDEX ledger_entries_finalized_decision ON ledger_entries (decision_id, idx)
  WHERE type = 'approval.finalized';
CREATE FUNCTION failclosed_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger entries are append-only';
END $$;
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION failclosed_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
  FOR EACH STATEMENT EXECUTE FUNCTION failclosed_append_only();
CREATE TABLE ledger_checkpoints (
  size bigint PRIMARY KEY CHECK (size >= 0),
  root_hash text NOT NULL,
  note text NOT NULL,
  at text NOT NULL
);
CREATE TABLE ledger_evidence (
  sha256 text PRIMARY KEY,
  media_type text NOT NULL,
  body bytea NOT NULL
);
CREATE TABLE ledger_meta (
  key text PRIMARY KEY,
  value bigint NOT NULL
);
CREATE TABLE ledger_tree_chunks (
  level integer NOT NULL CHECK (level >= 0),
  chunk bigint NOT NULL CHECK (chunk >= 0),
  hashes bytea NOT NULL,
  PRIMARY KEY (level, chunk)
);
CREATE TABLE ledger_open_requests (
  accepted_idx bigint PRIMARY KEY,
  request_id text NOT NULL,
  trace_id text NOT NULL
);
CREATE INDEX ledger_open_requests_request ON ledger_open_requests (request_id, trace_id);

-- The ledger's single writer (SPEC §4): the epoch is the fencing token. A writer takes over by
-- raising it (under the writer advisory lock) and every append checks it in its transaction, so
-- a writer that lost the lock can never append again.
CREATE TABLE ledger_writer (
  id integer PRIMARY KEY CHECK (id = 1),
  epoch bigint NOT NULL,
  holder text NOT NULL,
  since timestamptz NOT NULL
);
INSERT INTO ledger_writer (id, epoch, holder, since) VALUES (1, 0, '', now());

CREATE TABLE envelope_nonces (
  jti text PRIMARY KEY,
  tenant text NOT NULL,
  exp bigint NOT NULL,
  decision_id text NOT NULL,
  consumed_at bigint NOT NULL,
  voided boolean NOT NULL DEFAULT false
);
CREATE INDEX envelope_nonces_exp ON envelope_nonces (exp);
CREATE TABLE envelope_nonce_horizon (
  id integer PRIMARY KEY CHECK (id = 1),
  horizon bigint NOT NULL
);
INSERT INTO envelope_nonce_horizon (id, horizon) VALUES (1, -9007199254740991);

CREATE TABLE governance_kill_switch (
  id integer PRIMARY KEY CHECK (id = 1),
  engaged boolean NOT NULL
);
INSERT INTO governance_kill_switch (id, engaged) VALUES (1, false);
CREATE TABLE governance_tenant_lockdown (tenant text PRIMARY KEY);
CREATE TABLE governance_session_quarantine (session text PRIMARY KEY);
CREATE TABLE governance_session_taint (session text PRIMARY KEY);

-- Readiness: a probe writes its row and reads it back.
CREATE TABLE readiness_probe (
  probe text PRIMARY KEY,
  at bigint NOT NULL
);

-- Gate: clients and request nonces (FC-INV-3)
CREATE TABLE gate_clients (
  identity text PRIMARY KEY,
  tenant text NOT NULL,
  kid text NOT NULL,
  jwk text NOT NULL,
  status text NOT NULL CHECK (status IN ('active', 'revoked')),
  registered_at bigint NOT NULL,
  roles text[] NOT NULL DEFAULT '{}'
);
CREATE TABLE gate_request_nonces (
  identity text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('nonce', 'request_id')),
  value text NOT NULL,
  seen_at bigint NOT NULL,
  -- Insertion order: pruning always keeps a client's newest rows, whatever their age.
  seq bigint GENERATED ALWAYS AS IDENTITY,
  PRIMARY KEY (identity, kind, value)
);
CREATE INDEX gate_request_nonces_seen ON gate_request_nonces (seen_at);
CREATE INDEX gate_request_nonces_identity_seq ON gate_request_nonces (identity, seq);
-- One claim is one statement: the nonce and the request id (NULL: the nonce alone) are both
-- recorded, true, or neither, false. A replayed half rolls the block back (a subtransaction), so
-- it never consumes the other half. A concurrent claim of the same value waits for this one to
-- end (INSERT ... ON CONFLICT), so across replicas exactly one claim is fresh.
CREATE FUNCTION gate_claim_request(p_identity text, p_nonce text, p_request_id text, p_at bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  a integer;
  b integer := 1;
BEGIN
  BEGIN
    INSERT INTO gate_request_nonces (identity, kind, value, seen_at)
      VALUES (p_identity, 'nonce', p_nonce, p_at) ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS a = ROW_COUNT;
    IF a <> 1 THEN
      RETURN false;
    END IF;
    IF p_request_id IS NOT NULL THEN
      INSERT INTO gate_request_nonces (identity, kind, value, seen_at)
        VALUES (p_identity, 'request_id', p_request_id, p_at) ON CONFLICT DO NOTHING;
      GET DIAGNOSTICS b = ROW_COUNT;
    END IF;
    IF b = 1 THEN
      RETURN true;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'FCRPL';
  EXCEPTION WHEN SQLSTATE 'FCRPL' THEN
    RETURN false;
  END;
END $$;

-- Circuit breakers (OE-INV-021). Keys are the UTF-8 bytes of the principal, tenant and call
-- (bytea: a call key holds a NUL). breaker_hits holds one row per counted call and window:
-- kind 0 the principal's window (sub empty), 1 the tenant's (sub empty), 2 the principal's
-- same-call window (sub = the call). breaker_open.until NULL means open until an operator reset.
CREATE TABLE breaker_totals (
  principal bytea PRIMARY KEY,
  total bigint NOT NULL CHECK (total > 0)
);
CREATE TABLE breaker_hits (
  kind smallint NOT NULL CHECK (kind IN (0, 1, 2)),
  key bytea NOT NULL,
  sub bytea NOT NULL,
  at bigint NOT NULL
);
CREATE INDEX breaker_hits_key_at ON breaker_hits (kind, key, sub, at);
CREATE INDEX breaker_hits_at ON breaker_hits (at);
CREATE TABLE breaker_open (
  principal bytea PRIMARY KEY,
  breaker text NOT NULL,
  until bigint
);
CREATE TABLE breaker_spend (
  tenant bytea NOT NULL,
  day bigint NOT NULL,
  cents bigint NOT NULL CHECK (cents >= 0),
  PRIMARY KEY (tenant, day)
);
-- Advisory lock key of one principal (kind 0) or tenant (kind 1): admissions and resets of one
-- key serialize on it, across every replica on this database.
CREATE FUNCTION failclosed_breaker_lock_key(kind integer, key bytea) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT
  RETURN hashtextextended('failclosed.breaker:' || kind || ':' || encode(key, 'hex'), 0);
-- One admission (BreakerStore.admit) in one statement, so in one transaction: the principal's
-- and tenant's locks in ascending key order (no deadlock between two admissions), then the
-- open-breaker check, the lifetime count, the pruning of hits at or before the window's start,
-- the three new hits and the counts. Each statement of a plpgsql function reads a fresh
-- snapshot, so the counts see every admission that held the locks before. It also sweeps a few
-- hits of any key older than two windows (keys never admitted again, e.g. ended sessions),
-- skipping rows another admission is sweeping, so the table stays small without a job.
-- Schemas sharing a database share the advisory lock space: that only serializes more.
CREATE FUNCTION failclosed_breaker_admit(
  p_principal bytea, p_tenant bytea, p_call bytea, p_now bigint, p_window bigint
) RETURNS TABLE (open_breaker text, total bigint, in_session bigint, in_tenant bigint, same_call bigint)
  LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  cutoff bigint := p_now - p_window;
  lock_key bigint;
BEGIN
  FOR lock_key IN
    SELECT k FROM unnest(ARRAY[failclosed_breaker_lock_key(0, p_principal),
      failclosed_breaker_lock_key(1, p_tenant)]) AS k ORDER BY k
  LOOP
    PERFORM pg_advisory_xact_lock(lock_key);
  END LOOP;
  SELECT o.breaker INTO open_breaker FROM breaker_open o
    WHERE o.principal = p_principal AND (o.until IS NULL OR p_now < o.until);
  IF FOUND THEN
    RETURN NEXT;
    RETURN;
  END IF;
  INSERT INTO breaker_totals AS t (principal, total) VALUES (p_principal, 1)
    ON CONFLICT (principal) DO UPDATE SET total = t.total + 1
    RETURNING t.total INTO total;
  DELETE FROM breaker_hits h WHERE h.at <= cutoff AND (
    (h.kind IN (0, 2) AND h.key = p_principal) OR (h.kind = 1 AND h.key = p_tenant));
  DELETE FROM breaker_hits WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM breaker_hits WHERE at <= p_now - 2 * p_window LIMIT 8 FOR UPDATE SKIP LOCKED));
  INSERT INTO breaker_hits (kind, key, sub, at) VALUES
    (0, p_principal, ''::bytea, p_now), (1, p_tenant, ''::bytea, p_now), (2, p_principal, p_call, p_now);
  SELECT count(*) INTO in_session FROM breaker_hits h
    WHERE h.kind = 0 AND h.key = p_principal AND h.sub = ''::bytea AND h.at > cutoff;
  SELECT count(*) INTO in_tenant FROM breaker_hits h
    WHERE h.kind = 1 AND h.key = p_tenant AND h.sub = ''::bytea AND h.at > cutoff;
  SELECT count(*) INTO same_call FROM breaker_hits h
    WHERE h.kind = 2 AND h.key = p_principal AND h.sub = p_call AND h.at > cutoff;
  RETURN NEXT;
END $$;
-- An operator reset (BreakerStore.reset) under the same lock as admissions of that key: of a
-- principal (kind 0) its breaker, lifetime count and windows; of a tenant (kind 1) its window
-- and spend.
CREATE FUNCTION failclosed_breaker_reset(p_kind integer, p_key bytea) RETURNS void
  LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(failclosed_breaker_lock_key(p_kind, p_key));
  IF p_kind = 0 THEN
    DELETE FROM breaker_open WHERE principal = p_key;
    DELETE FROM breaker_totals WHERE principal = p_key;
    DELETE FROM breaker_hits WHERE kind IN (0, 2) AND key = p_key;
  ELSE
    DELETE FROM breaker_hits WHERE kind = 1 AND key = p_key;
    DELETE FROM breaker_spend WHERE tenant = p_key;
  END IF;
END $$;

-- Policy bundles (SPEC §6): hash-addressed and immutable, each stored as its canonical bytes;
-- the single row of policy_active points at the active one. Gates keep a verified local copy.
CREATE TABLE policy_bundles (
  hash text PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),
  body bytea NOT NULL
);
CREATE TABLE policy_active (
  id integer PRIMARY KEY CHECK (id = 1),
  hash text NOT NULL REFERENCES policy_bundles (hash)
);
`;

/**
 * Every replica active (SPEC §5 "a stop or a crash never breaks the record"): an open request
 * names the gate instance that accepted it, so that only that instance closes it while it lives
 * and another records it abandoned once it is gone. '' is a request accepted before instances
 * were recorded: owned by no live instance. (`ledger_writer` of version 1, the epoch of a single
 * writer's session lock, is no longer read: appends take the append lock per transaction.)
 */
const V_REPLICAS = `
ALTER TABLE ledger_open_requests ADD COLUMN owner text NOT NULL DEFAULT '';
CREATE INDEX ledger_open_requests_owner ON ledger_open_requests (owner);
`;

/**
 * Version 3: indexes that let the breaker prune (`BreakerStore.prune`) delete by range in
 * bounded batches: open breakers by their end, tenant spend by its day (hits, request nonces and
 * envelope nonces have theirs since version 1). Both tables are small (a row per tripped
 * principal, per tenant and day), so the indexes build at once inside the migration.
 */
const V_PRUNE = `
CREATE INDEX breaker_open_until ON breaker_open (until) WHERE until IS NOT NULL;
CREATE INDEX breaker_spend_day ON breaker_spend (day);
`;

/**
 * Version 4: the approval state (OE-INV-019/020, L7 Break-glass), shared by every Control Plane
 * replica: approvers, client owners, pending approvals, votes, used statement hashes, break-glass
 * grants and review items. Single use and single issuance are the database's: a primary key, a
 * UNIQUE column or an UPDATE guarded by the status, where "one row changed" is the only success.
 */
const V_APPROVALS = `
CREATE TABLE approval_approvers (
  name text PRIMARY KEY,
  roles text NOT NULL,
  kid text NOT NULL,
  jwk text NOT NULL,
  status text NOT NULL CHECK (status IN ('active', 'revoked')),
  registered_at bigint NOT NULL
);
CREATE TABLE approval_client_owners (
  identity text PRIMARY KEY,
  owner text NOT NULL
);
CREATE TABLE approval_pending (
  decision_id text PRIMARY KEY,
  body text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'issued')),
  approvals text NOT NULL,
  grant_id text,
  expires_at bigint NOT NULL,
  created_at bigint NOT NULL
);
CREATE INDEX approval_pending_created ON approval_pending (created_at, decision_id);
CREATE TABLE approval_votes (
  decision_id text NOT NULL,
  approver text NOT NULL,
  verdict text NOT NULL CHECK (verdict IN ('approve', 'reject')),
  role text NOT NULL,
  method text NOT NULL CHECK (method IN ('key', 'oidc')),
  approval_sha256 text NOT NULL UNIQUE,
  at bigint NOT NULL,
  ledger_index bigint NOT NULL CHECK (ledger_index >= 0),
  candidate text NOT NULL,
  PRIMARY KEY (decision_id, approver)
);
CREATE TABLE approval_used (
  approval_sha256 text PRIMARY KEY,
  at bigint NOT NULL
);
CREATE TABLE approval_grants (
  grant_id text PRIMARY KEY,
  body text NOT NULL,
  tenant text NOT NULL,
  tool text NOT NULL,
  expires_at bigint NOT NULL
);
CREATE INDEX approval_grants_scope ON approval_grants (tenant, tool, expires_at);
CREATE TABLE approval_reviews (
  review_id text PRIMARY KEY,
  body text NOT NULL,
  status text NOT NULL CHECK (status IN ('open', 'closed'))
);
`;

/**
 * Version 5: approvers scoped to tenants (OE-INV-020): a JSON list of tenants, or `"*"` for
 * every tenant. Approvers registered before scopes existed were global and stay so, recorded
 * as `"*"`.
 */
const V_APPROVER_TENANTS = `
ALTER TABLE approval_approvers ADD COLUMN tenants text NOT NULL DEFAULT '[]';
UPDATE approval_approvers SET tenants = '"*"';
`;

/**
 * Version 6: approvals watched (L7 hardening "Rate limits and anomaly detection for approvals"):
 * per-approver counters of fixed rate-limit windows, who opened which pending approval, and each
 * approver's counted approvals with their anomaly flags.
 */
const V_APPROVALS_WATCHED = `
CREATE TABLE approval_rate (
  approver text NOT NULL,
  window_start bigint NOT NULL,
  count integer NOT NULL CHECK (count >= 1),
  PRIMARY KEY (approver, window_start)
);
CREATE TABLE approval_views (
  decision_id text NOT NULL,
  approver text NOT NULL,
  at bigint NOT NULL,
  PRIMARY KEY (decision_id, approver)
);
CREATE TABLE approval_activity (
  decision_id text NOT NULL,
  approver text NOT NULL,
  tenant text NOT NULL,
  hour integer NOT NULL CHECK (hour BETWEEN 0 AND 23),
  at bigint NOT NULL,
  flags text NOT NULL,
  extra integer NOT NULL CHECK (extra IN (0, 1)),
  PRIMARY KEY (decision_id, approver)
);
CREATE INDEX approval_activity_by_approver ON approval_activity (approver, at);
`;

/**
 * Version 7: each (decision, human)'s anomaly flags, recorded before their `approval.flagged`
 * entry (`extra` only rises), which the finalisation's threshold is read from; and whether a
 * rate-limit window's refusal was ledgered.
 */
const V_APPROVAL_FLAGS = `
CREATE TABLE approval_flags (
  decision_id text NOT NULL,
  approver text NOT NULL,
  tenant text NOT NULL,
  at bigint NOT NULL,
  flags text NOT NULL,
  extra integer NOT NULL CHECK (extra IN (0, 1)),
  PRIMARY KEY (decision_id, approver)
);
ALTER TABLE approval_rate ADD COLUMN refused integer NOT NULL DEFAULT 0 CHECK (refused IN (0, 1));
`;

/**
 * Version 8: the browser console's invited people, sign-in sessions (by the SHA-256 of their
 * cookie) and used sign-in challenge ids (docs/console.md), shared by every gate on the database.
 */
const V_CONSOLE = `
CREATE TABLE console_people (
  name text PRIMARY KEY,
  roles text NOT NULL,
  tenants text NOT NULL,
  code_sha256 text,
  invited_at bigint NOT NULL,
  code_expires_at bigint NOT NULL,
  public_jwk text,
  kid text,
  enrolled_at bigint,
  confirmed_at bigint
);
CREATE TABLE console_sessions (
  id_sha256 text PRIMARY KEY,
  name text NOT NULL,
  method text NOT NULL CHECK (method IN ('code', 'key')),
  created_at bigint NOT NULL,
  last_seen bigint NOT NULL
);
CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen);
CREATE TABLE console_used_challenges (
  id text PRIMARY KEY,
  expires_at bigint NOT NULL
);
`;

/**
 * Version 9: window hits counted in buckets (OE-INV-021; `bucketOf` in src/storage/breaker-rows.ts,
 * 64 per window): an admission adds one to three bucket rows and sums at most 129 rows per key,
 * where a row per hit made each count read every hit of the window (the tenant's grows with the
 * call rate). A bucket counts when its latest hit is inside the window: every hit of the window
 * is counted, and at most one bucket's before it (a breaker trips at most one bucket sooner,
 * never later). Each hit of version 8 becomes a bucket of its own.
 */
const V_BREAKER_BUCKETS = `
CREATE TABLE breaker_buckets (
  kind smallint NOT NULL CHECK (kind IN (0, 1, 2)),
  key bytea NOT NULL,
  sub bytea NOT NULL,
  bucket bigint NOT NULL,
  until bigint NOT NULL CHECK (until > bucket),
  hits bigint NOT NULL CHECK (hits > 0),
  last_at bigint NOT NULL,
  PRIMARY KEY (kind, key, sub, bucket)
);
CREATE INDEX breaker_buckets_until ON breaker_buckets (until);
INSERT INTO breaker_buckets (kind, key, sub, bucket, until, hits, last_at)
  SELECT kind, key, sub, at, at + 1, count(*), at FROM breaker_hits GROUP BY kind, key, sub, at;
DROP TABLE breaker_hits;
CREATE OR REPLACE FUNCTION failclosed_breaker_admit(
  p_principal bytea, p_tenant bytea, p_call bytea, p_now bigint, p_window bigint
) RETURNS TABLE (open_breaker text, total bigint, in_session bigint, in_tenant bigint, same_call bigint)
  LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  cutoff bigint := p_now - p_window;
  width bigint := greatest(1, ceil(p_window / 64.0))::bigint;
  b_start bigint;
  lock_key bigint;
BEGIN
  b_start := floor(p_now::numeric / width)::bigint * width;
  FOR lock_key IN
    SELECT k FROM unnest(ARRAY[failclosed_breaker_lock_key(0, p_principal),
      failclosed_breaker_lock_key(1, p_tenant)]) AS k ORDER BY k
  LOOP
    PERFORM pg_advisory_xact_lock(lock_key);
  END LOOP;
  SELECT o.breaker INTO open_breaker FROM breaker_open o
    WHERE o.principal = p_principal AND (o.until IS NULL OR p_now < o.until);
  IF FOUND THEN
    RETURN NEXT;
    RETURN;
  END IF;
  INSERT INTO breaker_totals AS t (principal, total) VALUES (p_principal, 1)
    ON CONFLICT (principal) DO UPDATE SET total = t.total + 1
    RETURNING t.total INTO total;
  -- Buckets two windows old: a clock stepped back by up to a window still counts the rest.
  DELETE FROM breaker_buckets h WHERE h.until <= p_now - 2 * p_window AND (
    (h.kind IN (0, 2) AND h.key = p_principal) OR (h.kind = 1 AND h.key = p_tenant));
  DELETE FROM breaker_buckets WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM breaker_buckets WHERE until <= p_now - 2 * p_window LIMIT 8 FOR UPDATE SKIP LOCKED));
  INSERT INTO breaker_buckets AS h (kind, key, sub, bucket, until, hits, last_at) VALUES
    (0, p_principal, ''::bytea, b_start, b_start + width, 1, p_now),
    (1, p_tenant, ''::bytea, b_start, b_start + width, 1, p_now),
    (2, p_principal, p_call, b_start, b_start + width, 1, p_now)
    ON CONFLICT (kind, key, sub, bucket) DO UPDATE SET hits = h.hits + 1,
      until = greatest(h.until, excluded.until), last_at = greatest(h.last_at, excluded.last_at);
  SELECT sum(h.hits) INTO in_session FROM breaker_buckets h
    WHERE h.kind = 0 AND h.key = p_principal AND h.sub = ''::bytea AND h.last_at > cutoff;
  SELECT sum(h.hits) INTO in_tenant FROM breaker_buckets h
    WHERE h.kind = 1 AND h.key = p_tenant AND h.sub = ''::bytea AND h.last_at > cutoff;
  SELECT sum(h.hits) INTO same_call FROM breaker_buckets h
    WHERE h.kind = 2 AND h.key = p_principal AND h.sub = p_call AND h.last_at > cutoff;
  RETURN NEXT;
END $$;
CREATE OR REPLACE FUNCTION failclosed_breaker_reset(p_kind integer, p_key bytea) RETURNS void
  LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(failclosed_breaker_lock_key(p_kind, p_key));
  IF p_kind = 0 THEN
    DELETE FROM breaker_open WHERE principal = p_key;
    DELETE FROM breaker_totals WHERE principal = p_key;
    DELETE FROM breaker_buckets WHERE kind IN (0, 2) AND key = p_key;
  ELSE
    DELETE FROM breaker_buckets WHERE kind = 1 AND key = p_key;
    DELETE FROM breaker_spend WHERE tenant = p_key;
  END IF;
END $$;
`;

/**
 * Version 10: the operator registry (OE-INV-025, src/gate/operators.ts): people with a tenant
 * scope and the SHA-256 of their bearer token, shared by every gate on the database.
 */
const V_OPERATORS = `
CREATE TABLE operators (
  name text PRIMARY KEY,
  tenants text NOT NULL,
  token_sha256 text NOT NULL UNIQUE,
  status text NOT NULL CHECK (status IN ('active', 'removed')),
  created_at bigint NOT NULL,
  rotated_at bigint,
  removed_at bigint
);
`;

/**
 * Version 11: a console invitation bound to an OIDC identity (issuer and subject), and the
 * sessions that proved it (docs/console.md "OIDC sign-in").
 */
const V_CONSOLE_OIDC = `
ALTER TABLE console_people ADD COLUMN oidc_issuer text;
ALTER TABLE console_people ADD COLUMN oidc_subject text;
ALTER TABLE console_sessions DROP CONSTRAINT console_sessions_method_check;
ALTER TABLE console_sessions ADD CONSTRAINT console_sessions_method_check
  CHECK (method IN ('code', 'key', 'code+oidc', 'key+oidc'));
`;

/**
 * Version 12: an operator bound to an OIDC identity (src/gate/operators.ts; docs/console.md
 * "Operator sign-in"), one ACTIVE operator per identity.
 */
const V_OPERATOR_OIDC = `
ALTER TABLE operators ADD COLUMN oidc_issuer text;
ALTER TABLE operators ADD COLUMN oidc_subject text;
ALTER TABLE operators ADD COLUMN oidc_bound_at bigint;
ALTER TABLE operators ADD CONSTRAINT operators_oidc_whole
  CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL) AND (oidc_subject IS NULL) = (oidc_bound_at IS NULL));
CREATE UNIQUE INDEX operators_oidc ON operators (oidc_issuer, oidc_subject)
  WHERE status = 'active' AND oidc_subject IS NOT NULL;
`;

/**
 * Version 13: operator console sessions (by the SHA-256 of their cookie) and the counters of
 * failed console sign-ins, shared by every gate on the database (docs/console.md "Sign-in
 * attempts"): a session opened through one replica is known to all, and the limits count
 * attempts made through any replica.
 */
const V_CONSOLE_SHARED = `
CREATE TABLE console_operator_sessions (
  id_sha256 text PRIMARY KEY,
  name text NOT NULL,
  method text NOT NULL CHECK (method IN ('token', 'oidc')),
  credential text NOT NULL,
  created_at bigint NOT NULL,
  last_seen bigint NOT NULL
);
CREATE TABLE console_sign_in_failures (
  key text PRIMARY KEY,
  count integer NOT NULL CHECK (count >= 0),
  since bigint NOT NULL,
  told boolean NOT NULL
);
CREATE INDEX console_sign_in_failures_since ON console_sign_in_failures (since);
`;

/**
 * Version 14: schedules (docs/schedules.md, FC-INV-6 scheduled tasks), shared by every gate on the
 * database: each slot is taken by one gate through a compare-and-set on `next_slot`.
 */
const V_SCHEDULES = `
CREATE TABLE schedules (
  id text PRIMARY KEY,
  tenant text NOT NULL,
  identity text NOT NULL,
  tool text NOT NULL,
  spec text NOT NULL,
  decision_id text NOT NULL UNIQUE,
  request_id text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'active', 'paused', 'removed')),
  next_slot bigint,
  created_at bigint NOT NULL,
  last_run text
);
CREATE INDEX schedules_due ON schedules (status, next_slot);
`;

/**
 * Version 15: the Control Plane's claims of the requests it decides for separate Gates
 * (FC-INV-3, FC-INV-6, `src/control-plane/decision-claims.ts`): one row per tenant, client
 * identity and request id, inserted by one `ON CONFLICT DO NOTHING` statement before the decision,
 * so of every Control Plane process on the schema one decides each request. Neither the Gate's
 * nor the Execution Layer's database role has any privilege on it.
 */
const V_DECISION_CLAIMS = `
CREATE TABLE decision_claims (
  tenant text NOT NULL,
  identity text NOT NULL,
  request_id text NOT NULL,
  holder text NOT NULL,
  claimed_at bigint NOT NULL,
  PRIMARY KEY (tenant, identity, request_id)
);
`;

/**
 * Version 16: the decision claims in insertion order (`seq`, numbered for the rows already there
 * as the column is added) with the indexes their prune walks (FC-INV-3,
 * `src/storage/postgres/decision-claims.ts`): a client's claims by seq, the latest `claimed_at`.
 */
const V_DECISION_CLAIMS_PRUNE = `
ALTER TABLE decision_claims ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE INDEX decision_claims_client_seq ON decision_claims (tenant, identity, seq);
CREATE INDEX decision_claims_at ON decision_claims (claimed_at);
`;

/**
 * Version 17: each approver's history in summary (docs/approvals.md "Approvals watched"): the
 * count of counted approvals, and the tenants and UTC hours seen, which a vote's anomaly checks
 * read instead of the approver's every row. A trigger keeps them with every row inserted,
 * whoever inserts it (a repeat that `ON CONFLICT DO NOTHING` skips fires nothing). Creating it
 * locks the history against inserts until this migration commits, so the summaries filled here
 * from the rows already there miss none inserted meanwhile.
 */
const V_ACTIVITY_SUMMARY = `
CREATE TABLE approval_activity_totals (approver text PRIMARY KEY, total bigint NOT NULL CHECK (total > 0));
CREATE TABLE approval_activity_tenants (approver text NOT NULL, tenant text NOT NULL, PRIMARY KEY (approver, tenant));
CREATE TABLE approval_activity_hours (
  approver text NOT NULL,
  hour integer NOT NULL CHECK (hour BETWEEN 0 AND 23),
  PRIMARY KEY (approver, hour)
);
CREATE FUNCTION failclosed_approval_activity_summary() RETURNS trigger
  LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO approval_activity_totals AS t (approver, total) VALUES (NEW.approver, 1)
    ON CONFLICT (approver) DO UPDATE SET total = t.total + 1;
  INSERT INTO approval_activity_tenants (approver, tenant) VALUES (NEW.approver, NEW.tenant)
    ON CONFLICT DO NOTHING;
  INSERT INTO approval_activity_hours (approver, hour) VALUES (NEW.approver, NEW.hour)
    ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
CREATE TRIGGER approval_activity_summary AFTER INSERT ON approval_activity
  FOR EACH ROW EXECUTE FUNCTION failclosed_approval_activity_summary();
INSERT INTO approval_activity_totals (approver, total)
  SELECT approver, count(*) FROM approval_activity GROUP BY approver;
INSERT INTO approval_activity_tenants (approver, tenant) SELECT DISTINCT approver, tenant FROM approval_activity;
INSERT INTO approval_activity_hours (approver, hour) SELECT DISTINCT approver, hour FROM approval_activity;
`;

/** Every migration of this build, ascending by version. */
export const MIGRATIONS: readonly Migration[] = Object.freeze([
  { version: 1, name: 'ledger, envelope nonces, governance state', sql: V1 },
  { version: 2, name: 'open requests owned by gate instances', sql: V_REPLICAS },
  { version: 3, name: 'prune indexes: open breakers by end, spend by day', sql: V_PRUNE },
  { version: 4, name: 'approval state', sql: V_APPROVALS },
  { version: 5, name: 'approver tenant scopes', sql: V_APPROVER_TENANTS },
  { version: 6, name: 'approvals watched', sql: V_APPROVALS_WATCHED },
  { version: 7, name: 'approval flags before the ledger, rate-limit refusals once', sql: V_APPROVAL_FLAGS },
  { version: 8, name: 'console people, sessions, used sign-in challenges', sql: V_CONSOLE },
  { version: 9, name: 'breaker window hits counted in buckets', sql: V_BREAKER_BUCKETS },
  { version: 10, name: 'operators with tenant scopes and token hashes', sql: V_OPERATORS },
  { version: 11, name: 'console invitations bound to an OIDC identity', sql: V_CONSOLE_OIDC },
  { version: 12, name: 'operators bound to an OIDC identity', sql: V_OPERATOR_OIDC },
  { version: 13, name: 'operator console sessions, failed sign-in counters', sql: V_CONSOLE_SHARED },
  { version: 14, name: 'schedules with their next slot', sql: V_SCHEDULES },
  { version: 15, name: 'requests claimed before they are decided', sql: V_DECISION_CLAIMS },
  { version: 16, name: 'decision claims in insertion order, pruned', sql: V_DECISION_CLAIMS_PRUNE },
  { version: 17, name: "each approver's history in summary", sql: V_ACTIVITY_SUMMARY },
]);

/** The newest schema version this build knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

/** What {@link migrate} did. */
export interface MigrationReport {
  /** The version before. */
  readonly from: number;
  /** The version now ({@link SCHEMA_VERSION}). */
  readonly to: number;
  /** Versions applied by this call, ascending. */
  readonly applied: readonly number[];
}

/**
 * The deadline of one migration statement. A migration may rewrite a table that grew with the
 * deployment (version 16 numbers every decision claim), which can take far longer than the
 * request path's statement deadline (`statementTimeoutMs`, 5 s by default) that the pool's
 * connections carry: cut there, the migration would roll back and no process of this build could
 * start. Lock waits keep the pool's `lock_timeout`.
 */
export const MIGRATION_STATEMENT_TIMEOUT_MS = 30 * 60 * 1000;

/**
 * Brings the schema of `db` to {@link SCHEMA_VERSION}: creates the schema if needed, then applies
 * the missing migrations in one transaction under an advisory lock, on a connection of its own
 * whose statements may take up to {@link MIGRATION_STATEMENT_TIMEOUT_MS}. Rejects with
 * `RangeError` when the database is at a newer version than this build, and passes on any
 * database error (nothing is applied then).
 */
export async function migrate(
  db: PostgresPool,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrationReport> {
  const own = new (pgDriver().Pool)({
    ...db.clientConfig,
    statement_timeout: MIGRATION_STATEMENT_TIMEOUT_MS,
    query_timeout: MIGRATION_STATEMENT_TIMEOUT_MS + 500,
    max: 1,
  });
  own.on('error', () => undefined);
  try {
    return await applyMigrations(own, db.schema, migrations);
  } finally {
    await own.end().catch(() => undefined);
  }
}

async function applyMigrations(
  pool: pg.Pool,
  schema: string,
  migrations: readonly Migration[],
): Promise<MigrationReport> {
  return inTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK.toString()]);
    // The schema name was validated by openPostgresPool; identifiers cannot be bound as parameters.
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(`CREATE TABLE IF NOT EXISTS failclosed_schema (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const from = await currentVersion(client);
    const latest = migrations[migrations.length - 1]?.version ?? 0;
    if (from > latest)
      throw new RangeError(
        `database schema is at version ${from}, newer than this build (${latest}): refusing to use it`,
      );
    const applied: number[] = [];
    for (const m of migrations) {
      if (m.version <= from) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO failclosed_schema (version, name) VALUES ($1, $2)', [
        m.version,
        m.name,
      ]);
      applied.push(m.version);
    }
    return { from, to: Math.max(from, latest), applied };
  });
}

/** The schema version recorded in `failclosed_schema` (0 when empty). */
async function currentVersion(client: pg.PoolClient): Promise<number> {
  const r = await client.query<{ v: unknown }>('SELECT max(version) AS v FROM failclosed_schema');
  const v = r.rows[0]?.v;
  return v === null || v === undefined ? 0 : rowInt(v, 'failclosed_schema.version');
}

/**
 * Throws unless the schema of `db` is exactly {@link SCHEMA_VERSION} (a role that does not
 * migrate, e.g. a read-only reader, checks instead).
 */
export async function assertSchemaCurrent(db: PostgresPool): Promise<void> {
  const client = await db.pool.connect();
  try {
    const version = await currentVersion(client);
    if (version !== SCHEMA_VERSION)
      throw new RangeError(`database schema is at version ${version}, this build needs ${SCHEMA_VERSION}`);
  } finally {
    client.release();
  }
}
