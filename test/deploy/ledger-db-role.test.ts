/**
 * The ledger process's PostgreSQL role as `deploy/postgres/ledger-role.sql` makes it (SPEC §1
 * separation of powers, L7 ledger protection): applied with the real `psql` and `password_env`,
 * it grants exactly what `serve ledger` accepts at start (`assertLedgerRole`): the entries
 * read-only, so the holder of the checkpoint key cannot write or rewrite an entry it signs. The
 * schema owner is refused.
 */
import { join } from 'node:path';
import { expect } from 'vitest';
import { assertLedgerRole } from '../../src/embedded/ledger-node.js';
import { openPostgresPool } from '../../src/storage/postgres/index.js';
import { describePasswordEnv } from './role-sql.js';
import { DEPLOY_DIR } from './support.js';

describePasswordEnv({
  title: 'deploy/postgres/ledger-role.sql',
  sql: join(DEPLOY_DIR, 'postgres/ledger-role.sql'),
  prefix: 'fc_ledger',
  env: 'FC_TEST_LEDGER_DB_PASSWORD',
  async usable(url, schema, ownerUrl) {
    const ledgerDb = openPostgresPool({ url, schema, max: 1 });
    try {
      await expect(assertLedgerRole(ledgerDb)).resolves.toBeUndefined();
      const c = await ledgerDb.pool.connect();
      try {
        await c.query(`SET search_path TO ${schema}`);
        await expect(
          c.query(
            "INSERT INTO ledger_entries (idx, entry_hash, type, trace_id, request_id, tenant, body) VALUES (0, 'x', 'decision', '', '', '', '{}')",
          ),
        ).rejects.toThrow(/permission denied/);
        await expect(c.query("UPDATE ledger_entries SET body = '{}'")).rejects.toThrow(/permission denied/);
        await expect(c.query('DELETE FROM ledger_checkpoints')).rejects.toThrow(/permission denied/);
      } finally {
        c.release();
      }
    } finally {
      await ledgerDb.close();
    }
    const ownerDb = openPostgresPool({ url: ownerUrl, schema, max: 1 });
    try {
      await expect(assertLedgerRole(ownerDb)).rejects.toThrow(/can do more than the ledger process needs/);
    } finally {
      await ownerDb.close();
    }
  },
});
