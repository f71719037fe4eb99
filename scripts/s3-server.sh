#!/usr/bin/env bash
# The S3 server for wisp's tests and benchmarks: s3s-fs on 127.0.0.1.
#
#   scripts/s3-server.sh start   install s3s-fs if needed, start it on a fresh
#                                data directory, wait until it answers
#   scripts/s3-server.sh stop    stop the server that `start` started
#   scripts/s3-server.sh env     print the variables the tests read:
#                                eval "$(scripts/s3-server.sh env)"
#
# WISP_S3_PORT picks the port (default 9000). The data, the log and the pid
# live in ${TMPDIR:-/tmp}/wisp-s3-<port>. The credentials are
# minioadmin/minioadmin, as on a fresh MinIO, so the same tests run
# against either.
set -euo pipefail

version=0.14.1
port="${WISP_S3_PORT:-9000}"
base="${TMPDIR:-/tmp}/wisp-s3-$port"
data="$base/data"
pidfile="$base/pid"
log="$base/log"
endpoint="http://127.0.0.1:$port"
access_key=minioadmin
secret_key=minioadmin

die() {
    echo "s3-server: $*" >&2
    exit 1
}

case "$port" in
'' | *[!0-9]*) die "WISP_S3_PORT must be a port number, not \`$port\`" ;;
esac

# The s3s-fs binary: on PATH, in ~/.cargo/bin, or installed now.
binary() {
    if command -v s3s-fs >/dev/null 2>&1; then
        command -v s3s-fs
        return
    fi
    local cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
    if [ ! -x "$cargo_bin" ]; then
        command -v cargo >/dev/null 2>&1 || die "cargo is needed to install s3s-fs"
        echo "s3-server: installing s3s-fs $version (compiles for several minutes, once)" >&2
        cargo install s3s-fs --version "$version" --features binary --locked >&2 ||
            die "could not install s3s-fs $version"
    fi
    echo "$cargo_bin"
}

# The pid that `start` wrote, if that process is still our server.
our_pid() {
    [ -f "$pidfile" ] || return 1
    local pid
    pid="$(cat "$pidfile")"
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    [ -r "/proc/$pid/cmdline" ] || return 1
    # The same pid could belong to another process by now: check that it
    # is s3s-fs serving this data directory.
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "s3s-fs.* $data" || return 1
    echo "$pid"
}

# Whether something answers HTTP on the port (any status will do: an
# unsigned request is refused, but it is answered).
answers() {
    local code
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$endpoint/" 2>/dev/null)" || true
    [ -n "$code" ] && [ "$code" != 000 ]
}

start() {
    local pid
    if pid="$(our_pid)"; then
        if wait_until_answering "$pid"; then
            echo "s3-server: already running at $endpoint (pid $pid)"
            return
        fi
        die "the server (pid $pid) runs but does not answer at $endpoint; see $log, or run \`$0 stop\` and start again"
    fi
    if answers; then
        die "something else already answers at $endpoint; stop it or pick another port with WISP_S3_PORT"
    fi
    local bin
    bin="$(binary)"
    rm -rf "$data"
    mkdir -p "$data"
    # Its own session, so that the server outlives this script and the
    # terminal it ran in.
    setsid "$bin" --host 127.0.0.1 --port "$port" \
        --access-key "$access_key" --secret-key "$secret_key" "$data" \
        >"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$pidfile"
    if wait_until_answering "$pid"; then
        echo "s3-server: s3s-fs $version answers at $endpoint (pid $pid, data in $data)"
        echo "s3-server: for the tests, run: eval \"\$($0 env)\""
        return
    fi
    kill "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    echo "s3-server: s3s-fs did not answer at $endpoint within 20 s; its log ($log):" >&2
    cat "$log" >&2 || true
    exit 1
}

# Waits up to 20 s for the server with this pid to answer.
wait_until_answering() {
    local pid=$1
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 1
        answers && return 0
        sleep 0.2
    done
    return 1
}

stop() {
    local pid
    if ! pid="$(our_pid)"; then
        rm -f "$pidfile"
        echo "s3-server: not running on port $port"
        return
    fi
    kill "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    rm -rf "$data"
    echo "s3-server: stopped (pid $pid)"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env)
    echo "export WISP_TEST_S3_ENDPOINT=$endpoint WISP_TEST_S3_ACCESS_KEY=$access_key WISP_TEST_S3_SECRET_KEY=$secret_key"
    ;;
*)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
