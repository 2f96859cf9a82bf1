/**
 * The ledger's append lock on the PostgreSQL backend (SPEC §4 "one writer", L7 ledger
 * protection), and the settings of the sessions that hold locks.
 *
 * Every append takes a transaction-scoped advisory lock keyed by the schema (so that deployments
 * sharing a database in different schemas do not exclude each other): one writer at a time per
 * transaction, whichever gate replica it runs in (see `LedgerStore.appendShared` and
 * `instance-lease.ts`); a replica that was alone at its last commit tries it without waiting, in
 * the one statement of its next append (`LedgerStore.appendIfHead`).
 */
import type pg from 'pg';
import type { PostgresPool } from './pool.js';

/** First key of the two-key append lock: "fcwr" read as a 32-bit integer; the second is `hashtext(schema)`. */
export const WRITER_LOCK_CLASS = 0x66637772;

/**
 * Connection settings of a lock session: the pool's, plus server-side TCP keepalives and a user
 * timeout, so that the server ends the session of a holder whose host vanished (power loss,
 * network partition) within seconds instead of the default two hours, and another instance can
 * claim its open requests.
 * Appends run on that session, so the ledger is safe either way; this bounds how long the gone
 * instance's requests wait to be recorded as abandoned.
 */
export function writerSessionConfig(db: PostgresPool): pg.ClientConfig {
  const base = db.clientConfig.options ?? '';
  return {
    ...db.clientConfig,
    keepAliveInitialDelayMillis: 5000,
    options:
      `${base} -c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3` +
      ' -c tcp_user_timeout=10000',
  };
}
