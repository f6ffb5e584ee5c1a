#!/bin/sh
# Starts Redis in the production profile (compose.prod.yml) with one ACL user per role.
#
#   sh /etc/celeryref/redis-start.sh [redis-server options...]
#
# Renders /etc/celeryref/redis-users.acl (comment lines dropped, each @ROLE@ replaced by
# "#" + the SHA-256 of /run/secrets/redis_<role>_password, so no password is written
# anywhere) into /tmp (a tmpfs: the root filesystem is read-only) and execs
# redis-server with the options given and that file as its aclfile. A password file's
# trailing newline is ignored, as the Python services ignore it (REDIS_PASSWORD_FILE).
set -eu
umask 077
template=/etc/celeryref/redis-users.acl
aclfile=/tmp/redis-users.acl

hash() {
    printf '%s' "$(cat "/run/secrets/redis_$1_password")" | sha256sum | cut -d' ' -f1
}

sed -e '/^#/d' -e '/^[[:space:]]*$/d' \
    -e "s/@WORKER@/#$(hash worker)/" \
    -e "s/@API@/#$(hash api)/" \
    -e "s/@BEAT@/#$(hash beat)/" \
    -e "s/@FLOWER@/#$(hash flower)/" \
    -e "s/@OPS@/#$(hash ops)/" \
    "$template" >"$aclfile"
exec redis-server "$@" --aclfile "$aclfile"
