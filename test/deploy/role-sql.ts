/**
 * What every shipped role script (`deploy/postgres/*-role.sql`) does with `password_env`, as the
 * artefacts run it (a compose one-shot, a Kubernetes Job, a systemd oneshot), tested with the
 * real `psql`: it creates the role with its own SCRAM password taken from the environment, never
 * from the command line, and sets it anew when run again; it refuses a missing or empty password
 * and the connecting user (the schema's owner or a superuser). `usable` shows the role made can
 * do its role's work.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openPostgresPool } from '../../src/storage/postgres/index.js';
import { PG_ADMIN_URL, applyRoleSql, nextSchema, roleAuth, useTestDatabase } from '../support/postgres.js';

async function adminQuery(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** The suite for one role script. */
export function describePasswordEnv(o: {
  readonly title: string;
  readonly sql: string;
  /** Names this run's role and database (unique per file). */
  readonly prefix: string;
  /** The environment variable the script is told to read. */
  readonly env: string;
  /** Shows that the role made (`url` connects as it) does its role's work on `schema`. */
  readonly usable: (url: string, schema: string, ownerUrl: string) => Promise<void>;
}): void {
  describe(`${o.title} with password_env (the shipped artefacts run it so)`, () => {
    const pgdb = useTestDatabase(`${o.prefix}_pw`);
    const made = `${o.prefix}_${randomBytes(4).toString('hex')}`;
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

    const apply = (role: string, password: string | undefined) =>
      applyRoleSql(o.sql, pgdb.url, {
        schema,
        role,
        passwordEnv: o.env,
        ...(password === undefined ? {} : { password }),
      });

    it('an unset or empty password is refused, and no role is made', async () => {
      for (const pw of [undefined, '']) {
        const r = apply(made, pw);
        expect(r.status, String(pw)).not.toBe(0);
        expect(r.stderr).toMatch(/password_env names is unset or empty/);
      }
      expect(await roleAuth(made)).toBeUndefined();
    });

    it('the connecting user (here a superuser and the schema owner) is refused as the role', () => {
      const r = apply(new URL(pgdb.url).username, 'not-the-owners');
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/connecting user, the schema's owner or a superuser/);
    });

    it('creates the role with a SCRAM password on no command line; it does its work; run again, the password is set anew', async () => {
      const secret = `pw-'${randomBytes(8).toString('hex')}`;
      const r = apply(made, secret);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.args.join(' ')).not.toContain(secret);
      expect(r.stdout).not.toContain(secret);
      const first = await roleAuth(made);
      expect(first?.rolcanlogin).toBe(true);
      expect(String(first?.rolpassword)).toMatch(/^SCRAM-SHA-256\$/);

      const u = new URL(pgdb.url);
      u.username = made;
      await o.usable(u.toString(), schema, pgdb.url);

      expect(apply(made, `${secret}-rotated`).status).toBe(0);
      const second = await roleAuth(made);
      expect(String(second?.rolpassword)).toMatch(/^SCRAM-SHA-256\$/);
      expect(second?.rolpassword).not.toBe(first?.rolpassword);
    });
  });
}
