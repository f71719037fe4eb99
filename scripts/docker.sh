#!/usr/bin/env bash
# The Docker engine and the image registry for wisp's runtime images.
#
#   scripts/docker.sh start   start a Docker engine unless one answers, and a
#                             registry on 127.0.0.1:5000 unless one answers;
#                             wait until both do
#   scripts/docker.sh stop    stop what `start` started, and nothing else
#   scripts/docker.sh env     print the variables the tests read:
#                             eval "$(scripts/docker.sh env)"
#
# The engine runs as `dockerd --bridge=none --iptables=false` on the usual
# socket (or DOCKER_HOST when set to a unix:// address); the registry is
# Debian's docker-registry with its own configuration, storing images under
# the state directory. WISP_REGISTRY_PORT picks the registry's port (default
# 5000); WISP_STATE_DIR the state directory (default ~/.wisp/services), where
# the logs, the pid files and the registry's data live. An engine or a
# registry that already answers is reused as it is and never stopped here.
set -euo pipefail

port="${WISP_REGISTRY_PORT:-5000}"
state="${WISP_STATE_DIR:-$HOME/.wisp/services}"
docker_dir="$state/docker"
registry_dir="$state/registry-$port"
docker_pidfile="$docker_dir/dockerd.pid"
docker_log="$docker_dir/dockerd.log"
registry_pidfile="$registry_dir/pid"
registry_log="$registry_dir/log"
registry_config="$registry_dir/config.yml"
registry="127.0.0.1:$port"
socket_url="${DOCKER_HOST:-unix:///var/run/docker.sock}"

die() {
    echo "docker: $*" >&2
    exit 1
}

case "$port" in
'' | *[!0-9]*) die "WISP_REGISTRY_PORT must be a port number, not \`$port\`" ;;
esac

# The pid in a pid file, if that process still runs the given program with
# the given argument (the same pid could belong to another process by now).
our_pid() {
    local pidfile=$1 program=$2 marker=$3 pid
    [ -f "$pidfile" ] || return 1
    pid="$(cat "$pidfile")"
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$program.*$marker" || return 1
    echo "$pid"
}

# Whether a Docker engine answers at DOCKER_HOST or the default socket.
engine_answers() {
    if command -v docker >/dev/null 2>&1; then
        DOCKER_HOST="$socket_url" timeout 5 docker info >/dev/null 2>&1
    else
        case "$socket_url" in
        unix://*)
            curl -sf --max-time 2 --unix-socket "${socket_url#unix://}" \
                http://localhost/_ping >/dev/null 2>&1
            ;;
        *) curl -sf --max-time 2 "${socket_url/tcp:/http:}/_ping" >/dev/null 2>&1 ;;
        esac
    fi
}

# Whether a registry answers its API at the port (200, or 401 when it asks
# for credentials).
registry_answers() {
    local code
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$registry/v2/" 2>/dev/null)" || true
    [ "$code" = 200 ] || [ "$code" = 401 ]
}

# Waits up to $2 seconds for process $1 to live on and $3 to succeed.
wait_for() {
    local pid=$1 seconds=$2 check=$3
    for _ in $(seq $((seconds * 5))); do
        kill -0 "$pid" 2>/dev/null || return 1
        "$check" && return 0
        sleep 0.2
    done
    return 1
}

# Stops the process in a pid file, if it is still ours; $4 is how long it
# may take to exit before it is killed.
stop_pid() {
    local pidfile=$1 program=$2 marker=$3 seconds=$4 name=$5 pid
    if ! pid="$(our_pid "$pidfile" "$program" "$marker")"; then
        rm -f "$pidfile"
        echo "docker: nothing started here runs as $name; nothing to stop"
        return
    fi
    kill "$pid"
    for _ in $(seq $((seconds * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    echo "docker: $name stopped (pid $pid)"
}

start_engine() {
    local pid
    if engine_answers; then
        if pid="$(our_pid "$docker_pidfile" dockerd "$docker_dir")"; then
            echo "docker: engine already running at $socket_url (pid $pid)"
        else
            echo "docker: an engine already answers at $socket_url; using it"
        fi
        return
    fi
    if pid="$(our_pid "$docker_pidfile" dockerd "$docker_dir")"; then
        die "the engine started here (pid $pid) runs but does not answer at $socket_url; see $docker_log, or run \`$0 stop\` and start again"
    fi
    command -v dockerd >/dev/null 2>&1 ||
        die "no Docker engine answers at $socket_url and dockerd is not installed: install Debian's docker.io package (apt-get install docker.io), or set DOCKER_HOST to an engine that runs"
    case "$socket_url" in
    unix://*) ;;
    *) die "no Docker engine answers at DOCKER_HOST=$socket_url; start it there, or unset DOCKER_HOST to start one on the local socket" ;;
    esac
    [ "$(id -u)" = 0 ] || die "no Docker engine answers at $socket_url, and starting dockerd needs root: run \`sudo $0 start\`"
    mkdir -p "$docker_dir"
    # Its own session, so that the engine outlives this script and the
    # terminal it ran in. The exec-root marks the process as ours.
    setsid dockerd --bridge=none --iptables=false --host="$socket_url" \
        --pidfile="$docker_pidfile.dockerd" --exec-root="$docker_dir/exec" \
        >"$docker_log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$docker_pidfile"
    if wait_for "$pid" 60 engine_answers; then
        echo "docker: engine answers at $socket_url (pid $pid, log in $docker_log)"
        return
    fi
    kill "$pid" 2>/dev/null || true
    rm -f "$docker_pidfile"
    echo "docker: dockerd did not answer at $socket_url within 60 s; the end of its log ($docker_log):" >&2
    tail -n 20 "$docker_log" >&2 || true
    exit 1
}

start_registry() {
    local pid
    if registry_answers; then
        if pid="$(our_pid "$registry_pidfile" docker-registry "$registry_config")"; then
            echo "docker: registry already running at $registry (pid $pid)"
        else
            echo "docker: a registry already answers at $registry; using it"
        fi
        return
    fi
    if pid="$(our_pid "$registry_pidfile" docker-registry "$registry_config")"; then
        die "the registry started here (pid $pid) runs but does not answer at $registry; see $registry_log, or run \`$0 stop\` and start again"
    fi
    command -v docker-registry >/dev/null 2>&1 ||
        die "no registry answers at $registry and docker-registry is not installed: install Debian's docker-registry package (apt-get install docker-registry)"
    mkdir -p "$registry_dir/data"
    cat >"$registry_config" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $registry_dir/data
  delete:
    enabled: true
http:
  addr: $registry
EOF
    setsid docker-registry serve "$registry_config" >"$registry_log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$registry_pidfile"
    if wait_for "$pid" 20 registry_answers; then
        echo "docker: registry answers at http://$registry/v2/ (pid $pid, data in $registry_dir/data)"
        return
    fi
    kill "$pid" 2>/dev/null || true
    rm -f "$registry_pidfile"
    echo "docker: docker-registry did not answer at $registry within 20 s; the end of its log ($registry_log):" >&2
    tail -n 20 "$registry_log" >&2 || true
    exit 1
}

case "${1:-}" in
start)
    start_engine
    start_registry
    echo "docker: for the tests, run: eval \"\$($0 env)\""
    ;;
stop)
    stop_pid "$registry_pidfile" docker-registry "$registry_config" 5 "the registry at $registry"
    stop_pid "$docker_pidfile" dockerd "$docker_dir" 30 "the engine at $socket_url"
    ;;
env)
    echo "export DOCKER_HOST=$socket_url WISP_TEST_REGISTRY=$registry"
    ;;
*)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
