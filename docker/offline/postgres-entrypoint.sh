#!/usr/bin/env bash
# Entrypoint of celeryref/postgres:15-bookworm: a small emulation of the
# official postgres image's docker-entrypoint.sh, for the parts we rely on.
#
#   POSTGRES_PASSWORD   required (unless POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER       superuser name          (default: postgres)
#   POSTGRES_DB         database to create      (default: $POSTGRES_USER)
#   POSTGRES_INITDB_ARGS       extra initdb arguments
#   POSTGRES_HOST_AUTH_METHOD  pg_hba method for TCP (default: scram-sha-256)
#   *_FILE variants (POSTGRES_PASSWORD_FILE, ...) read the value from a file.
#
# On first start (empty $PGDATA) the cluster is created with initdb, the
# database is created, and /docker-entrypoint-initdb.d/*.sh|*.sql are run.
# Then `postgres "$@"` is exec'd. The command may be `postgres ARGS...`,
# only options (`-c max_connections=200`), or any other program.
set -euo pipefail

# file_env VAR [DEFAULT]: VAR from $VAR, or from the file named by $VAR_FILE.
file_env() {
    local var="$1" def="${2:-}" fvar="${1}_FILE" val
    if [ -n "${!var:-}" ] && [ -n "${!fvar:-}" ]; then
        echo "error: both $var and $fvar are set" >&2
        exit 1
    fi
    val="$def"
    if [ -n "${!var:-}" ]; then
        val="${!var}"
    elif [ -n "${!fvar:-}" ]; then
        val="$(<"${!fvar}")"
    fi
    export "$var=$val"
    unset "$fvar"
}

# Options only -> they are postgres options.
if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi
# Anything else than the server (bash, psql, ...) runs as given.
if [ "$1" != postgres ]; then
    exec "$@"
fi
shift

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

# Started as root: fix ownership, then re-run this script as postgres.
if [ "$(id -u)" -eq 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    chown postgres:postgres /var/run/postgresql
    chmod 3777 /var/run/postgresql
    export HOME=/var/lib/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups \
        "${BASH_SOURCE[0]}" postgres "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"

    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
        echo "       (set it, or POSTGRES_HOST_AUTH_METHOD=trust to allow connections without one)" >&2
        exit 1
    fi

    mkdir -p "$PGDATA"
    if [ ! -O "$PGDATA" ]; then
        echo "error: $PGDATA is not owned by $(id -un) (uid $(id -u))" >&2
        exit 1
    fi
    chmod 700 "$PGDATA"

    echo "initializing database cluster in $PGDATA"
    pwfile="$(mktemp)"
    trap 'rm -f "$pwfile"' EXIT
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of words
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-host=scram-sha-256 --auth-local=trust $POSTGRES_INITDB_ARGS
    rm -f "$pwfile"
    trap - EXIT

    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

    # Temporary server: no TCP, and its socket in a private directory, so
    # health checks (pg_isready) and clients only see the final server.
    initsock="$(mktemp -d)"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$initsock" -w start
    export PGHOST="$initsock"   # also for /docker-entrypoint-initdb.d/*.sh
    psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
    if [ -z "$("${psql[@]}" -tA -v db="$POSTGRES_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db'")" ]; then
        "${psql[@]}" -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        [ -f "$f" ] || continue
        case "$f" in
            *.sh) echo "running $f"; bash "$f" ;;
            *.sql) echo "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *) echo "ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGHOST
    rmdir "$initsock"
    echo "database cluster ready"
fi

exec postgres "$@"
