#!/usr/bin/env bash
# Start or stop a Docker engine for building the images and running steps in them (CI, a dev box).
#
#   images/engine.sh start   # install docker.io (Debian packages) where missing, start dockerd
#                            # unless an engine is reachable already; waits until it answers
#   images/engine.sh stop    # stop the engine `start` started (and only that one)
#
# The engine runs without a bridge network (--bridge=none, no iptables rules): builds and
# containers use the host network (`--network host`), so they reach exactly what the host
# reaches (the loopback object store, the package registries). Needs root to install and start.
#
# Environment: SAEMERGE_ENGINE_STATE  where start keeps the engine's pid and log
#              (default /tmp/saemerge-engine)
set -euo pipefail

state=${SAEMERGE_ENGINE_STATE:-/tmp/saemerge-engine}
die() { echo "images/engine.sh: $1" >&2; exit "${2:-1}"; }

reachable() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

start() {
    if reachable; then
        echo "container engine: already running"
        return 0
    fi
    [ "$(id -u)" = 0 ] || die "no container engine is running, and starting one needs root" 3
    if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 || die "no dockerd, and no apt-get to install docker.io" 3
        echo "installing docker.io and debootstrap (Debian packages) ..."
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null \
            || die "apt-get install docker.io debootstrap failed" 3
    fi
    mkdir -p "$state"
    # setsid: its own session, so the caller's Ctrl-C or SIGINT-ignoring shell does not reach it.
    setsid dockerd --bridge=none --iptables=false --ip6tables=false </dev/null >"$state/dockerd.log" 2>&1 &
    echo $! >"$state/dockerd.pid"
    for _ in $(seq 60); do
        if reachable; then
            echo "container engine: started (dockerd pid $(cat "$state/dockerd.pid"), log $state/dockerd.log)"
            return 0
        fi
        kill -0 "$(cat "$state/dockerd.pid")" 2>/dev/null || break
        sleep 1
    done
    tail -n 5 "$state/dockerd.log" >&2 || true
    stop >/dev/null 2>&1 || true
    die "dockerd did not start (log above)" 3
}

stop() {
    [ -f "$state/dockerd.pid" ] || { echo "container engine: none started here"; return 0; }
    pid=$(cat "$state/dockerd.pid")
    rm -f "$state/dockerd.pid"
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]; then  # a stale pid may be another process now
        echo "container engine: dockerd $pid is gone already"
        return 0
    fi
    kill -TERM "$pid"
    # dockerd stops its containers and its containerd before it exits
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    echo "container engine: stopped (dockerd pid $pid)"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) die "usage: images/engine.sh start|stop" 2 ;;
esac
