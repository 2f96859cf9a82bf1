-- The keyless Gate's PostgreSQL role (`failclosed serve gate`): read the client registry and
-- the operators, claim request nonces and ids (FC-INV-3: single use across every Gate), and the
-- readiness probe; nothing else. A Gate on this role cannot register or change a client, write
-- the ledger, approvals, policy or governance state, or change the schema, so a compromised Gate
-- cannot add a client whose calls the Control Plane would then sign (SPEC §1 separation of
-- powers, FC-INV-6). `serve gate` refuses to start on a role that can do any of that.
--
-- Run it as the schema's owner (the Control Plane's role) or a superuser, after the Control Plane
-- process has migrated the schema, and again after an upgrade:
--
--   psql "postgres://OWNER@HOST:5432/DB" -v schema=failclosed -v role=failclosed_gate \
--        -v ON_ERROR_STOP=1 -f deploy/postgres/gate-role.sql
--
-- Without `password_env` the role must exist already (CREATE ROLE failclosed_gate LOGIN
-- PASSWORD '…', or your identity setup's equivalent) and this file only grants. With
-- `-v password_env=NAME` (as the shipped compose service, Kubernetes Job and systemd unit run
-- it) it also creates the role (LOGIN) when it is missing and sets its password to the value of
-- the environment variable NAME of psql's process, so the password is on no command line; unset
-- or empty is refused. Either way a role that is the connecting user, the schema's owner or a
-- superuser is refused (it would hold far more than these grants). The password travels to the
-- server in the ALTER ROLE statement: do not echo queries (psql -a, -e) and do not log DDL
-- statements (log_statement) while this runs. Running it again is harmless, and sets the password
-- anew (rotation). Point the Gate's `state` at the role:
-- "state": "postgres://failclosed_gate@HOST:5432/DB?schema=failclosed".
-- docs/deployment.md "Separate Gate".

SELECT :'role' = current_user
    OR EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = :'role' AND rolsuper)
    OR EXISTS (SELECT FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
                WHERE n.nspname = :'schema' AND r.rolname = :'role') AS fc_role_refused \gset
\if :fc_role_refused
DO $$ BEGIN RAISE EXCEPTION 'gate-role.sql: the role is the connecting user, the schema''s owner or a superuser: name the Gate''s own role'; END $$;
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
DO $$ BEGIN RAISE EXCEPTION 'gate-role.sql: the environment variable that password_env names is unset or empty'; END $$;
\endif
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'role', :'password') \gexec
\unset password
\endif

-- The schema version check at start: read-only.
GRANT USAGE ON SCHEMA :"schema" TO :"role";
GRANT SELECT ON TABLE :"schema".failclosed_schema TO :"role";
-- Authentication: the client registry and the operators (evidence view), read-only.
GRANT SELECT ON TABLE :"schema".gate_clients, :"schema".operators TO :"role";
-- Single use of request nonces and ids (gate_claim_request), and pruning them.
GRANT SELECT, INSERT, DELETE ON TABLE :"schema".gate_request_nonces TO :"role";
-- /readyz writes and reads back one row of its own.
GRANT SELECT, INSERT, UPDATE ON TABLE :"schema".readiness_probe TO :"role";
