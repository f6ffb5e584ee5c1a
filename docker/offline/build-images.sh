#!/usr/bin/env bash
# build-images.sh — build local stand-ins for the python/redis/postgres base
# images from Debian bookworm packages, for machines that cannot pull from any
# container registry (but can reach a Debian mirror and PyPI).
#
#   celeryref/debian:bookworm        debootstrap --variant=minbase + docker import
#   celeryref/python:3.11-bookworm   Dockerfile.python   (stands in for python:3.12-slim)
#   celeryref/redis:7.0-bookworm     Dockerfile.redis    (stands in for redis:7)
#   celeryref/postgres:15-bookworm   Dockerfile.postgres (stands in for postgres:16)
#
# Usage: docker/offline/build-images.sh [--force] [--force-base]
#   --force       rebuild the three derived images even if they exist
#                 (without the build cache, so packages are fetched anew)
#   --force-base  also re-create celeryref/debian:bookworm with debootstrap
#
# Idempotent: an image is (re)built only if it is missing, or if its inputs
# (Dockerfile, entrypoint, base image, trusted host CAs) changed since it was
# built — recorded in the label org.celeryref.inputs-sha256.
#
# The Debian mirror is read from this machine's apt sources (never hard-coded);
# override with DEBIAN_MIRROR=... (and DEBIAN_SECURITY_MIRROR=...).
# CA certificates the host trusts beyond Debian's own set (e.g. the CA of a
# TLS-intercepting proxy, found in $HOST_CA_BUNDLE, default
# /etc/ssl/certs/ca-certificates.crt) are copied into a temporary build
# context at run time and trusted inside the images; nothing is written to
# the repository.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

BASE_IMAGE=celeryref/debian:bookworm
PYTHON_IMAGE=celeryref/python:3.11-bookworm
REDIS_IMAGE=celeryref/redis:7.0-bookworm
POSTGRES_IMAGE=celeryref/postgres:15-bookworm
SUITE=bookworm
HOST_CA_BUNDLE="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
WORK_PARENT="${BUILD_TMPDIR:-/var/tmp}"   # debootstrap needs exec/dev-capable storage
INPUTS_LABEL=org.celeryref.inputs-sha256

FORCE=0
FORCE_BASE=0
FORCE_NO_CACHE=""   # non-empty: docker build --no-cache (fresh packages)
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1; FORCE_NO_CACHE=1 ;;
        --force-base) FORCE=1; FORCE_BASE=1; FORCE_NO_CACHE=1 ;;
        -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

log() { echo "build-images: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# All temporary files live in one work directory, removed on exit. A
# debootstrap target may still have /proc etc. mounted if debootstrap failed,
# so those are unmounted (deepest first) before removal.
WORK=""
cleanup() {
    local mnt
    [ -n "$WORK" ] && [ -d "$WORK" ] || return 0
    awk -v root="$WORK/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK_PARENT"
WORK="$(mktemp -d "$WORK_PARENT/celeryref-offline.XXXXXX")"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_label() {
    docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}
image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
# Images replaced by this run (IDs); removed at the end if nothing is tagged
# with them any more, so repeated --force runs don't pile up dangling images.
# Removal is best effort: an image still used by a container (or by an older
# image built on it) stays, as `docker image rm` without --force refuses.
REPLACED_IDS=()
note_replaced() { [ -n "$1" ] && REPLACED_IDS+=("$1"); return 0; }
drop_replaced() {
    local i id
    # Newest first: derived images before the base they were built on.
    for ((i = ${#REPLACED_IDS[@]} - 1; i >= 0; i--)); do
        id="${REPLACED_IDS[i]}"
        if [ "$(docker image inspect --format '{{len .RepoTags}}' "$id" 2>/dev/null)" = 0 ]; then
            docker image rm "$id" >/dev/null 2>&1 || log "kept old image ${id:7:12} (still in use)"
        fi
    done
}

# Print the first URI of the apt source that serves suite $1, read from the
# deb822 *.sources files (debian.sources first), then from one-line *.list files.
apt_uri_for_suite() {
    local suite="$1" f uri=""
    local sources=()
    [ -f /etc/apt/sources.list.d/debian.sources ] && sources+=(/etc/apt/sources.list.d/debian.sources)
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && [ "$f" != /etc/apt/sources.list.d/debian.sources ] && sources+=("$f")
    done
    for f in "${sources[@]+"${sources[@]}"}"; do
        # Paragraph mode: one stanza per record; comment lines are skipped.
        uri="$(awk -v suite="$suite" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; suites = ""; uris = ""; enabled = "yes"
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^[ \t]*#/) continue
                    if (line ~ /^Types:/)   { sub(/^Types:[ \t]*/, "", line);   types = line }
                    if (line ~ /^Suites:/)  { sub(/^Suites:[ \t]*/, "", line);  suites = line }
                    if (line ~ /^URIs:/)    { sub(/^URIs:[ \t]*/, "", line);    uris = line }
                    if (line ~ /^Enabled:/) { sub(/^Enabled:[ \t]*/, "", line); enabled = line }
                }
                if (enabled == "no" || (" " types " ") !~ / deb /) next
                if ((" " suites " ") ~ (" " suite " ")) { split(uris, u, /[ \t]+/); print u[1]; exit }
            }' "$f")"
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [options] URI SUITE COMPONENTS...
        uri="$(awk -v suite="$suite" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }' "$f")"
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    return 1
}

# Write to directory $1 one file per CA certificate found in $HOST_CA_BUNDLE
# that Debian's ca-certificates package does not ship (compared by body with
# the host's /usr/share/ca-certificates). On a host without such a directory,
# every certificate of the bundle is kept (duplicates are harmless).
extract_host_extra_cas() {
    local outdir="$1"
    mkdir -p "$outdir"
    [ -r "$HOST_CA_BUNDLE" ] || { log "no $HOST_CA_BUNDLE; trusting no extra CA"; return 0; }
    local known=()
    if [ -d /usr/share/ca-certificates ]; then
        mapfile -t known < <(find /usr/share/ca-certificates -name '*.crt' -type f | sort)
    fi
    awk -v bundle="$HOST_CA_BUNDLE" -v outdir="$outdir" '
        { sub(/\r$/, "") }
        /-----BEGIN CERTIFICATE-----/ { inblk = 1; pem = ""; body = "" }
        inblk { pem = pem $0 "\n"; if ($0 !~ /^-----/) body = body $0 }
        inblk && /-----END CERTIFICATE-----/ {
            inblk = 0
            if (FILENAME != bundle) { known[body] = 1 }
            else if (!(body in known) && !(body in seen)) {
                seen[body] = 1; n++
                printf "%s", pem > (outdir "/host-extra-ca-" n ".crt")
                close(outdir "/host-extra-ca-" n ".crt")
            }
        }' "${known[@]+"${known[@]}"}" "$HOST_CA_BUNDLE"
}

# ---------------------------------------------------------------------------
# 1. celeryref/debian:bookworm — minimal Debian root file system via debootstrap
# ---------------------------------------------------------------------------
build_base() {
    if image_exists "$BASE_IMAGE" && [ "$FORCE_BASE" -eq 0 ]; then
        log "$BASE_IMAGE exists (use --force-base to re-create it)"
        return 0
    fi
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
    fi
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"

    local mirror security rootfs old_id start=$SECONDS
    old_id="$(image_id "$BASE_IMAGE")"
    mirror="${DEBIAN_MIRROR:-$(apt_uri_for_suite "$SUITE" || true)}"
    [ -n "$mirror" ] || die "no apt source for '$SUITE' found in /etc/apt; set DEBIAN_MIRROR"
    security="${DEBIAN_SECURITY_MIRROR:-$(apt_uri_for_suite "$SUITE-security" || true)}"

    rootfs="$WORK/rootfs"
    log "debootstrap --variant=minbase $SUITE (mirror from apt sources) -> $rootfs"
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 || {
        tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

    # apt sources inside the image: the same mirror(s) as this host.
    rm -f "$rootfs/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$mirror" "$SUITE" "$SUITE"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        if [ -n "$security" ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security" "$SUITE"
            printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        fi
    } >"$rootfs/etc/apt/sources.list.d/debian.sources"

    # Container conventions (as in the official debian image): services are
    # never started by package scripts, apt keeps no caches or translations.
    printf '#!/bin/sh\n# no services in containers\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 755 "$rootfs/usr/sbin/policy-rc.d"
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
    echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"

    # Drop host-specific and cache files; docker provides resolv.conf/hosts/hostname.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log "$rootfs"/tmp/*
    : >"$rootfs/etc/resolv.conf"
    : >"$rootfs/etc/hostname"
    : >"$rootfs/etc/machine-id"

    log "importing $BASE_IMAGE"
    tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["bash"]' \
            - "$BASE_IMAGE" >/dev/null
    note_replaced "$old_id"
    log "$BASE_IMAGE done in $((SECONDS - start))s"
}

# ---------------------------------------------------------------------------
# 2. Images built with docker build from docker/offline/Dockerfile.<name>
# ---------------------------------------------------------------------------
# Shared build-context pieces: the host's CA bundle (lets apt reach an https
# mirror through the proxy before ca-certificates is installed) and the extra
# CAs to trust permanently (host-ca/*.crt).
CA_DIR=""
prepare_ca() {
    CA_DIR="$WORK/ca"
    mkdir -p "$CA_DIR"
    extract_host_extra_cas "$CA_DIR/host-ca"
    if [ -r "$HOST_CA_BUNDLE" ]; then
        cp "$HOST_CA_BUNDLE" "$CA_DIR/host-ca-bundle.crt"
    else
        : >"$CA_DIR/host-ca-bundle.crt"
    fi
    log "trusting $(find "$CA_DIR/host-ca" -name '*.crt' | wc -l) CA certificate(s) from the host beyond Debian's set"
}

# build_image IMAGE DOCKERFILE [EXTRA_FILE...]
build_image() {
    local image="$1" dockerfile="$2"
    shift 2
    local ctx f inputs current old_id start=$SECONDS
    ctx="$WORK/context-${dockerfile#Dockerfile.}"
    mkdir -p "$ctx"
    cp "$HERE/$dockerfile" "$ctx/Dockerfile"
    for f in "$@"; do cp "$HERE/$f" "$ctx/"; done
    cp -r "$CA_DIR/host-ca" "$CA_DIR/host-ca-bundle.crt" "$ctx/"

    # Fingerprint of everything the image is made from (bundle excluded: it
    # only matters during the build, and Debian's part of it changes often).
    inputs="$( {
        docker image inspect --format '{{.Id}}' "$BASE_IMAGE"
        cd "$ctx" && find . -type f ! -name host-ca-bundle.crt | LC_ALL=C sort | xargs sha256sum
    } | sha256sum | cut -c1-64)"

    if image_exists "$image" && [ "$FORCE" -eq 0 ]; then
        current="$(image_label "$image" "$INPUTS_LABEL")"
        if [ "$current" = "$inputs" ]; then
            log "$image is up to date"
            return 0
        fi
        log "$image exists but its inputs changed; rebuilding"
    fi

    log "building $image from $dockerfile"
    old_id="$(image_id "$image")"
    # The legacy builder (no buildx needed) and BuildKit both handle these files.
    local build=(docker build
        ${BUILD_NETWORK:+--network "$BUILD_NETWORK"}
        --build-arg "BASE_IMAGE=$BASE_IMAGE"
        --label "$INPUTS_LABEL=$inputs"
        ${FORCE_NO_CACHE:+--no-cache}
        --tag "$image"
        "$ctx")
    if [ "${VERBOSE:-0}" = 1 ]; then
        "${build[@]}" >&2 || die "docker build of $image failed"
    else
        # Quiet unless it fails; VERBOSE=1 shows the whole build.
        "${build[@]}" >"$ctx.log" 2>&1 || {
            tail -n 40 "$ctx.log" >&2
            die "docker build of $image failed"; }
    fi
    note_replaced "$old_id"
    log "$image done in $((SECONDS - start))s"
}

docker info >/dev/null 2>&1 || die "Docker engine not reachable (run scripts/ensure-docker.sh first)"

total_start=$SECONDS
build_base
prepare_ca
build_image "$PYTHON_IMAGE" Dockerfile.python
build_image "$REDIS_IMAGE" Dockerfile.redis
build_image "$POSTGRES_IMAGE" Dockerfile.postgres postgres-entrypoint.sh
drop_replaced
log "all images ready in $((SECONDS - total_start))s"

echo "$PYTHON_IMAGE"
echo "$REDIS_IMAGE"
echo "$POSTGRES_IMAGE"
