#!/bin/sh
# Starts the trial's Redis with one ACL user per role (docker/prod/redis-start.sh, for
# every role that has a password file, KEDA's included):
#
#   sh /etc/celeryref/redis-start.sh [redis-server options...]
#
# Renders /etc/celeryref/redis-users.acl (a copy of docker/prod/redis-users.acl) and
# keda-user.acl into /tmp: comment and blank lines dropped, each @ROLE@ replaced by "#"
# + the SHA-256 of /run/secrets/redis_<role>_password, so no password is written
# anywhere. A placeholder without its file stays and Redis refuses the file.
set -eu
umask 077
aclfile=/tmp/redis-users.acl
script=""
for file in /run/secrets/redis_*_password; do
    role="${file#/run/secrets/redis_}"
    role="$(printf '%s' "${role%_password}" | tr '[:lower:]' '[:upper:]')"
    hash="$(printf '%s' "$(cat "$file")" | sha256sum | cut -d' ' -f1)"
    script="${script}s/@${role}@/#${hash}/;"
done
cat /etc/celeryref/redis-users.acl /etc/celeryref/keda-user.acl |
    sed -e '/^#/d' -e '/^[[:space:]]*$/d' -e "$script" >"$aclfile"
exec redis-server "$@" --aclfile "$aclfile"
