-- The ledger process's PostgreSQL role (`failclosed serve ledger`): read the schema version and
-- the ledger's entries, add checkpoints, keep the Merkle tree snapshot; nothing else. The ledger
-- process holds the checkpoint key; on this role it cannot write, change or delete an entry, so
-- whoever holds that key cannot also rewrite the history it signs, and a Control Plane that can
-- write entries cannot sign (SPEC §1 separation of powers, §4, L7 ledger protection).
-- `serve ledger` refuses to start on a role that can do more.
--
-- Run it as the schema's owner (the Control Plane's role) or a superuser, after the Control Plane
-- process has migrated the schema, and again after an upgrade:
--
--   psql "postgres://OWNER@HOST:5432/DB" -v schema=failclosed -v role=failclosed_ledger \
--        -v ON_ERROR_STOP=1 -f deploy/postgres/ledger-role.sql
--
-- Without `password_env` the role must exist already and this file only grants. With
-- `-v password_env=NAME` it also creates the role (LOGIN) when it is missing and sets its
-- password to the value of the environment variable NAME of psql's process, so the password is
-- on no command line; unset or empty is refused. Either way a role that is the connecting user,
-- the schema's owner or a superuser is refused. The password travels to the server in the ALTER
-- ROLE statement: do not echo queries (psql -a, -e) and do not log DDL statements while this
-- runs. Running it again is harmless, and sets the password anew (rotation). Point the ledger
-- process's `state` at the role:
-- "state": "postgres://failclosed_ledger@HOST:5432/DB?schema=failclosed".
-- docs/deployment.md "The ledger process".

SELECT :'role' = current_user
    OR EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = :'role' AND rolsuper)
    OR EXISTS (SELECT FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
                WHERE n.nspname = :'schema' AND r.rolname = :'role') AS fc_role_refused \gset
\if :fc_role_refused
DO $$ BEGIN RAISE EXCEPTION 'ledger-role.sql: the role is the connecting user, the schema''s owner or a superuser: name the ledger process''s own role'; END $$;
\endif

\if :{?password_env}
\unset password
\getenv password :password_env
\if :{?password}
\else
\set password ''
\endif
SELECT :'password' = '' AS fc_password_missing \gset
\if :fc_password_missing
DO $$ BEGIN RAISE EXCEPTION 'ledger-role.sql: the environment variable that password_env names is unset or empty'; END $$;
\endif
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'role', :'password') \gexec
\unset password
\endif

-- The schema version check at start: read-only.
GRANT USAGE ON SCHEMA :"schema" TO :"role";
GRANT SELECT ON TABLE :"schema".failclosed_schema TO :"role";
-- The entries, read-only: the process reads and verifies them, never writes one.
GRANT SELECT ON TABLE :"schema".ledger_entries TO :"role";
-- The checkpoints it signs (the first at each size stays).
GRANT SELECT, INSERT ON TABLE :"schema".ledger_checkpoints TO :"role";
-- The Merkle tree snapshot stored with its checkpoints (the next open need not re-hash).
GRANT SELECT, INSERT, UPDATE ON TABLE :"schema".ledger_meta TO :"role";
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE :"schema".ledger_tree_chunks TO :"role";
