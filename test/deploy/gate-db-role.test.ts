/**
 * The keyless Gate's PostgreSQL role as the shipped artefacts make it (FC-INV-6: a Gate holds
 * nothing the Control Plane's registry depends on; SPEC §1 separation of powers).
 * `deploy/postgres/gate-role.sql`, applied with the real `psql` with `password_env` (as the
 * compose service `gate-role`, the Kubernetes Job `failclosed-gate-role` and
 * `failclosed-gate-role.service` run it), creates the role with its own password taken from the
 * environment, never from the command line, and grants exactly what `serve gate` accepts at start
 * (`assertGateRole`); it refuses a missing password and the schema owner. What a role that holds
 * more is refused for is tested in test/embedded/gate-role.test.ts.
 */
import { join } from 'node:path';
import { expect } from 'vitest';
import { assertGateRole } from '../../src/embedded/gate-node.js';
import { openPostgresPool } from '../../src/storage/postgres/index.js';
import { describePasswordEnv } from './role-sql.js';
import { DEPLOY_DIR } from './support.js';

describePasswordEnv({
  title: 'deploy/postgres/gate-role.sql',
  sql: join(DEPLOY_DIR, 'postgres/gate-role.sql'),
  prefix: 'fc_gate',
  env: 'FC_TEST_GATE_DB_PASSWORD',
  // The check `serve gate` makes at start passes on exactly this role, and the owner's fails.
  async usable(url, schema, ownerUrl) {
    const gateDb = openPostgresPool({ url, schema, max: 1 });
    try {
      await expect(assertGateRole(gateDb)).resolves.toBeUndefined();
      const c = await gateDb.pool.connect();
      try {
        await c.query(`SET search_path TO ${schema}`);
        await expect(c.query("INSERT INTO gate_clients (identity) VALUES ('smuggled')")).rejects.toThrow(
          /permission denied/,
        );
      } finally {
        c.release();
      }
    } finally {
      await gateDb.close();
    }
    const ownerDb = openPostgresPool({ url: ownerUrl, schema, max: 1 });
    try {
      await expect(assertGateRole(ownerDb)).rejects.toThrow(/can do more than a Gate needs/);
    } finally {
      await ownerDb.close();
    }
  },
});
