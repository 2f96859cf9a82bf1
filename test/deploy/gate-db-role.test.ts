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
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertGateRole } from '../../src/embedded/gate-node.js';
import { migrate, openPostgresPool } from '../../src/storage/postgres/index.js';
import { PG_ADMIN_URL, applyRoleSql, nextSchema, roleAuth, useTestDatabase } from '../support/postgres.js';
import { DEPLOY_DIR } from './support.js';

const SQL = join(DEPLOY_DIR, 'postgres/gate-role.sql');
const ENV = 'FC_TEST_GATE_DB_PASSWORD';

async function adminQuery(url: string, sql: string, values: unknown[] = []) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query<Record<string, unknown>>(sql, values);
  } finally {
    await c.end();
  }
}

describe('deploy/postgres/gate-role.sql with password_env (the shipped artefacts run it so)', () => {
  const pgdb = useTestDatabase('fc_gate_role_pw');
  const made = `fc_gate_${randomBytes(4).toString('hex')}`;
  const schema = nextSchema();

  beforeAll(async () => {
    // The Control Plane process migrates the schema (here the superuser stands for its role).
    const owner = openPostgresPool({ url: pgdb.url, schema, max: 1 });
    try {
      await migrate(owner);
    } finally {
      await owner.close();
    }
  });
  afterAll(async () => {
    await adminQuery(pgdb.url, `DROP OWNED BY ${made}`).catch(() => undefined);
    await pgdb.db.drop();
    await adminQuery(PG_ADMIN_URL, `DROP ROLE IF EXISTS ${made}`);
  });

  /** psql as the artefacts run it, the password (if any) in the variable `password_env` names. */
  const apply = (roleName: string, password: string | undefined) =>
    applyRoleSql(SQL, pgdb.url, {
      schema,
      role: roleName,
      passwordEnv: ENV,
      ...(password === undefined ? {} : { password }),
    });
  const authid = roleAuth;
  const asMade = () => {
    const u = new URL(pgdb.url);
    u.username = made;
    return u.toString();
  };

  it('an unset or empty password is refused, and no role is made', async () => {
    for (const pw of [undefined, '']) {
      const r = apply(made, pw);
      expect(r.status, String(pw)).not.toBe(0);
      expect(r.stderr).toMatch(/password_env names is unset or empty/);
    }
    expect(await authid(made)).toBeUndefined();
  });

  it('the connecting user (here a superuser and the schema owner) is refused as the Gate role', () => {
    const r = apply(new URL(pgdb.url).username, 'not-the-owners');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/connecting user, the schema's owner or a superuser/);
  });

  it('creates the role with a SCRAM password on no command line; serve gate accepts it; run again, the password is set anew', async () => {
    const secret = `pw-'${randomBytes(8).toString('hex')}`;
    const r = apply(made, secret);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.args.join(' ')).not.toContain(secret);
    expect(r.stdout).not.toContain(secret);
    const first = await authid(made);
    expect(first?.rolcanlogin).toBe(true);
    expect(String(first?.rolpassword)).toMatch(/^SCRAM-SHA-256\$/);

    // The check `serve gate` makes at start passes on exactly this role, and the owner's fails.
    const gateDb = openPostgresPool({ url: asMade(), schema, max: 1 });
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
    const ownerDb = openPostgresPool({ url: pgdb.url, schema, max: 1 });
    try {
      await expect(assertGateRole(ownerDb)).rejects.toThrow(/can do more than a Gate needs/);
    } finally {
      await ownerDb.close();
    }

    expect(apply(made, `${secret}-rotated`).status).toBe(0);
    const second = await authid(made);
    expect(String(second?.rolpassword)).toMatch(/^SCRAM-SHA-256\$/);
    expect(second?.rolpassword).not.toBe(first?.rolpassword);
  });
});
