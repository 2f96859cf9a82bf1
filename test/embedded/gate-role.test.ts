/**
 * The keyless Gate's database role (docs/deployment.md "Separate Gate"; FC-INV-6, SPEC §1): a
 * Gate must not be able to write the client registry the Control Plane checks signatures
 * against, nor anything else of the Control Plane's. `deploy/postgres/gate-role.sql`, applied
 * with the real `psql`, starts and cannot write `gate_clients`; each case below adds one grant an
 * operator could plausibly give, and `assertGateRole` (what `serve gate` runs at start) refuses
 * the role: a column privilege on a registered key, a NOINHERIT member of `pg_write_all_data`
 * (`SET ROLE` would write), CREATEROLE (it could grant itself that), a table outside the Gate's
 * allowlist (lifting a tenant lockdown), the schema's owner.
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertGateRole } from '../../src/embedded/gate-node.js';
import { openPostgresPool } from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { createRoleWith, openMigratedPool, useTestDatabase } from '../support/postgres.js';
import type { TestRole } from '../support/postgres.js';
import { REPO_ROOT } from '../support/paths.js';

const GATE_ROLE_SQL = join(REPO_ROOT, 'deploy/postgres/gate-role.sql');
const pgdb = useTestDatabase('fc_gate_role');

describe('assertGateRole refuses a role that could write the client registry', () => {
  let owner: PostgresPool;
  const roles: TestRole[] = [];

  beforeAll(async () => {
    owner = await openMigratedPool(pgdb.url);
    await owner.pool.query(`INSERT INTO governance_tenant_lockdown (tenant) VALUES ('acme')`);
  });
  afterAll(async () => {
    for (const r of roles) await r.drop(pgdb.url).catch(() => undefined);
    await owner?.close();
  });

  /** gate-role.sql, then `extra` as the admin; the outcome of assertGateRole and of `attack`. */
  const attempt = async (extra: (role: string, schema: string) => string[], attack: string[]) => {
    const role = await createRoleWith('fc_gr', GATE_ROLE_SQL, pgdb.url, owner.schema);
    roles.push(role);
    for (const sql of extra(role.name, owner.schema)) await owner.pool.query(sql);
    const gatePool = openPostgresPool({ url: role.url(pgdb.url), schema: owner.schema, max: 1 });
    let refused = false;
    try {
      await assertGateRole(gatePool);
    } catch (err) {
      refused = /can do more than a Gate needs/.test(String(err));
    } finally {
      await gatePool.close();
    }
    if (refused) return 'refused at start';
    const c = new pg.Client({ connectionString: role.url(pgdb.url) });
    await c.connect();
    try {
      for (const sql of attack) await c.query(sql.replaceAll('$S', owner.schema));
      return 'started, and the attack succeeded';
    } catch (err) {
      return /permission denied/.test(String(err)) ? 'started, attack denied' : `other: ${String(err)}`;
    } finally {
      await c.end();
    }
  };

  const replaceKey = [`UPDATE $S.gate_clients SET jwk = '{}'`];

  it('baseline: gate-role.sql alone starts and cannot write gate_clients', async () => {
    expect(await attempt(() => [], replaceKey)).toBe('started, attack denied');
  });

  it('column privilege UPDATE (jwk) on gate_clients: replace a registered client key', async () => {
    expect(await attempt((r, s) => [`GRANT UPDATE (jwk) ON ${s}.gate_clients TO ${r}`], replaceKey)).toBe(
      'refused at start',
    );
  });

  it('NOINHERIT role that is a member of pg_write_all_data: SET ROLE, then write', async () => {
    expect(
      await attempt(
        (r) => [`ALTER ROLE ${r} NOINHERIT`, `GRANT pg_write_all_data TO ${r}`],
        ['SET ROLE pg_write_all_data', ...replaceKey],
      ),
    ).toBe('refused at start');
  });

  it('role with CREATEROLE: grants itself pg_write_all_data, then writes', async () => {
    expect(
      await attempt(
        (r) => [`ALTER ROLE ${r} CREATEROLE`],
        ['GRANT pg_write_all_data TO CURRENT_USER', 'SET ROLE pg_write_all_data', ...replaceKey],
      ),
    ).toBe('refused at start');
  });

  it('a table outside the allowlist: DELETE on governance_tenant_lockdown would lift a lockdown', async () => {
    expect(
      await attempt(
        (r, s) => [`GRANT SELECT, DELETE ON ${s}.governance_tenant_lockdown TO ${r}`],
        [`DELETE FROM $S.governance_tenant_lockdown WHERE tenant = 'acme' RETURNING tenant`],
      ),
    ).toBe('refused at start');
  });

  it("the Control Plane's decision claims (FC-INV-3, FC-INV-6): gate-role.sql alone cannot free or take one; a grant on them is refused at start", async () => {
    const free = [`DELETE FROM $S.decision_claims RETURNING request_id`];
    const take = [
      `INSERT INTO $S.decision_claims (tenant, identity, request_id, holder, claimed_at) VALUES ('acme', 'demo-agent', 'r', 'h', 0)`,
    ];
    expect(await attempt(() => [], free)).toBe('started, attack denied');
    expect(await attempt(() => [], take)).toBe('started, attack denied');
    expect(await attempt((r, s) => [`GRANT SELECT, DELETE ON ${s}.decision_claims TO ${r}`], free)).toBe(
      'refused at start',
    );
  });

  it('the schema owner (the Control Plane role) is refused, naming what it holds', async () => {
    await expect(assertGateRole(owner)).rejects.toThrow(/superuser; .*owner of schema/);
  });
});
