#!/usr/bin/env bash
# A throw-away S3 endpoint for the tests: a single-node Ceph cluster (one
# monitor, one OSD, no manager) with a RADOS Gateway in front of it.
#
#   scripts/s3-throwaway.sh start   # builds a new cluster; prints the env lines
#   scripts/s3-throwaway.sh env     # prints the env lines again
#   scripts/s3-throwaway.sh stop    # kills the daemons and deletes the cluster
#
# `start` prints exactly these lines on stdout (progress goes to stderr):
#
#   VNA_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
#   VNA_TEST_S3_ACCESS_KEY=...
#   VNA_TEST_S3_SECRET_KEY=...
#   VNA_TEST_S3_REGION=us-east-1
#
# so `set -a; eval "$(scripts/s3-throwaway.sh start)"; set +a` exports them.
# Use path-style addressing. Bucket names follow the S3 rules (3 to 63
# characters). radosgw 16 does not understand aws-chunked uploads with trailing
# checksums (STREAMING-UNSIGNED-PAYLOAD-TRAILER: XAmzContentSHA256Mismatch):
# clients must compute checksums "when required" only.
#
# Every `start` makes a brand-new cluster in a fresh directory (fsid, cluster
# name and ports are new each time): the monitor (msgr v2 and v1), the OSD and
# the gateway (beast) listen on 127.0.0.1 only, authentication between the
# daemons is off (auth_*_required = none; S3 requests are still signed and
# checked), pools have a single replica, and the OSD keeps its data in
# BlueStore on a sparse 20 GiB file. Lifecycle rules run every few seconds
# (rgw_lc_debug_interval = 10: one "day" of a rule lasts 10 s). It is for tests
# and nothing else. No systemd: the daemons fork, write pid files and logs
# into the cluster directory, and `stop` kills them from their pid files.
#
# The state (cluster dir and name, gateway port) is kept in $VNA_S3_STATE_DIR
# (default <repo>/.test-env/s3) so that `env` and `stop` find the cluster
# again; the cluster dir is created in $VNA_S3_TMPDIR (default: the state dir;
# it must be on a disk file system that supports O_DIRECT, not tmpfs). Two runs
# with different state dirs can run side by side. `start` gives up after
# $VNA_S3_START_TIMEOUT seconds (default 120) and shows the end of the logs.
#
# Needs Debian's radosgw, ceph-mon and ceph-osd packages: `start` installs
# them with apt-get when they are missing (as root).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="${VNA_S3_STATE_DIR:-$repo_root/.test-env/s3}"
state_file="$state_dir/cluster.env"

# Fixed test credentials: the cluster only ever listens on loopback.
access_key="VNATESTACCESSKEY0001"
secret_key="vna-test-secret-key-0000000000000000000000"
# The gateway checks SigV4 signatures for whatever region the client signs
# with (us-east-1, default, eu-west-1 all work); us-east-1 is the one for which
# S3 clients send no LocationConstraint on CreateBucket.
region="us-east-1"
packages=(radosgw ceph-mon ceph-osd)
start_timeout="${VNA_S3_START_TIMEOUT:-120}"

die() { echo "s3-throwaway: $*" >&2; exit 1; }
say() { echo "s3-throwaway: $*" >&2; }

ensure_packages() {
    local p missing=()
    for p in "${packages[@]}"; do
        if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
            missing+=("$p")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return
    [[ "$(id -u)" -eq 0 ]] || die "missing packages ${missing[*]} (apt-get install ${packages[*]}, as root)"
    say "installing ${packages[*]} (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${packages[@]}" >&2 || die "apt-get install ${packages[*]} failed"
}

# N free TCP ports on 127.0.0.1, one a line (all bound at once, so distinct).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
for s in socks:
    s.close()
EOF
}

load_state() {
    [[ -f "$state_file" ]] || return 1
    # shellcheck disable=SC1090
    source "$state_file"
    [[ -n "${S3_DIR:-}" && -n "${S3_CLUSTER:-}" ]]
}

write_state() {
    mkdir -p "$state_dir"
    printf 'S3_DIR=%q\nS3_CLUSTER=%q\nS3_PORT=%q\n' "$1" "$2" "$3" >"$state_file.tmp"
    mv -f -- "$state_file.tmp" "$state_file"
}

print_env() {
    echo "VNA_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT"
    echo "VNA_TEST_S3_ACCESS_KEY=$access_key"
    echo "VNA_TEST_S3_SECRET_KEY=$secret_key"
    echo "VNA_TEST_S3_REGION=$region"
}

env_lines() {
    load_state && [[ "${S3_PORT:-0}" != 0 ]] || die "no cluster (run: $0 start)"
    print_env
}

# Is $1 a live process started with our cluster's config file?
is_ours() {
    [[ "$1" =~ ^[0-9]+$ ]] && grep -qzxF -- "$2" "/proc/$1/cmdline" 2>/dev/null
}

# Pids of the processes of the cluster in $1: the daemons from their pid
# files, plus any process whose command line names the cluster's config file
# (a daemon that died before writing its pid file, a client tool left hanging).
cluster_pids() {
    local conf="$1/ceph.conf" f pid p
    local -A seen=()
    for f in "$1"/run/*.pid; do
        [[ -f "$f" ]] || continue
        pid="$(cat -- "$f" 2>/dev/null || true)"
        if is_ours "$pid" "$conf" && [[ -z "${seen[$pid]:-}" ]]; then seen[$pid]=1; echo "$pid"; fi
    done
    for p in /proc/[0-9]*; do
        pid="${p#/proc/}"
        [[ "$pid" == "$$" || -n "${seen[$pid]:-}" ]] && continue
        if is_ours "$pid" "$conf"; then seen[$pid]=1; echo "$pid"; fi
    done
}

# Those of the pids $2... that are still processes of the cluster in $1.
still_ours() {
    local conf="$1/ceph.conf" pid; shift
    for pid in "$@"; do is_ours "$pid" "$conf" && echo "$pid"; done
    return 0
}

# Sends SIGTERM to the processes of the cluster in $1, waits up to 3 s, then
# SIGKILLs what is left (radosgw alone takes ~5 s to shut down cleanly, and the
# data is about to be deleted anyway).
kill_cluster() {
    local dir="$1" pids i
    mapfile -t pids < <(cluster_pids "$dir")
    [[ ${#pids[@]} -gt 0 ]] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for i in $(seq 1 30); do
        mapfile -t pids < <(still_ours "$dir" "${pids[@]}")
        [[ ${#pids[@]} -eq 0 ]] && break
        sleep 0.1
    done
    mapfile -t pids < <({ still_ours "$dir" "${pids[@]}"; cluster_pids "$dir"; } | sort -u)
    [[ ${#pids[@]} -gt 0 ]] || return 0
    say "SIGKILL to ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    for i in $(seq 1 50); do
        mapfile -t pids < <(still_ours "$dir" "${pids[@]}")
        [[ ${#pids[@]} -eq 0 ]] && return 0
        sleep 0.1
    done
    say "warning: processes ${pids[*]} still alive"
}

# Kills the radosgw whose pid file is $1 (if it is a process of the cluster
# whose config file is $2).
kill_rgw() {
    local pid i
    pid="$(cat -- "$1" 2>/dev/null || true)"
    is_ours "$pid" "$2" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 30); do is_ours "$pid" "$2" || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 30); do is_ours "$pid" "$2" || return 0; sleep 0.1; done
}

stop() {
    load_state || return 0
    local dir="$S3_DIR"
    case "$dir" in
        */vna-s3.*) ;;
        *) say "refusing to touch unexpected dir '$dir'"; rm -f -- "$state_file"; return 0 ;;
    esac
    if [[ -d "$dir" ]]; then
        kill_cluster "$dir"
        rm -rf -- "$dir"
    fi
    rm -f -- "$state_file"
    say "stopped and removed $dir"
}

# Show the end of the logs of a cluster that failed to come up.
dump_logs() {
    local f
    for f in "$S3_DIR"/log/*.log "$S3_DIR"/*.out; do
        [[ -s "$f" ]] || continue
        echo "----- tail of $f" >&2
        tail -n 25 -- "$f" >&2
    done
}

fail() {
    say "$*"
    dump_logs
    stop
    die "start failed"
}

# Run a step quietly, logging its output to $S3_DIR/$1.out; on failure show it.
step() {
    local name="$1"; shift
    if ! "$@" >"$S3_DIR/$name.out" 2>&1; then
        fail "$name failed: $*"
    fi
}

ceph_cli() { timeout 60 ceph --cluster "$S3_CLUSTER" --conf "$S3_DIR/ceph.conf" --connect-timeout 30 "$@"; }

write_conf() {
    local dir="$1" fsid="$2" mon_v2="$3" mon_v1="$4" rgw_port="$5" asok
    # Unix socket paths are limited to 107 bytes; skip the admin sockets
    # rather than fail when the cluster dir is deep.
    if [[ ${#dir} -le 60 ]]; then asok="$dir/run/\$cluster-\$name.asok"; else asok=""; fi
    cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_v2,v1:127.0.0.1:$mon_v1]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = $dir/keyring
run dir = $dir/run
admin socket = $asok
pid file = $dir/run/\$cluster-\$name.pid
log file = $dir/log/\$cluster-\$name.log
log to stderr = false
err to stderr = false
crash dir = $dir/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
# The monitor shuts itself down when its disk is nearly full; a test box may be.
mon data avail warn = 1
mon data avail crit = 0
mon warn on insecure global id reclaim allowed = false
client mount timeout = 60

[mon]
mon data = $dir/mon/\$cluster-\$id
mon cluster log file = $dir/log/\$cluster.log
# Commit map changes every 0.1 s instead of every 1 s: radosgw creates its
# pools one osdmap epoch at a time, so this cuts its first start from ~9 s to ~2 s.
paxos propose interval = 0.1

[osd]
osd data = $dir/osd/\$cluster-\$id
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 21474836480
bluestore fsck on mount = false
osd memory target = 939524096
osd class load list = *
osd class default list = *

[client.rgw.a]
# radosgw's built-in defaults ask for cephx and a "secure" mon connection,
# which auth "none" cannot provide (the connection fails with EACCES).
auth client required = none
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw data = $dir/rgw
rgw lc debug interval = 10
rgw enable usage log = false
rgw thread pool size = 64
# Server-side encryption for test_s3.py: SSE-KMS with the "testing" key backend, a fixed key
# named vna-test-key (test data only), over plain HTTP on loopback.
rgw crypt require ssl = false
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = vna-test-key=dm5hLXRlc3Qta21zLWtleS1ub3QtZm9yLXVzZS0zMmI=
EOF
}

start() {
    if load_state && [[ "${S3_PORT:-0}" != 0 ]] && [[ -d "$S3_DIR" ]] &&
            curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$S3_PORT/"; then
        say "already running ($S3_DIR)"
        print_env
        return
    fi
    stop # clean up a stale state, if any
    ensure_packages
    command -v python3 >/dev/null || die "python3 is needed (to find free ports)"
    command -v curl >/dev/null || die "curl is needed"

    local t0=$SECONDS deadline=$((SECONDS + start_timeout)) dir cluster fsid osd_uuid ports mon_v2 mon_v1 rgw_port osd_id
    mkdir -p "$state_dir"
    local tmpdir="${VNA_S3_TMPDIR:-$state_dir}"
    mkdir -p "$tmpdir"
    dir="$(mktemp -d "$tmpdir/vna-s3.XXXXXXXX")"
    dir="$(cd "$dir" && pwd)"
    cluster="vna$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
    fsid="$(cat /proc/sys/kernel/random/uuid)"
    osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
    mapfile -t ports < <(free_ports 2)
    mon_v2="${ports[0]}"; mon_v1="${ports[1]}"; rgw_port=0
    # Written before anything starts so that `stop` can clean up after a failed start.
    write_state "$dir" "$cluster" 0
    S3_DIR="$dir"; S3_CLUSTER="$cluster"; S3_PORT=0
    mkdir -p "$dir"/{run,log,crash,mon,osd,rgw}
    : >"$dir/keyring"
    write_conf "$dir" "$fsid" "$mon_v2" "$mon_v1" "$rgw_port"
    local c=(--cluster "$cluster" --conf "$dir/ceph.conf")

    say "cluster $cluster (fsid $fsid) in $dir"
    # Monitor.
    step monmaptool monmaptool --create --fsid "$fsid" \
        --addv a "[v2:127.0.0.1:$mon_v2,v1:127.0.0.1:$mon_v1]" "$dir/monmap"
    step mon-mkfs timeout 90 ceph-mon "${c[@]}" -i a --mkfs --monmap "$dir/monmap"
    step mon-start timeout 90 ceph-mon "${c[@]}" -i a
    step mon-wait ceph_cli mon stat

    # OSD: BlueStore on a sparse file the OSD creates itself.
    osd_id="$(ceph_cli osd new "$osd_uuid" 2>"$dir/osd-new.out")" || fail "ceph osd new failed"
    [[ "$osd_id" =~ ^[0-9]+$ ]] || fail "ceph osd new printed '$osd_id'"
    mkdir -p "$dir/osd/$cluster-$osd_id"
    step osd-mkfs timeout 90 ceph-osd "${c[@]}" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid"
    step osd-start timeout 90 ceph-osd "${c[@]}" -i "$osd_id"
    until ceph_cli osd dump 2>/dev/null | grep -q "^osd\.$osd_id up "; do
        [[ $SECONDS -lt $deadline ]] || fail "osd.$osd_id did not come up within ${start_timeout}s"
        sleep 0.5
    done
    say "mon and osd.$osd_id up after $((SECONDS - t0))s"

    # Gateway. radosgw creates the default realm/zonegroup/zone and its pools
    # on first start; the user is created once it answers, to avoid racing it.
    # Its port is picked just before it starts; should another process grab it
    # first, radosgw exits and is tried again on another port.
    local attempt pidfile="$dir/run/$cluster-client.rgw.a.pid" rgw_log="$dir/log/$cluster-client.rgw.a.log"
    for attempt in 1 2 3 4; do
        [[ $attempt -lt 4 ]] || fail "radosgw did not start"
        rgw_port="$(free_ports 1)"
        sed -i "s|^rgw frontends = .*|rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1|" "$dir/ceph.conf"
        rm -f -- "$pidfile"
        step rgw-start timeout 90 radosgw "${c[@]}" -n client.rgw.a
        until curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$rgw_port/"; do
            [[ $SECONDS -lt $deadline ]] || fail "radosgw did not answer on 127.0.0.1:$rgw_port within ${start_timeout}s"
            # radosgw 16 does not exit when it cannot bind: it logs and hangs.
            if grep -q "failed initializing frontend" "$rgw_log" 2>/dev/null ||
                    { [[ -f "$pidfile" ]] && ! is_ours "$(cat -- "$pidfile" 2>/dev/null)" "$dir/ceph.conf"; }; then
                say "radosgw failed (attempt $attempt, port $rgw_port):"
                grep -E "failed|ERROR" "$rgw_log" | tail -n 3 >&2 || true
                kill_rgw "$pidfile" "$dir/ceph.conf"
                mv -f -- "$rgw_log" "$rgw_log.$attempt"
                continue 2
            fi
            sleep 0.5
        done
        break
    done
    step rgw-user timeout 60 radosgw-admin "${c[@]}" user create --uid=vna-test \
        --display-name=vna-test --access-key="$access_key" --secret-key="$secret_key"
    write_state "$dir" "$cluster" "$rgw_port"
    S3_PORT="$rgw_port"
    say "radosgw on http://127.0.0.1:$rgw_port after $((SECONDS - t0))s"
    print_env
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) env_lines ;;
    status)
        if load_state && [[ "${S3_PORT:-0}" != 0 ]] && curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$S3_PORT/"; then
            print_env
        else
            say "not running"; exit 1
        fi ;;
    *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
