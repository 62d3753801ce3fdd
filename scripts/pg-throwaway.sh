#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests.
#
#   scripts/pg-throwaway.sh start   # initdb + start on a free port; prints the URL
#   scripts/pg-throwaway.sh url     # prints postgres://postgres@127.0.0.1:PORT/postgres
#   scripts/pg-throwaway.sh stop    # stops the server and deletes its data
#
# The cluster lives in a temporary directory owned by the `postgres` user
# (initdb refuses to run as root, so when run as root every server command goes
# through `runuser -u postgres --`). It listens on 127.0.0.1 only, uses trust
# authentication and runs with fsync off: it is for tests and nothing else.
# VNA_PG_DURABLE=1 starts it durable instead (fsync, synchronous commit and full page writes
# on, PostgreSQL's defaults), for benchmarks that compare acknowledged, durable stores.
# The state (data dir, port) is kept in $VNA_PG_STATE_DIR (default
# <repo>/.test-env/pg) so that `url` and `stop` find the cluster again.
# Needs Debian's `postgresql` package (scripts/test.sh installs it).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="${VNA_PG_STATE_DIR:-$repo_root/.test-env/pg}"
state_file="$state_dir/cluster.env"

die() { echo "pg-throwaway: $*" >&2; exit 1; }

find_bindir() {
    local d
    if [[ -n "${VNA_PG_BINDIR:-}" ]]; then
        [[ -x "$VNA_PG_BINDIR/initdb" ]] || die "VNA_PG_BINDIR=$VNA_PG_BINDIR has no initdb"
        echo "$VNA_PG_BINDIR"; return
    fi
    # Debian keeps the server binaries out of PATH, one directory per major version.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then echo "$d"; return; fi
    done
    if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
        dirname "$(command -v pg_ctl)"; return
    fi
    die "no PostgreSQL server binaries found (apt-get install postgresql)"
}

# Run a command as the postgres user when we are root; as ourselves otherwise.
as_pg() {
    if [[ "$(id -u)" -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "user 'postgres' does not exist (apt-get install postgresql)"
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

load_state() {
    [[ -f "$state_file" ]] || return 1
    # shellcheck disable=SC1090
    source "$state_file"
    [[ -n "${PG_DIR:-}" && -n "${PG_PORT:-}" && -n "${PG_BINDIR:-}" ]]
}

is_running() {
    load_state && [[ -d "$PG_DIR/data" ]] && as_pg "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1
}

url() {
    load_state || die "no cluster (run: $0 start)"
    echo "postgres://postgres@127.0.0.1:$PG_PORT/postgres"
}

stop() {
    if load_state; then
        if [[ -d "$PG_DIR/data" ]]; then
            as_pg "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
        fi
        case "$PG_DIR" in
            */vna-pg.*) rm -rf -- "$PG_DIR" ;;
            *) echo "pg-throwaway: refusing to delete unexpected dir '$PG_DIR'" >&2 ;;
        esac
        rm -f -- "$state_file"
        echo "pg-throwaway: stopped and removed $PG_DIR" >&2
    fi
}

start() {
    if is_running; then
        echo "pg-throwaway: already running ($PG_DIR)" >&2
        url
        return
    fi
    stop # clean up a stale state, if any

    local bindir pgdir port attempt
    bindir="$(find_bindir)"
    # Not $TMPDIR: the postgres user must be able to reach it.
    pgdir="$(mktemp -d "${VNA_PG_TMPDIR:-/tmp}/vna-pg.XXXXXXXX")"
    chmod 0755 "$pgdir"
    if [[ "$(id -u)" -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || { rm -rf -- "$pgdir"; die "user 'postgres' does not exist (apt-get install postgresql)"; }
        chown postgres:postgres "$pgdir"
    fi
    mkdir -p "$state_dir"
    # Written before initdb so that `stop` can clean up after a failed start.
    printf 'PG_DIR=%q\nPG_PORT=%q\nPG_BINDIR=%q\n' "$pgdir" 0 "$bindir" >"$state_file"

    if ! as_pg "$bindir/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --no-locale \
            --no-sync --no-instructions >"$pgdir/initdb.log" 2>&1; then
        cat "$pgdir/initdb.log" >&2
        stop
        die "initdb failed"
    fi

    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        printf 'PG_DIR=%q\nPG_PORT=%q\nPG_BINDIR=%q\n' "$pgdir" "$port" "$bindir" >"$state_file"
        local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        [[ ${VNA_PG_DURABLE:-0} == 1 ]] && durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
        if as_pg "$bindir/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 \
                -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$pgdir \
                    $durability -c max_connections=300 -c shared_buffers=64MB" start >/dev/null; then
            echo "pg-throwaway: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $pgdir" >&2
            url
            return
        fi
        echo "pg-throwaway: start on port $port failed (attempt $attempt):" >&2
        tail -n 20 "$pgdir/server.log" >&2 || true
    done
    stop
    die "could not start PostgreSQL"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url) url ;;
    status) if is_running; then url; else echo "pg-throwaway: not running" >&2; exit 1; fi ;;
    *) echo "usage: $0 start|stop|url|status" >&2; exit 2 ;;
esac
