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
import { PG_ADMIN_URL, nextSchema, useTestDatabase } from '../support/postgres.js';
import { describePasswordEnv } from './role-sql.js';

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

describePasswordEnv({
  title: 'deploy/postgres/executor-role.sql',
  sql: SQL,
  prefix: 'fc_exec',
  env: 'FC_TEST_EXECUTOR_DB_PASSWORD',
  // An executor opens its nonce store on the role and consumes.
  async usable(url, schema) {
    const nonces = await openExecutorNonceStore(
      { nonces: url, nonces_schema: schema, clock_tolerance_sec: 1, max_envelope_lifetime_sec: 300 },
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
  },
});
