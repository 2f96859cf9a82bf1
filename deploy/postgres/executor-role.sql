-- The Execution Layer's PostgreSQL role: its envelope-nonce tables and nothing else
-- (FC-INV-6: the Execution Layer holds only what it needs; OE-INV-017: single-use envelopes
-- across replicas). An executor on this role cannot read or write the ledger, approvals,
-- policy bundles, governance state or the gates' request nonces, and cannot change the schema.
--
-- Run it as the schema's owner (the Control Plane's role) or a superuser, after the Control Plane
-- process has migrated the schema (`failclosed serve control-plane` does at start, as does
-- `failclosed up` with a postgres:// backend), and again after an upgrade:
--
--   psql "postgres://OWNER@HOST:5432/DB" -v schema=failclosed -v role=failclosed_executor \
--        -v ON_ERROR_STOP=1 -f deploy/postgres/executor-role.sql
--
-- Without `password_env` the role must exist already (CREATE ROLE failclosed_executor LOGIN
-- PASSWORD '…', or your identity setup's equivalent) and this file only grants. With
-- `-v password_env=NAME` it also creates the role (LOGIN) when it is missing and sets its
-- password to the value of the environment variable NAME of psql's process, so the password is
-- on no command line; unset or empty is refused. Either way a role that is the connecting user,
-- the schema's owner or a superuser is refused (it would hold far more than these grants). The password travels to the server in the ALTER ROLE statement: do not echo queries
-- (psql -a, -e) and do not log DDL statements (log_statement) while this runs. Running it again
-- is harmless, and sets the password anew (rotation).
--
-- Point the executors' `nonces` at the role:
-- "nonces": "postgres://failclosed_executor@HOST:5432/DB", "nonces_schema": "failclosed".
-- docs/deployment.md "The Execution Layer's database role".

SELECT :'role' = current_user
    OR EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = :'role' AND rolsuper)
    OR EXISTS (SELECT FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
                WHERE n.nspname = :'schema' AND r.rolname = :'role') AS fc_role_refused \gset
\if :fc_role_refused
DO $$ BEGIN RAISE EXCEPTION 'executor-role.sql: the role is the connecting user, the schema''s owner or a superuser: name the executors'' own role'; END $$;
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
DO $$ BEGIN RAISE EXCEPTION 'executor-role.sql: the environment variable that password_env names is unset or empty'; END $$;
\endif
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'role', :'password') \gexec
\unset password
\endif

-- The schema version check at start: read-only.
GRANT USAGE ON SCHEMA :"schema" TO :"role";
GRANT SELECT ON TABLE :"schema".failclosed_schema TO :"role";
-- Consume and void (INSERT … ON CONFLICT DO NOTHING), the horizon below which an expired
-- envelope is refused, and pruning below it.
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE :"schema".envelope_nonces TO :"role";
GRANT SELECT, UPDATE ON TABLE :"schema".envelope_nonce_horizon TO :"role";
