#!/usr/bin/env bash
# Creates the secret files of the production profile (compose.prod.yml) that are missing:
#
#   bash scripts/prod-secrets.sh [DIR]      # DIR: $SECRETS_DIR or ./secrets
#
# One random value per file (32 URL-safe characters, no trailing newline); Flower's
# file holds "admin:<random>". Existing files are kept, so running it again changes
# nothing. The directory is 0700 (other host users cannot reach the files); the files
# are 0644 because each container reads its own as its own non-root user (Compose
# bind-mounts them unchanged outside Swarm).
# redis_keda_password: KEDA's read-only Redis user, Kubernetes only (deploy/k8s).
set -euo pipefail
dir="${1:-${SECRETS_DIR:-./secrets}}"
mkdir -p "$dir"
chmod 700 "$dir"

random() { head -c 24 /dev/urandom | base64 | tr '+/' '-_'; }

for name in redis_worker_password redis_api_password redis_beat_password \
    redis_flower_password redis_ops_password postgres_superuser_password postgres_owner_password \
    postgres_app_password api_token flower_basic_auth redis_keda_password; do
    file="$dir/$name"
    [ -s "$file" ] && continue
    value="$(random)"
    [ "$name" = flower_basic_auth ] && value="admin:$value"
    printf '%s' "$value" >"$file"
    chmod 644 "$file"
    echo "created $file"
done
