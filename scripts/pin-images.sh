#!/usr/bin/env bash
# Pins the base images by digest for the production profile (needs a reachable registry):
#
#   bash scripts/pin-images.sh     # writes docker/prod/images.env; `make up-prod` reads it
#
# Pulls each official image the compose file defaults to and records its repository
# digest, e.g. REDIS_IMAGE=redis:7.0-bookworm@sha256:...; Docker then pulls exactly that
# image whatever the tag points to later. Commit the file; run again to update. Offline
# (OFFLINE=1, docker/offline/) the stand-ins are used instead and this file is ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
out=docker/prod/images.env
declare -A images=(
    [PYTHON_IMAGE]=python:3.11-slim-bookworm
    [REDIS_IMAGE]=redis:7.0-bookworm
    [POSTGRES_IMAGE]=postgres:15-bookworm
)
{
    echo "# Base images pinned by digest on $(date -u +%Y-%m-%d) by scripts/pin-images.sh."
    for variable in PYTHON_IMAGE REDIS_IMAGE POSTGRES_IMAGE; do
        image="${images[$variable]}"
        docker pull --quiet "$image" >/dev/null
        digest="$(docker image inspect --format '{{index .RepoDigests 0}}' "$image")"
        echo "$variable=$image@${digest#*@}"
    done
} >"$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
