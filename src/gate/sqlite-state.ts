/**
 * SQLite state of the Gate (embedded deployment, `state.db`): the client registry and the
 * request replay store (FC-INV-3). Several processes may share the file (WAL, busy timeout):
 * `failclosed clients add` writes while the server reads, and every lookup reads the row, so a
 * revocation takes effect on the next request.
 */
import Database from 'better-sqlite3';
import type { KeyObject } from 'node:crypto';
import { parsePublicJwk } from '../kernel/index.js';
import type { Ed25519Jwks } from '../kernel/index.js';
import type { ClientRegistry, RegisteredClient, RequestReplayStore } from './types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS gate_clients (
  identity TEXT PRIMARY KEY NOT NULL,
  tenant TEXT NOT NULL,
  kid TEXT NOT NULL,
  jwk TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
  registered_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS gate_request_nonces (
  identity TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('nonce', 'request_id')),
  value TEXT NOT NULL,
  seen_at INTEGER NOT NULL,
  PRIMARY KEY (identity, kind, value)
) STRICT;
CREATE INDEX IF NOT EXISTS gate_request_nonces_seen ON gate_request_nonces (seen_at);
`;

/** A client row as listed by {@link GateStateStore.listClients}. */
export interface ClientRecord {
  readonly identity: string;
  readonly tenant: string;
  readonly kid: string;
  readonly status: 'active' | 'revoked';
  readonly registered_at: number;
}

/** The Gate's SQLite state: a {@link ClientRegistry} and a {@link RequestReplayStore} plus administration. */
export interface GateStateStore extends ClientRegistry, RequestReplayStore {
  lookup(identity: string): RegisteredClient | undefined;
  claim(input: { identity: string; nonce: string; requestId: string; atMs: number }): 'fresh' | 'replayed';
  claimNonce(input: { identity: string; nonce: string; atMs: number }): 'fresh' | 'replayed';
  /** Registers a client's public JWK (checked: canonical, not small-order). `TypeError` if the identity exists. */
  registerClient(input: { identity: string; tenant: string; jwk: unknown; atMs: number }): ClientRecord;
  /** Marks a client revoked; false when unknown. */
  revokeClient(identity: string): boolean;
  listClients(): readonly ClientRecord[];
  /** Every client public key as a JWKS with the revoked kids, for audit bundles (FC-INV-3 evidence). */
  clientJwks(): Ed25519Jwks;
  /** Deletes replay rows older than `beforeMs`; returns how many. */
  pruneReplay(beforeMs: number): number;
  /** True when the database answers. */
  ping(): boolean;
  close(): void;
}

/** Options for {@link createSqliteGateState}. */
export interface SqliteGateStateOptions {
  readonly path: string;
  /** Default 2000 ms. */
  readonly busyTimeoutMs?: number;
  /**
   * How long replay rows are kept (ms). Must be at least twice the timestamp tolerance, so a
   * nonce is remembered for as long as its timestamp could still be accepted. Default 7 days.
   */
  readonly replayRetentionMs?: number;
}

interface ClientRow {
  identity: string;
  tenant: string;
  kid: string;
  jwk: string;
  status: 'active' | 'revoked';
  registered_at: number;
}

/**
 * Opens (creating if needed) the Gate state at `options.path`. `claim` inserts the nonce and the
 * request id in one transaction with `INSERT OR IGNORE`; "one row changed" for both is the only
 * `'fresh'` (SPEC §8 nonce store pitfall). Failures throw: the Gate denies.
 */
export function createSqliteGateState(options: SqliteGateStateOptions): GateStateStore {
  const db = new Database(options.path);
  db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 2000)}`);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(SCHEMA);
  const retention = options.replayRetentionMs ?? 7 * 24 * 3600 * 1000;
  const selectClient = db.prepare<[string], ClientRow>('SELECT * FROM gate_clients WHERE identity = ?');
  const insertClient = db.prepare(
    'INSERT INTO gate_clients (identity, tenant, kid, jwk, status, registered_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const revoke = db.prepare("UPDATE gate_clients SET status = 'revoked' WHERE identity = ?");
  const listAll = db.prepare<[], ClientRow>('SELECT * FROM gate_clients ORDER BY identity');
  const insertSeen = db.prepare(
    'INSERT OR IGNORE INTO gate_request_nonces (identity, kind, value, seen_at) VALUES (?, ?, ?, ?)',
  );
  const prune = db.prepare('DELETE FROM gate_request_nonces WHERE seen_at < ?');
  const keyCache = new Map<string, KeyObject>();
  let claimsSincePrune = 0;

  const claimTx = db.transaction((identity: string, nonce: string, requestId: string, atMs: number): 'fresh' | 'replayed' => {
    const a = insertSeen.run(identity, 'nonce', nonce, atMs).changes;
    const b = insertSeen.run(identity, 'request_id', requestId, atMs).changes;
    if (a === 1 && b === 1) return 'fresh';
    // Roll back so a replay never consumes the other half of a fresh pair.
    throw new ReplayDetected();
  });

  const toRecord = (row: ClientRow): ClientRecord =>
    Object.freeze({ identity: row.identity, tenant: row.tenant, kid: row.kid, status: row.status, registered_at: row.registered_at });

  return {
    lookup(identity) {
      const row = selectClient.get(identity);
      if (row === undefined) return undefined;
      let key = keyCache.get(row.jwk);
      if (key === undefined) {
        // Stored by registerClient after the same checks; parsed again because the file is shared.
        key = parsePublicJwk(JSON.parse(row.jwk)).keyObject;
        keyCache.set(row.jwk, key);
      }
      return Object.freeze({ identity: row.identity, tenant: row.tenant, kid: row.kid, status: row.status, publicKey: key });
    },
    claim({ identity, nonce, requestId, atMs }) {
      let verdict: 'fresh' | 'replayed';
      try {
        verdict = claimTx(identity, nonce, requestId, Math.trunc(atMs));
      } catch (err) {
        if (err instanceof ReplayDetected) verdict = 'replayed';
        else throw err;
      }
      claimsSincePrune += 1;
      if (claimsSincePrune >= 1000) {
        claimsSincePrune = 0;
        prune.run(Math.trunc(atMs - retention));
      }
      return verdict;
    },
    claimNonce({ identity, nonce, atMs }) {
      // One atomic statement: "one row changed" is the only fresh nonce (SPEC §8).
      return insertSeen.run(identity, 'nonce', nonce, Math.trunc(atMs)).changes === 1 ? 'fresh' : 'replayed';
    },
    registerClient({ identity, tenant, jwk, atMs }) {
      const key = parsePublicJwk(jwk);
      if (selectClient.get(identity) !== undefined) throw new TypeError(`client ${identity} already exists`);
      const text = JSON.stringify(key.jwk);
      insertClient.run(identity, tenant, key.kid, text, 'active', Math.trunc(atMs));
      return toRecord({ identity, tenant, kid: key.kid, jwk: text, status: 'active', registered_at: Math.trunc(atMs) });
    },
    revokeClient(identity) {
      return revoke.run(identity).changes === 1;
    },
    listClients() {
      return Object.freeze(listAll.all().map(toRecord));
    },
    clientJwks() {
      const rows = listAll.all();
      const keys = rows
        .map((r) => parsePublicJwk(JSON.parse(r.jwk)).jwk)
        .sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
      const revoked = rows.filter((r) => r.status === 'revoked').map((r) => r.kid).sort();
      return Object.freeze({ keys: Object.freeze(keys), revoked: Object.freeze([...new Set(revoked)]) });
    },
    pruneReplay(beforeMs) {
      return prune.run(Math.trunc(beforeMs)).changes;
    },
    ping() {
      try {
        return db.prepare('SELECT 1 AS one').get() !== undefined;
      } catch {
        return false;
      }
    },
    close() {
      db.close();
    },
  };
}

class ReplayDetected extends Error {}
