-- The Execution Layer's PostgreSQL role: its envelope-nonce tables and nothing else
-- (FC-INV-6: the Execution Layer holds only what it needs; OE-INV-017: single-use envelopes
-- across replicas). An executor on this role cannot read or write the ledger, approvals,
-- policy bundles, governance state or the gates' request nonces, and cannot change the schema.
--
-- Run it as the schema's owner (the gates' role) or a superuser, after a gate has migrated the
-- schema (`failclosed up` with a postgres:// backend does), and again after an upgrade:
--
--   psql "postgres://OWNER@HOST:5432/DB" -v schema=failclosed -v role=failclosed_executor \
--        -v ON_ERROR_STOP=1 -f deploy/postgres/executor-role.sql
--
-- The role must exist already (CREATE ROLE failclosed_executor LOGIN PASSWORD '…', or your
-- identity setup's equivalent); this file only grants. Point the executors' `nonces` at it:
-- "nonces": "postgres://failclosed_executor@HOST:5432/DB", "nonces_schema": "failclosed".
-- docs/deployment.md "The Execution Layer's database role".

-- The schema version check at start: read-only.
GRANT USAGE ON SCHEMA :"schema" TO :"role";
GRANT SELECT ON TABLE :"schema".failclosed_schema TO :"role";
-- Consume and void (INSERT … ON CONFLICT DO NOTHING), the horizon below which an expired
-- envelope is refused, and pruning below it.
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE :"schema".envelope_nonces TO :"role";
GRANT SELECT, UPDATE ON TABLE :"schema".envelope_nonce_horizon TO :"role";
