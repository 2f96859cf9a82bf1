/**
 * The database roles of the processes that share the Control Plane's PostgreSQL schema without
 * owning it (`serve gate`, `serve ledger`): each refuses to start on a role that can do more than
 * it needs (FC-INV-6, SPEC §1 separation of powers; `deploy/postgres/*-role.sql`).
 */
import type { PostgresPool } from '../storage/index.js';

const TABLE_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'];
const COLUMN_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'REFERENCES'];

/** Who the role is for, as the refusal names it. */
export interface DatabaseRoleUse {
  /** The process, e.g. `gate`. */
  readonly role: string;
  /** What it needs, e.g. `a Gate`. */
  readonly what: string;
  /** Its script under `deploy/postgres/`. */
  readonly script: string;
}

/**
 * Refuses a database role that can do more than `use` needs. An allowlist: on every table, view
 * and sequence of the schema, the role's privileges, table or column level, must be exactly those
 * of `grants` (nothing elsewhere). And the role must be no superuser, have no CREATEROLE or
 * BYPASSRLS, be a member of no role at all (so no `SET ROLE` to an owner or to
 * `pg_write_all_data`, inherited or not), own nothing in the schema and not be able to create in
 * it. Every unknown answer counts as held.
 */
export async function assertDatabaseRole(
  db: PostgresPool,
  grants: Readonly<Record<string, readonly string[]>>,
  use: DatabaseRoleUse,
): Promise<void> {
  const held: string[] = [];
  const role = await db.pool.query<Record<string, unknown>>(
    `SELECT r.rolsuper, r.rolcreaterole, r.rolbypassrls,
            (SELECT count(*) FROM pg_catalog.pg_auth_members m WHERE m.member = r.oid)::int AS memberships,
            (SELECT n.nspowner = r.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = $1) AS owner,
            has_schema_privilege(r.oid, $1, 'CREATE') AS can_create,
            session_user = current_user AS logged_in_as_itself
       FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`,
    [db.schema],
  );
  const r = role.rows[0] ?? {};
  if (r['rolsuper'] !== false) held.push('superuser');
  if (r['rolcreaterole'] !== false) held.push('CREATEROLE');
  if (r['rolbypassrls'] !== false) held.push('BYPASSRLS');
  if (r['memberships'] !== 0) held.push('membership in another role');
  if (r['owner'] !== false) held.push(`owner of schema ${db.schema}`);
  if (r['can_create'] !== false) held.push(`CREATE on schema ${db.schema}`);
  // A login whose session switched to the role (`ALTER ROLE … SET role`) keeps its own rights: it
  // can `SET ROLE NONE` at any time. Only the role logged in as itself is the role checked here.
  if (r['logged_in_as_itself'] !== true)
    held.push('a login that is another role (its session switched to this one)');
  const tables = await db.pool.query<{ name: string; owned: boolean; privileges: string[] | null }>(
    `SELECT c.relname AS name, c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) AS owned,
            ARRAY(SELECT p FROM unnest($2::text[]) AS p WHERE has_table_privilege(current_user, c.oid, p)
                  UNION
                  SELECT p FROM unnest($3::text[]) AS p WHERE has_any_column_privilege(current_user, c.oid, p)) AS privileges
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`,
    [db.schema, TABLE_PRIVILEGES, COLUMN_PRIVILEGES],
  );
  if (tables.rows.length === 0) held.push(`no table of schema ${db.schema} could be read`);
  for (const t of tables.rows) {
    if (t.owned !== false) held.push(`owner of ${t.name}`);
    const allowed = grants[t.name] ?? [];
    const extra = (t.privileges ?? ['unknown']).filter((p) => !allowed.includes(p));
    if (extra.length > 0) held.push(`${extra.join(', ')} on ${t.name}`);
  }
  if (held.length > 0)
    throw new Error(
      `${use.role}: the database role can do more than ${use.what} needs (${held.join('; ')}): give it the role of deploy/postgres/${use.script}`,
    );
}
