#!/usr/bin/env bash
# A throw-away Orthanc (Debian's orthanc + orthanc-dicomweb [+ orthanc-postgresql]) for
# side-by-side benchmarks, on loopback, in its own state directory.
#
#   loadtest/orthanc.sh start [--postgres URL]   install if missing, start, print env lines
#   loadtest/orthanc.sh env                      print them again
#   loadtest/orthanc.sh stop                     stop it and remove its state
#
# Env lines: ORTHANC_HTTP (base URL), ORTHANC_DICOMWEB (its DICOMweb root), ORTHANC_DIMSE
# (host:port), ORTHANC_AET, ORTHANC_PID.
#
# A fair performance configuration (what an administrator tuning it would set): no storage
# compression, no job persistence, find answers from the index only (no file reads per
# result), TCP_NODELAY, the DICOMweb plugin at /dicom-web/, and with --postgres the
# PostgreSQL index plugin (files stay on the filesystem, as vna's blobs do there) on a fresh
# database of that server. State: $VNA_ORTHANC_STATE_DIR (default .test-env/orthanc).
set -euo pipefail

state="${VNA_ORTHANC_STATE_DIR:-$PWD/.test-env/orthanc}"
die() { echo "orthanc.sh: $*" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

install_if_missing() {
    local need=()
    for p in orthanc orthanc-dicomweb "$@"; do
        [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] || need+=("$p")
    done
    ((${#need[@]})) || return 0
    echo "orthanc.sh: installing ${need[*]}" >&2
    local sudo=()
    [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
    # The package's service would start on install (ports 8042/4242): forbid it for the
    # duration, as container images do; this script starts its own instance.
    local policy=/usr/sbin/policy-rc.d created=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null && "${sudo[@]}" chmod +x "$policy" && created=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${need[@]}" >&2 \
        || { "${sudo[@]}" apt-get update -q >&2 && "${sudo[@]}" apt-get install -y -q --no-install-recommends "${need[@]}" >&2; } \
        || { ((created)) && "${sudo[@]}" rm -f "$policy"; die "apt-get install ${need[*]} failed"; }
    ((created)) && "${sudo[@]}" rm -f "$policy"
    return 0
}

start() {
    local pg=""
    while (($#)); do
        case $1 in
            --postgres) pg="$2"; shift 2 ;;
            *) die "unknown option $1" ;;
        esac
    done
    [[ -f "$state/pid" ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null && die "already running (loadtest/orthanc.sh stop)"
    if [[ -n $pg ]]; then install_if_missing orthanc-postgresql; else install_if_missing; fi
    rm -rf "$state" && mkdir -p "$state/storage" "$state/index"
    local http dimse plugins pgconf=""
    http="$(free_port)"; dimse="$(free_port)"
    plugins='"/usr/share/orthanc/plugins/libOrthancDicomWeb.so"'
    if [[ -n $pg ]]; then
        # postgres://user[:password]@host:port/db → a fresh database beside it.
        local rest="${pg#*://}" userinfo hostport db
        userinfo="${rest%%@*}"; rest="${rest#*@}"; hostport="${rest%%/*}"
        db="orthanc_bench_$$_$(date +%s)"
        psql "$pg" -q -c "CREATE DATABASE $db" >/dev/null || die "cannot create database $db on $hostport"
        echo "$pg" >"$state/pg-admin-url"; echo "$db" >"$state/pg-db"
        plugins="$plugins, \"/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so\""
        pgconf=$(printf ',\n  "PostgreSQL": { "EnableIndex": true, "EnableStorage": false, "Host": "%s", "Port": %s, "Database": "%s", "Username": "%s", "Password": "%s", "Lock": false, "IndexConnectionsCount": 4 }' \
            "${hostport%%:*}" "${hostport##*:}" "$db" "${userinfo%%:*}" "$([[ $userinfo == *:* ]] && echo "${userinfo#*:}")")
    fi
    cat >"$state/orthanc.json" <<EOF
{
  "Name": "vna-bench-orthanc",
  "StorageDirectory": "$state/storage",
  "IndexDirectory": "$state/index",
  "StorageCompression": false,
  "Plugins": [ $plugins ],
  "HttpServerEnabled": true,
  "HttpPort": $http,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "HttpCompressionEnabled": false,
  "KeepAlive": true,
  "TcpNoDelay": true,
  "HttpThreadsCount": 50,
  "DicomServerEnabled": true,
  "DicomAet": "ORTHANC",
  "DicomPort": $dimse,
  "DicomCheckCalledAet": false,
  "DicomAlwaysAllowStore": true,
  "DicomAlwaysAllowFind": true,
  "DicomAlwaysAllowGet": true,
  "DicomThreadsCount": 8,
  "UnknownSopClassAccepted": true,
  "ConcurrentJobs": 2,
  "SaveJobs": false,
  "StorageAccessOnFind": "Never",
  "LimitFindResults": 0,
  "LimitFindInstances": 0,
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": true, "WadoRoot": "/wado", "Host": "127.0.0.1:$http", "Ssl": false }$pgconf
}
EOF
    Orthanc "$state/orthanc.json" >"$state/orthanc.log" 2>&1 &
    echo $! >"$state/pid"
    local i
    for i in $(seq 150); do
        curl -fsS "http://127.0.0.1:$http/system" >/dev/null 2>&1 && break
        kill -0 "$(cat "$state/pid")" 2>/dev/null || { tail -20 "$state/orthanc.log" >&2; die "Orthanc exited at start"; }
        sleep 0.2
    done
    curl -fsS "http://127.0.0.1:$http/system" >/dev/null || { tail -20 "$state/orthanc.log" >&2; die "Orthanc did not answer in 30 s"; }
    curl -fsS "http://127.0.0.1:$http/dicom-web/studies" -o /dev/null -w '' || die "the DICOMweb plugin is not answering"
    cat >"$state/env" <<EOF
ORTHANC_HTTP=http://127.0.0.1:$http
ORTHANC_DICOMWEB=http://127.0.0.1:$http/dicom-web
ORTHANC_DIMSE=127.0.0.1:$dimse
ORTHANC_AET=ORTHANC
ORTHANC_PID=$(cat "$state/pid")
EOF
    cat "$state/env"
}

stop() {
    [[ -d $state ]] || return 0
    if [[ -f "$state/pid" ]]; then
        local pid; pid="$(cat "$state/pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    if [[ -f "$state/pg-db" ]]; then
        psql "$(cat "$state/pg-admin-url")" -q -c "DROP DATABASE IF EXISTS $(cat "$state/pg-db")" >/dev/null 2>&1 || true
    fi
    rm -rf "$state"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    env) cat "$state/env" ;;
    stop) stop ;;
    *) die "usage: loadtest/orthanc.sh start [--postgres URL] | env | stop" ;;
esac
