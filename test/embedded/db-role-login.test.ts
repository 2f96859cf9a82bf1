/**
 * The database-role check of the processes that share the Control Plane's schema (`serve gate`,
 * `serve ledger`; `assertDatabaseRole`, FC-INV-6, SPEC §1 separation of powers) is made on the role
 * that logged in: a login that holds more (here a superuser) and whose sessions switch to the
 * granted role by default (`ALTER ROLE … SET role`) is refused, since such a session can `SET ROLE
 * NONE` and write an entry at any time.
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { assertLedgerRole } from '../../src/embedded/ledger-node.js';
import { assertGateRole } from '../../src/embedded/gate-node.js';
import { openPostgresPool } from '../../src/storage/postgres/index.js';
import { createRoleWith, openMigratedPool, PG_ADMIN_URL, useTestDatabase } from '../support/postgres.js';
import { REPO_ROOT } from '../support/paths.js';

const pgdb = useTestDatabase();
const login = `fc_switching_login_${process.pid}`;

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

describe('the role checked is the role logged in (FC-INV-6)', () => {
  afterAll(() => admin(`DROP ROLE IF EXISTS ${login}`));

  it('a superuser login whose sessions switch to the ledger or the gate role is refused by both checks', async () => {
    const owner = await openMigratedPool(pgdb.url);
    const schema = owner.schema;
    await owner.close();
    await admin(`CREATE ROLE ${login} LOGIN SUPERUSER`);
    for (const [script, check] of [
      ['ledger-role.sql', assertLedgerRole],
      ['gate-role.sql', assertGateRole],
    ] as const) {
      const role = await createRoleWith(
        'fc_granted',
        join(REPO_ROOT, 'deploy/postgres', script),
        pgdb.url,
        schema,
      );
      try {
        // The granted role itself passes.
        const own = openPostgresPool({ url: role.url(pgdb.url), schema, max: 1 });
        try {
          await expect(check(own), script).resolves.toBeUndefined();
        } finally {
          await own.close();
        }
        await admin(`ALTER ROLE ${login} SET role = '${role.name}'`);
        const u = new URL(pgdb.url);
        u.username = login;
        const db = openPostgresPool({ url: u.toString(), schema, max: 1 });
        try {
          await expect(check(db), script).rejects.toThrow(/a login that is another role/);
        } finally {
          await db.close();
        }
      } finally {
        await admin(`ALTER ROLE ${login} RESET role`);
        await role.drop(pgdb.url);
      }
    }
  });
});
