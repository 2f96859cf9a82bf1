/**
 * The Gate's state in PostgreSQL (SPEC §1 "Distributed"): the client registry and the request
 * replay store (FC-INV-3) shared by every Gate replica on one database. Every lookup reads the
 * row, so a registration or revocation through one replica is seen by the next request on any
 * other; a claim is one statement (`gate_claim_request`), so two replicas claiming one nonce at
 * once get exactly one `'fresh'`. Every failure (database down, past its deadline, a malformed
 * row) rejects, and the Gate denies.
 */
import type { KeyObject } from 'node:crypto';
import { clientJwksOf, parseClientRoles } from '../../gate/index.js';
import type { ClientRecord, ClientRegistration, GateStateStore, RegisteredClient } from '../../gate/index.js';
import { createRequestMemoryPruner, parsePublicJwk } from '../../kernel/index.js';
import type { PublicKey } from '../../kernel/index.js';
import type { PostgresPool } from './pool.js';
import { pruneBatchOf, rowBool, rowInt, rowText } from './rows.js';

/** Options of {@link createPostgresGateState}. */
export interface PostgresGateStateOptions {
  /**
   * How long replay rows are kept (ms), measured against the latest time recorded. At least twice
   * the request timestamp tolerance, so a nonce is remembered while its timestamp could still be
   * accepted (see {@link GateStateStore.pruneReplay}).
   */
  readonly replayRetentionMs: number;
  /** Rows (a request is two: nonce and request id) always kept per client, whatever their age. Default 100000. */
  readonly replayKeepPerClient?: number;
  /** Claims of this instance between two prunes it starts by itself (in the background). Default 1000. */
  readonly pruneEvery?: number;
}

/** A `gate_clients` row, parsed. */
interface ClientRow {
  readonly identity: string;
  readonly tenant: string;
  readonly kid: string;
  readonly key: PublicKey;
  readonly status: 'active' | 'revoked';
  readonly registeredAt: number;
  readonly roles: readonly string[];
}

const CLIENT_COLUMNS = 'identity, tenant, kid, jwk, status, registered_at, roles';

/** Rows one prune statement examines at most: every statement stays far below the deadline. */
const PRUNE_BATCH = 5000;
/** Wall time one background prune may take before it leaves the rest to the next one (ms). */
const BACKGROUND_BUDGET_MS = 5000;

// The clients with rows: a skip scan of the (identity, seq) index, one probe per client, never
// a pass over the rows.
const IDENTITIES = `WITH RECURSIVE ids(identity) AS (
  (SELECT identity FROM gate_request_nonces ORDER BY identity LIMIT 1)
  UNION ALL
  SELECT (SELECT n.identity FROM gate_request_nonces n WHERE n.identity > ids.identity
           ORDER BY n.identity LIMIT 1)
    FROM ids WHERE ids.identity IS NOT NULL
) SELECT identity FROM ids WHERE identity IS NOT NULL`;

// One backward step of the seen_at index.
const LATEST = 'SELECT max(seen_at) AS latest FROM gate_request_nonces';

// $1 identity, $2 keep - 1: the seq of the client's keep-th newest row (none with fewer rows).
// Reads `keep` entries of the (identity, seq) index, whatever the table's size.
const FLOOR = `SELECT seq FROM gate_request_nonces WHERE identity = $1
  ORDER BY seq DESC OFFSET $2 LIMIT 1`;

// $1 identity, $2 cursor (seq examined last), $3 floor seq, $4 cutoff seen_at, $5 batch. The
// next `$5` rows of the client past the cursor and below its floor, in index order; those seen
// before the cutoff go (by ctid: a TID scan, no second index search). Examining by seq, not by
// seen_at, keeps every batch bounded even when a clock step left new seen_at values among old
// rows: such rows are passed over once per prune, never looked at again.
const PRUNE_BATCH_SQL = `WITH c AS (
  SELECT ctid AS tid, seq, seen_at FROM gate_request_nonces
   WHERE identity = $1 AND seq > $2::bigint AND seq < $3::bigint
   ORDER BY seq LIMIT $5
), d AS (
  DELETE FROM gate_request_nonces WHERE ctid = ANY (ARRAY(SELECT tid FROM c WHERE seen_at < $4::bigint))
  RETURNING 1
)
SELECT (SELECT count(*) FROM c) AS examined, (SELECT max(seq) FROM c) AS last,
       (SELECT count(*) FROM d) AS deleted`;

/**
 * A {@link GateStateStore} over `db` (migrated to the current schema). `close()` stops this
 * store and waits for its background prune; it never ends the shared pool.
 */
export function createPostgresGateState(db: PostgresPool, options: PostgresGateStateOptions): GateStateStore {
  const retention = Math.trunc(options.replayRetentionMs);
  if (!(retention >= 1 && Number.isSafeInteger(retention)))
    throw new TypeError('replayRetentionMs must be a positive integer');
  const keep = Math.trunc(options.replayKeepPerClient ?? 100_000);
  if (!(keep >= 1 && Number.isSafeInteger(keep)))
    throw new TypeError('replayKeepPerClient must be a positive integer');
  const pruneEvery = Math.trunc(options.pruneEvery ?? 1000);
  if (!(pruneEvery >= 1 && Number.isSafeInteger(pruneEvery)))
    throw new TypeError('pruneEvery must be a positive integer');

  const { pool } = db;
  let closed = false;
  const keyCache = new Map<string, PublicKey>();
  let claimsSincePrune = 0;

  const open = (): void => {
    if (closed) throw new Error('gate state is closed');
  };

  // A database row is a trust boundary: every column is checked, the key parsed again.
  const parseClient = (row: Record<string, unknown>): ClientRow => {
    const status = rowText(row['status'], 'gate_clients.status');
    if (status !== 'active' && status !== 'revoked')
      throw new TypeError('column gate_clients.status is malformed');
    const kid = rowText(row['kid'], 'gate_clients.kid');
    const jwk = rowText(row['jwk'], 'gate_clients.jwk');
    let key = keyCache.get(jwk);
    if (key === undefined) {
      key = parsePublicJwk(JSON.parse(jwk));
      keyCache.set(jwk, key);
    }
    if (key.kid !== kid) throw new TypeError('column gate_clients.kid does not name its key');
    return {
      identity: rowText(row['identity'], 'gate_clients.identity'),
      tenant: rowText(row['tenant'], 'gate_clients.tenant'),
      kid,
      key,
      status,
      registeredAt: rowInt(row['registered_at'], 'gate_clients.registered_at'),
      roles: parseClientRoles(row['roles']),
    };
  };
  const toRecord = (c: ClientRow): ClientRecord =>
    Object.freeze({
      identity: c.identity,
      tenant: c.tenant,
      kid: c.kid,
      status: c.status,
      registered_at: c.registeredAt,
      roles: c.roles,
    });
  const allClients = async (): Promise<ClientRow[]> => {
    open();
    // COLLATE "C": byte order, whatever the database's collation (as the SQLite store lists).
    const r = await pool.query<Record<string, unknown>>(
      `SELECT ${CLIENT_COLUMNS} FROM gate_clients ORDER BY identity COLLATE "C"`,
    );
    return r.rows.map(parseClient);
  };

  /**
   * The replay rows by the rule of `request-memory-prune.ts` (FC-INV-3): batches of
   * {@link PRUNE_BATCH} rows (each one short statement), a background run at most
   * {@link BACKGROUND_BUDGET_MS}.
   */
  const pruner = createRequestMemoryPruner<string>(
    {
      async latest() {
        const v = (await pool.query<{ latest: unknown }>(LATEST)).rows[0]?.latest;
        return v === null || v === undefined ? undefined : rowInt(v, 'gate_request_nonces.seen_at');
      },
      clients: async () =>
        (await pool.query<{ identity: unknown }>(IDENTITIES)).rows.map((r) =>
          rowText(r.identity, 'gate_request_nonces.identity'),
        ),
      keyOf: (identity) => identity,
      async floor(identity) {
        const row = (await pool.query<{ seq: unknown }>(FLOOR, [identity, keep - 1])).rows[0];
        return row === undefined ? undefined : rowInt(row.seq, 'gate_request_nonces.seq');
      },
      async batch(identity, cursor, floor, cutoff, rows) {
        const r = await pool.query<Record<string, unknown>>(PRUNE_BATCH_SQL, [
          identity,
          cursor,
          floor,
          cutoff,
          rows,
        ]);
        return pruneBatchOf(r.rows[0], cursor);
      },
    },
    {
      retentionMs: retention,
      batchRows: PRUNE_BATCH,
      budgetMs: BACKGROUND_BUDGET_MS,
      closed: () => closed,
      closedError: () => new Error('gate state is closed'),
    },
  );
  /** Every `pruneEvery` claims a prune starts in the background; a failed one is retried at the next. */
  const counted = (): void => {
    claimsSincePrune += 1;
    if (claimsSincePrune >= pruneEvery && pruner.start()) claimsSincePrune = 0;
  };
  const claimOne = async (
    identity: string,
    nonce: string,
    requestId: string | null,
    atMs: number,
  ): Promise<'fresh' | 'replayed'> => {
    open();
    const r = await pool.query<{ fresh: unknown }>('SELECT gate_claim_request($1, $2, $3, $4) AS fresh', [
      identity,
      nonce,
      requestId,
      Math.trunc(atMs),
    ]);
    if (r.rows.length !== 1) throw new TypeError('gate_claim_request answered no row');
    const fresh = rowBool(r.rows[0]?.fresh, 'gate_claim_request');
    counted();
    return fresh ? 'fresh' : 'replayed';
  };

  return {
    async lookup(identity): Promise<RegisteredClient | undefined> {
      open();
      const r = await pool.query<Record<string, unknown>>(
        `SELECT ${CLIENT_COLUMNS} FROM gate_clients WHERE identity = $1`,
        [identity],
      );
      const row = r.rows[0];
      if (row === undefined) return undefined;
      const c = parseClient(row);
      if (c.identity !== identity) throw new TypeError('column gate_clients.identity does not match');
      const publicKey: KeyObject = c.key.keyObject;
      return Object.freeze({
        identity: c.identity,
        tenant: c.tenant,
        kid: c.kid,
        status: c.status,
        roles: c.roles,
        publicKey,
      });
    },
    claim: ({ identity, nonce, requestId, atMs }) => claimOne(identity, nonce, requestId, atMs),
    // The nonce alone (a retry reuses its request id): "one row inserted" is the only fresh nonce (SPEC §8).
    claimNonce: ({ identity, nonce, atMs }) => claimOne(identity, nonce, null, atMs),
    async registerClient({ identity, tenant, jwk, atMs, roles }: ClientRegistration): Promise<ClientRecord> {
      open();
      const key = parsePublicJwk(jwk);
      const checked = parseClientRoles(roles ?? []);
      const at = Math.trunc(atMs);
      const r = await pool.query(
        `INSERT INTO gate_clients (${CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, 'active', $5, $6)
         ON CONFLICT (identity) DO NOTHING`,
        [identity, tenant, key.kid, JSON.stringify(key.jwk), at, [...checked]],
      );
      if (r.rowCount !== 1) throw new TypeError(`client ${identity} already exists`);
      return toRecord({
        identity,
        tenant,
        kid: key.kid,
        key,
        status: 'active',
        registeredAt: at,
        roles: checked,
      });
    },
    async revokeClient(identity) {
      open();
      const r = await pool.query("UPDATE gate_clients SET status = 'revoked' WHERE identity = $1", [
        identity,
      ]);
      return r.rowCount === 1;
    },
    async rotateClientKey(identity, jwk, previousKid) {
      open();
      const key = parsePublicJwk(jwk);
      const r = await pool.query<Record<string, unknown>>(
        `UPDATE gate_clients SET kid = $1, jwk = $2 WHERE identity = $3 AND status = 'active' AND kid = $4
         RETURNING ${CLIENT_COLUMNS}`,
        [key.kid, JSON.stringify(key.jwk), identity, previousKid],
      );
      const row = r.rows[0];
      if (r.rows.length !== 1 || row === undefined) return undefined;
      const c = parseClient(row);
      if (c.identity !== identity || c.kid !== key.kid)
        throw new TypeError('column gate_clients does not match');
      return toRecord(c);
    },
    async listClients() {
      return Object.freeze((await allClients()).map(toRecord));
    },
    async clientJwks() {
      return clientJwksOf(
        (await allClients()).map((c) => ({ jwk: c.key.jwk, kid: c.kid, status: c.status })),
      );
    },
    async pruneReplay() {
      open();
      return pruner.run();
    },
    async close() {
      closed = true;
      await pruner.idle();
    },
  };
}
