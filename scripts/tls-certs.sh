#!/usr/bin/env bash
# Makes a private CA and one server certificate for Redis and Postgres (compose.tls.yml),
# with openssl; the CA certificate is what extra worker hosts need (compose.workers.yml).
#
#   bash scripts/tls-certs.sh [DIR] [NAME ...]     # DIR: $TLS_DIR or ./tls
#
# The server certificate's subjectAltName holds the service names (redis, postgres),
# localhost, 127.0.0.1 and each NAME: every DNS name or IP address by which another host
# reaches this one (an IP address is recognised as such). A client with
# REDIS_TLS / POSTGRES_SSLMODE=verify-full checks the name it dials against this list.
#
# Files: ca.crt (give it to clients), ca.key (0600: keep it; it signs more certificates),
# server.crt, server.key. Existing files are kept (delete server.* to re-issue with new
# names; the CA stays). The directory is 0700; server.key is 0644 because the Redis and
# Postgres containers read it as their own non-root users (Compose bind-mounts it
# unchanged; compose.tls.yml copies it to a 0600 file for Postgres). Never commit DIR.
set -euo pipefail
dir="${1:-${TLS_DIR:-./tls}}"
[ "$#" -gt 0 ] && shift
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"

#: Days a certificate is valid: the CA ten years, the server 825 days (what browsers and
#: Apple platforms accept at most; other clients do not care).
ca_days=3650
server_days=825

if [ ! -s ca.key ] || [ ! -s ca.crt ]; then
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
        -days "$ca_days" -subj "/CN=celeryref private CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout ca.key -out ca.crt 2>/dev/null
    chmod 600 ca.key
    chmod 644 ca.crt
    echo "created $dir/ca.crt (and ca.key)"
fi

if [ ! -s server.key ] || [ ! -s server.crt ]; then
    san="DNS:redis,DNS:postgres,DNS:localhost,IP:127.0.0.1"
    for name in "$@"; do
        if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then
            san="$san,IP:$name"
        else
            san="$san,DNS:$name"
        fi
    done
    extensions="$(mktemp)"
    trap 'rm -f "$extensions" server.csr' EXIT
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=$san" >"$extensions"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
        -subj "/CN=celeryref" -keyout server.key -out server.csr 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
        -days "$server_days" -extfile "$extensions" -out server.crt 2>/dev/null
    rm -f ca.srl
    chmod 644 server.key server.crt
    echo "created $dir/server.crt for $san"
fi
