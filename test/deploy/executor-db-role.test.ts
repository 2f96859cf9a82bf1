/**
 * The Execution Layer's least-privilege PostgreSQL role (FC-INV-6: the Execution Layer holds only
 * what it needs; OE-INV-017 single use across replicas). `deploy/postgres/executor-role.sql`,
 * applied with the real `psql` as its header says, grants the envelope-nonce tables and nothing
 * else; an executor on that role opens its nonce store on the gates' migrated schema (no DDL),
 * consumes, voids and prunes, and cannot read or write the ledger, approvals, policy or the
 * gates' request nonces, nor change the schema. With `password_env` (as the compose service, the
 * Kubernetes Job and the systemd unit run it) it also creates the role and sets its password from
 * the environment, never from the command line; it refuses a missing password and a role that is
 * the connecting user.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openExecutorNonceStore } from '../../src/embedded/index.js';
import { openPostgresPool, migrate } from '../../src/storage/postgres/index.js';
import { PG_ADMIN_URL, applyRoleSql, nextSchema, roleAuth, useTestDatabase } from '../support/postgres.js';

const SQL = join(dirname(fileURLToPath(import.meta.url)), '../../deploy/postgres/executor-role.sql');
const pgdb = useTestDatabase('fc_exec_role');
const role = `fc_exec_${randomBytes(4).toString('hex')}`;
const schema = nextSchema();

const asRole = (url: string): string => {
  const u = new URL(url);
  u.username = role;
  return u.toString();
};

async function adminQuery(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

describe('deploy/postgres/executor-role.sql', () => {
  beforeAll(async () => {
    await adminQuery(PG_ADMIN_URL, `CREATE ROLE ${role} LOGIN`);
    // The gates' role migrates the schema (here the superuser stands for it).
    const owner = openPostgresPool({ url: pgdb.url, schema, max: 1 });
    try {
      await migrate(owner);
    } finally {
      await owner.close();
    }
  });
  afterAll(async () => {
    await adminQuery(pgdb.url, `DROP OWNED BY ${role}`).catch(() => undefined);
    await pgdb.db.drop();
    await adminQuery(PG_ADMIN_URL, `DROP ROLE IF EXISTS ${role}`);
  });

  const open = () =>
    openExecutorNonceStore(
      {
        nonces: asRole(pgdb.url),
        nonces_schema: schema,
        clock_tolerance_sec: 1,
        max_envelope_lifetime_sec: 300,
      },
      () => Date.now(),
    );

  it('without the grants, an executor on the role cannot open its nonce store', async () => {
    await expect(open()).rejects.toThrow(/permission denied/);
  });

  it('with them (applied by psql as documented), the executor consumes, voids and prunes without DDL', async () => {
    execFileSync(
      'psql',
      [pgdb.url, '-v', `schema=${schema}`, '-v', `role=${role}`, '-v', 'ON_ERROR_STOP=1', '-q', '-f', SQL],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    const nonces = await open();
    try {
      const exp = Math.floor(Date.now() / 1000) + 60;
      const n = (jti: string) => ({ jti, tenant: 'acme', exp, decision_id: `d-${jti}` });
      expect(await nonces.store.consume(n('j-1'))).toBe('fresh');
      expect(await nonces.store.consume(n('j-1'))).toBe('replayed');
      expect(await nonces.store.void(n('j-2'))).toBe('voided');
      expect(await nonces.store.consume(n('j-2'))).toBe('voided');
      await nonces.store.prune({ nowSec: Math.floor(Date.now() / 1000), toleranceSec: 1 });
    } finally {
      await nonces.close();
    }
  });

  it('the role reaches nothing but its nonce tables', async () => {
    const c = new pg.Client({ connectionString: asRole(pgdb.url) });
    await c.connect();
    try {
      await c.query(`SET search_path TO ${schema}`);
      for (const sql of [
        'SELECT count(*) FROM ledger_entries',
        "INSERT INTO ledger_evidence (sha256, body) VALUES ('x', 'y')",
        'SELECT count(*) FROM approval_pending',
        'SELECT count(*) FROM policy_bundles',
        'UPDATE governance_kill_switch SET engaged = false',
        'SELECT count(*) FROM gate_request_nonces',
        'SELECT count(*) FROM gate_clients',
        'DELETE FROM decision_claims',
        'CREATE TABLE smuggled (x int)',
        'DROP TABLE envelope_nonces',
        'TRUNCATE envelope_nonces',
      ])
        await expect(c.query(sql), sql).rejects.toThrow(/permission denied|must be owner/);
    } finally {
      await c.end();
    }
  });
});

describe('deploy/postgres/executor-role.sql with password_env (the shipped artefacts run it so)', () => {
  const pgdb2 = useTestDatabase('fc_exec_role_pw');
  const made = `fc_exec_${randomBytes(4).toString('hex')}`;
  const schema2 = nextSchema();
  const ENV = 'FC_TEST_EXECUTOR_DB_PASSWORD';

  beforeAll(async () => {
    const owner = openPostgresPool({ url: pgdb2.url, schema: schema2, max: 1 });
    try {
      await migrate(owner);
    } finally {
      await owner.close();
    }
  });
  afterAll(async () => {
    await adminQuery(pgdb2.url, `DROP OWNED BY ${made}`).catch(() => undefined);
    await pgdb2.db.drop();
    await adminQuery(PG_ADMIN_URL, `DROP ROLE IF EXISTS ${made}`);
  });

  /** psql as documented, the password (if any) in the environment variable `password_env` names. */
  const apply = (roleName: string, password: string | undefined) =>
    applyRoleSql(SQL, pgdb2.url, {
      schema: schema2,
      role: roleName,
      passwordEnv: ENV,
      ...(password === undefined ? {} : { password }),
    });
  const authid = roleAuth;

  it('an unset or empty password is refused, and no role is made', async () => {
    for (const pw of [undefined, '']) {
      const r = apply(made, pw);
      expect(r.status, String(pw)).not.toBe(0);
      expect(r.stderr).toMatch(/password_env names is unset or empty/);
    }
    expect(await authid(made)).toBeUndefined();
  });

  it('a role that is the connecting user (here a superuser and the schema owner) is refused', () => {
    const r = apply(new URL(pgdb2.url).username, 'not-the-owners');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/connecting user, the schema's owner or a superuser/);
  });

  it('creates the role with a SCRAM password that is on no command line, grants, and sets it anew when run again', async () => {
    const secret = `pw-'${randomBytes(8).toString('hex')}`;
    const r = apply(made, secret);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.args.join(' ')).not.toContain(secret);
    expect(r.stdout).not.toContain(secret);
    const first = await authid(made);
    expect(first?.rolcanlogin).toBe(true);
    expect(first?.rolpassword).toMatch(/^SCRAM-SHA-256\$/);

    const u = new URL(pgdb2.url);
    u.username = made;
    const nonces = await openExecutorNonceStore(
      {
        nonces: u.toString(),
        nonces_schema: schema2,
        clock_tolerance_sec: 1,
        max_envelope_lifetime_sec: 300,
      },
      () => Date.now(),
    );
    try {
      const exp = Math.floor(Date.now() / 1000) + 60;
      expect(await nonces.store.consume({ jti: 'p-1', tenant: 'acme', exp, decision_id: 'd-p-1' })).toBe(
        'fresh',
      );
    } finally {
      await nonces.close();
    }

    expect(apply(made, `${secret}-rotated`).status).toBe(0);
    const second = await authid(made);
    expect(second?.rolpassword).toMatch(/^SCRAM-SHA-256\$/);
    expect(second?.rolpassword).not.toBe(first?.rolpassword);
  });
});
