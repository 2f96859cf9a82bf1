/**
 * SQLite state of the Gate (embedded deployment, `state.db`): the client registry and the
 * request replay store (FC-INV-3). Several processes may share the file (WAL, busy timeout):
 * `failclosed clients add` writes while the server reads, and every lookup reads the row, so a
 * revocation takes effect on the next request.
 *
 * Replay claims are group-committed (SPEC §8 durable writes): the claims arriving in one
 * event-loop turn run in ONE `BEGIN IMMEDIATE` transaction, each in its own savepoint, and each
 * caller hears its verdict only after the COMMIT returned; a failed transaction rejects all.
 * The work is synchronous inside; the {@link GateStateStore} methods answer with promises.
 */
import Database from 'better-sqlite3';
import type { KeyObject } from 'node:crypto';
import { createGroupCommit } from '../execution/index.js';
import {
  createRequestMemoryPruner,
  openStoreConnection,
  parsePublicJwk,
  type DurableWrites,
  type SchemaMigration,
  type SqliteCommitUnit,
} from '../kernel/index.js';
import { clientJwksOf, parseClientRoles } from './state.js';
import type { ClientRecord, ClientRegistration, GateStateStore } from './state.js';
import type { RegisteredClient } from './types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS gate_clients (
  identity TEXT PRIMARY KEY NOT NULL,
  tenant TEXT NOT NULL,
  kid TEXT NOT NULL,
  jwk TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
  registered_at INTEGER NOT NULL,
  roles TEXT NOT NULL DEFAULT '[]'
) STRICT;
CREATE TABLE IF NOT EXISTS gate_request_nonces (
  identity TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('nonce', 'request_id')),
  value TEXT NOT NULL,
  seen_at INTEGER NOT NULL,
  PRIMARY KEY (identity, kind, value)
) STRICT;
CREATE INDEX IF NOT EXISTS gate_request_nonces_seen ON gate_request_nonces (seen_at);
CREATE INDEX IF NOT EXISTS gate_request_nonces_identity ON gate_request_nonces (identity);
`;

/**
 * The Gate state's schema versions in `failclosed_schema` (store `gate_state`; append-only).
 * Version 1 is the schema of the releases before versions were recorded, with their upgrade of a
 * pre-roles file.
 */
function gateStateMigrations(db: Database.Database): readonly SchemaMigration[] {
  return [
    {
      version: 1,
      name: 'clients with roles, request nonces',
      up: () => {
        db.exec(SCHEMA);
        migrateClientRoles(db);
      },
    },
  ];
}

/** Options for {@link createSqliteGateState}. */
export interface SqliteGateStateOptions {
  readonly path: string;
  /**
   * The deployment's shared connection (`sqlite-commit.ts`): no file of its own (`path` is
   * ignored); claims commit with the other stores' writes, and `claim` given a `DurableWrites`
   * answers before its commit. Closing the store leaves the connection open.
   */
  readonly unit?: SqliteCommitUnit;
  /** Default 2000 ms. */
  readonly busyTimeoutMs?: number;
  /**
   * How long replay rows are kept (ms). Must be at least twice the timestamp tolerance, so a
   * nonce is remembered for as long as its timestamp could still be accepted. Default 7 days.
   *
   * Pruning never goes by wall time alone (FC-INV-3, {@link GateStateStore.pruneReplay}): a row is deleted only when it is older than
   * the retention measured against the LATEST `seen_at` recorded (not the clock now, so a clock
   * set back deletes nothing) AND it is not among the newest {@link replayKeepPerClient} rows of
   * its client in insertion order (so a clock jumped forward cannot empty the memory: the
   * requests a client made just before the jump are still known when the clock comes back).
   */
  readonly replayRetentionMs?: number;
  /** Rows (a request is two: nonce and request id) always kept per client, whatever their age. Default 100000. */
  readonly replayKeepPerClient?: number;
}

/** Rows one prune transaction examines at most: it holds the file's write lock only briefly. */
const PRUNE_BATCH = 2000;
/** Wall time one background prune may take before it leaves the rest to the next one (ms). */
const BACKGROUND_BUDGET_MS = 1000;

interface ClientRow {
  identity: string;
  tenant: string;
  kid: string;
  jwk: string;
  status: 'active' | 'revoked';
  registered_at: number;
  roles: string;
}

/** One queued replay claim: a nonce with its request id, or a retry's nonce alone. */
interface ReplayClaim {
  readonly identity: string;
  readonly nonce: string;
  readonly requestId: string | undefined;
  readonly atMs: number;
}

/**
 * Opens (creating if needed) the Gate state at `options.path`. `claim` inserts the nonce and the
 * request id with `INSERT OR IGNORE` in one savepoint; "one row changed" for both is the only
 * `'fresh'` (SPEC §8 nonce store pitfall), and a replay rolls its savepoint back so it never
 * consumes the other half of a fresh pair. Failures reject: the Gate denies. Throws at open when
 * the file records a schema newer than this build (`SchemaVersionError`, fail closed).
 */
export function createSqliteGateState(options: SqliteGateStateOptions): GateStateStore {
  const unit = options.unit;
  const db = openStoreConnection(() => new Database(options.path), {
    unit,
    store: 'gate_state',
    migrations: gateStateMigrations,
    ...(options.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: options.busyTimeoutMs }),
  });
  /** A write durable when it returns: its own transaction, or one after the shared connection's open one. */
  const writeNow = <T>(fn: () => T): T => (unit === undefined ? fn() : unit.writeNow(fn));
  const retention = options.replayRetentionMs ?? 7 * 24 * 3600 * 1000;
  const selectClient = db.prepare<[string], ClientRow>('SELECT * FROM gate_clients WHERE identity = ?');
  const insertClient = db.prepare(
    'INSERT INTO gate_clients (identity, tenant, kid, jwk, status, registered_at, roles) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const revoke = db.prepare("UPDATE gate_clients SET status = 'revoked' WHERE identity = ?");
  const rotate = db.prepare(
    "UPDATE gate_clients SET kid = ?, jwk = ? WHERE identity = ? AND status = 'active' AND kid = ?",
  );
  const listAll = db.prepare<[], ClientRow>('SELECT * FROM gate_clients ORDER BY identity');
  const insertSeen = db.prepare(
    'INSERT OR IGNORE INTO gate_request_nonces (identity, kind, value, seen_at) VALUES (?, ?, ?, ?)',
  );
  const keep = Math.trunc(options.replayKeepPerClient ?? 100_000);
  if (!(keep >= 1)) throw new TypeError('replayKeepPerClient must be a positive integer');
  const maxSeen = db.prepare<[], { m: number | null }>('SELECT MAX(seen_at) AS m FROM gate_request_nonces');
  // The clients with rows, one index probe each (never a pass over the rows).
  const nextIdentity = db.prepare<[string], { identity: string }>(
    'SELECT identity FROM gate_request_nonces WHERE identity > ? ORDER BY identity LIMIT 1',
  );
  // The rowid of the client's keep-th newest row (none with fewer rows: nothing of it goes).
  const floorOf = db.prepare<[string, number], { r: number }>(
    'SELECT rowid AS r FROM gate_request_nonces WHERE identity = ? ORDER BY rowid DESC LIMIT 1 OFFSET ?',
  );
  // One batch: the client's next rows past the cursor and below its floor, in index order
  // (the identity index ends in the rowid); those seen before the cutoff go.
  const BATCH_ROWS = `SELECT rowid FROM gate_request_nonces
    WHERE identity = @identity AND rowid > @cursor AND rowid < @floor ORDER BY rowid LIMIT @batch`;
  const examineBatch = db.prepare<
    { identity: string; cursor: number; floor: number; batch: number },
    { n: number; last: number | null }
  >(`SELECT count(*) AS n, max(rowid) AS last FROM (${BATCH_ROWS})`);
  const deleteBatch = db.prepare<{
    identity: string;
    cursor: number;
    floor: number;
    batch: number;
    cutoff: number;
  }>(`DELETE FROM gate_request_nonces WHERE rowid IN (${BATCH_ROWS}) AND seen_at < @cutoff`);
  const pruneBatch = db.transaction(
    (b: { identity: string; cursor: number; floor: number; cutoff: number; batch: number }) => {
      const params = { identity: b.identity, cursor: b.cursor, floor: b.floor, batch: b.batch };
      const seen = examineBatch.get(params);
      const deleted = deleteBatch.run({ ...params, cutoff: b.cutoff }).changes;
      return { examined: seen?.n ?? 0, last: seen?.last ?? b.cursor, deleted };
    },
  );
  let closed = false;
  /**
   * The replay rows by the rule of `request-memory-prune.ts` (FC-INV-3): transactions of at most
   * {@link PRUNE_BATCH} examined rows, a background run at most {@link BACKGROUND_BUDGET_MS}.
   */
  const pruner = createRequestMemoryPruner<string>(
    {
      latest: () => settle(() => maxSeen.get()?.m ?? undefined),
      clients: () =>
        settle(() => {
          const found: string[] = [];
          for (let next = nextIdentity.get(''); next !== undefined; next = nextIdentity.get(next.identity))
            found.push(next.identity);
          return found;
        }),
      keyOf: (identity) => identity,
      floor: (identity) => settle(() => floorOf.get(identity, keep - 1)?.r),
      batch: (identity, cursor, floor, cutoff, batch) =>
        settle(() => {
          const b = { identity, cursor, floor, cutoff, batch };
          return unit === undefined ? pruneBatch.immediate(b) : unit.stage(() => pruneBatch(b)).value;
        }),
    },
    {
      retentionMs: retention,
      batchRows: PRUNE_BATCH,
      budgetMs: BACKGROUND_BUDGET_MS,
      closed: () => closed,
      closedError: () => new Error('gate state is closed'),
    },
  );
  const keyCache = new Map<string, KeyObject>();
  let claimsSincePrune = 0;

  // Nested inside the batch transaction, better-sqlite3 runs this in a SAVEPOINT.
  const claimTx = db.transaction((c: ReplayClaim): 'fresh' => {
    const a = insertSeen.run(c.identity, 'nonce', c.nonce, c.atMs).changes;
    const b =
      c.requestId === undefined ? 1 : insertSeen.run(c.identity, 'request_id', c.requestId, c.atMs).changes;
    if (a === 1 && b === 1) return 'fresh';
    // Roll back so a replay never consumes the other half of a fresh pair.
    throw new ReplayDetected();
  });
  const batchTx = db.transaction((claims: readonly ReplayClaim[]): ('fresh' | 'replayed')[] => {
    const verdicts = claims.map((c): 'fresh' | 'replayed' => {
      try {
        return claimTx(c);
      } catch (err) {
        if (err instanceof ReplayDetected) return 'replayed';
        throw err;
      }
    });
    claimsSincePrune += claims.length;
    if (claimsSincePrune >= 1000) {
      claimsSincePrune = 0;
      // Not in this transaction: the claims' commit never waits for a prune.
      pruner.start();
    }
    return verdicts;
  });
  const group = createGroupCommit((claims: readonly ReplayClaim[]) => batchTx.immediate(claims));
  /** One claim: group-committed on a file of its own; decided now on the shared connection. */
  const submit = async (c: ReplayClaim, writes: DurableWrites | undefined): Promise<'fresh' | 'replayed'> => {
    if (unit === undefined) return group.submit(c);
    const verdict = (await unit.write(() => batchTx([c]), writes))[0];
    if (verdict === undefined) throw new Error('no verdict');
    return verdict;
  };

  const toRecord = (row: ClientRow): ClientRecord =>
    Object.freeze({
      identity: row.identity,
      tenant: row.tenant,
      kid: row.kid,
      status: row.status,
      registered_at: row.registered_at,
      roles: rolesOf(row),
    });

  const lookup = (identity: string): RegisteredClient | undefined => {
    const row = selectClient.get(identity);
    if (row === undefined) return undefined;
    let key = keyCache.get(row.jwk);
    if (key === undefined) {
      // Stored by registerClient after the same checks; parsed again because the file is shared.
      key = parsePublicJwk(JSON.parse(row.jwk)).keyObject;
      keyCache.set(row.jwk, key);
    }
    return Object.freeze({
      identity: row.identity,
      tenant: row.tenant,
      kid: row.kid,
      status: row.status,
      roles: rolesOf(row),
      publicKey: key,
    });
  };
  const register = ({ identity, tenant, jwk, atMs, roles }: ClientRegistration): ClientRecord => {
    const key = parsePublicJwk(jwk);
    const checked = JSON.stringify(parseClientRoles(roles ?? []));
    if (selectClient.get(identity) !== undefined) throw new TypeError(`client ${identity} already exists`);
    const text = JSON.stringify(key.jwk);
    insertClient.run(identity, tenant, key.kid, text, 'active', Math.trunc(atMs), checked);
    return toRecord({
      roles: checked,
      identity,
      tenant,
      kid: key.kid,
      jwk: text,
      status: 'active',
      registered_at: Math.trunc(atMs),
    });
  };

  // Each method runs its synchronous work inside a promise: a throw becomes a rejection.
  return {
    lookup: (identity) => settle(() => lookup(identity)),
    claim({ identity, nonce, requestId, atMs }, writes) {
      if (closed) return Promise.reject(new Error('gate state is closed'));
      return submit({ identity, nonce, requestId, atMs: Math.trunc(atMs) }, writes);
    },
    claimNonce({ identity, nonce, atMs }) {
      // The nonce alone (a retry reuses its request id): "one row changed" is the only fresh nonce (SPEC §8).
      if (closed) return Promise.reject(new Error('gate state is closed'));
      return submit({ identity, nonce, requestId: undefined, atMs: Math.trunc(atMs) }, undefined);
    },
    registerClient: (input) => settle(() => writeNow(() => register(input))),
    revokeClient: (identity) => settle(() => writeNow(() => revoke.run(identity).changes === 1)),
    rotateClientKey: (identity, jwk, previousKid) =>
      settle(() => {
        const key = parsePublicJwk(jwk);
        const changed = writeNow(
          () => rotate.run(key.kid, JSON.stringify(key.jwk), identity, previousKid).changes === 1,
        );
        const row = changed ? selectClient.get(identity) : undefined;
        return row === undefined ? undefined : toRecord(row);
      }),
    listClients: () => settle(() => Object.freeze(listAll.all().map(toRecord))),
    clientJwks: () =>
      settle(() =>
        clientJwksOf(
          listAll
            .all()
            .map((r) => ({ jwk: parsePublicJwk(JSON.parse(r.jwk)).jwk, kid: r.kid, status: r.status })),
        ),
      ),
    pruneReplay: () => (closed ? Promise.reject(new Error('gate state is closed')) : pruner.run()),
    async close() {
      closed = true;
      // Claims queued commit (or reject) first; a background prune ends within its budget.
      await group.drain();
      await pruner.idle();
      if (unit === undefined) db.close();
    },
  };
}

/** `fn`'s value as a promise; its throw as a rejection. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error('gate state failed'));
  }
}

class ReplayDetected extends Error {}

/** Data directories made before roles existed: the column is added, every client with no role. */
function migrateClientRoles(db: Database.Database): void {
  const columns = db.prepare<[], { name: string }>('PRAGMA table_info(gate_clients)').all();
  if (!columns.some((c) => c.name === 'roles'))
    db.exec("ALTER TABLE gate_clients ADD COLUMN roles TEXT NOT NULL DEFAULT '[]'");
}

/**
 * A row's roles. The file is shared with other processes, so the column is parsed again; a
 * malformed value throws, and the Gate's registry lookup then fails closed.
 */
function rolesOf(row: ClientRow): readonly string[] {
  return parseClientRoles(JSON.parse(row.roles) as unknown);
}
