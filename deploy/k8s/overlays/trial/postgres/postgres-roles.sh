#!/usr/bin/env bash
# Postgres roles of the production profile (compose.prod.yml), created on the first start
# of an empty data volume (/docker-entrypoint-initdb.d; the superuser is POSTGRES_USER):
#
#   POSTGRES_OWNER_USER  owns the schema; the `migrate` service runs as it (DDL).
#   POSTGRES_APP_USER    every other service: SELECT/INSERT/UPDATE/DELETE on the owner's
#                        tables and sequences, no CREATE/DROP/ALTER/TRUNCATE, and
#                        statement_timeout / idle_in_transaction_session_timeout set on
#                        the role (APP_STATEMENT_TIMEOUT, APP_IDLE_IN_TRANSACTION_TIMEOUT).
#
# Passwords come from the secret files, read by psql itself (never on a command line).
# Later changes of these settings need an ALTER ROLE by hand: this runs only once.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v db="$POSTGRES_DB" \
    -v owner="${POSTGRES_OWNER_USER:-celeryref_owner}" \
    -v app="${POSTGRES_APP_USER:-celeryref_app}" \
    -v statement_timeout="${APP_STATEMENT_TIMEOUT:-30s}" \
    -v idle_timeout="${APP_IDLE_IN_TRANSACTION_TIMEOUT:-60s}" <<'SQL'
\set owner_password `cat /run/secrets/postgres_owner_password`
\set app_password `cat /run/secrets/postgres_app_password`
CREATE ROLE :"owner" LOGIN PASSWORD :'owner_password';
CREATE ROLE :"app" LOGIN PASSWORD :'app_password';
ALTER ROLE :"app" SET statement_timeout = :'statement_timeout';
ALTER ROLE :"app" SET idle_in_transaction_session_timeout = :'idle_timeout';
-- Only these two roles (and the superuser) may connect.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"owner", :"app";
-- The owner owns the schema; nobody else may create anything in it.
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";
-- What the owner's migrations create, the app may read and write, nothing more.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app";
SQL
