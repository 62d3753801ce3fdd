#!/usr/bin/env bash
# Side-by-side benchmark: the same scenarios against vna (A) and Orthanc (B), alternately
# (A B A B …, a fresh instance of each per round, on the same machine), then one table of the
# medians and the ratio per figure (`vna-loadtest summarize`).
#
#   loadtest/compare.sh [--rounds N] [--postgres] [--out DIR]
#
# Default: embedded configurations on both sides (vna: SQLite + filesystem; Orthanc: its
# SQLite index + filesystem storage, no compression). With --postgres both index in
# PostgreSQL (scripts/pg-throwaway.sh starts a throw-away cluster; vna's catalog and Orthanc's
# PostgreSQL index plugin each get a fresh database; files stay on the filesystem on both).
# Sizes: VNA_COMPARE_SIZES overrides the scenario options (see below). Needs a release build
# (`cargo build --release -p vna -p vna-loadtest`); installs Orthanc from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 postgres=0 out=""
while (($#)); do
    case $1 in
        --rounds) rounds="$2"; shift 2 ;;
        --postgres) postgres=1; shift ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: loadtest/compare.sh [--rounds N] [--postgres] [--out DIR]" >&2; exit 2 ;;
    esac
done
out="${out:-loadtest/out/compare-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
bin="${VNA_COMPARE_BIN:-target/release}"   # the smoke test points it at the debug build
[[ -x $bin/vna && -x $bin/vna-loadtest ]] || { echo "build first: cargo build --release -p vna -p vna-loadtest" >&2; exit 1; }

# Scenario sizes: instances (0.5 MB CT), STOW batch, clients, QIDO and frame requests, slide
# tiles, rendered instances and requests, big object MiB.
read -r INSTANCES BATCH CONC QIDO_REQ SLIDE_FRAMES FRAME_REQ RENDER_INST RENDER_REQ BIG_MB \
    <<<"${VNA_COMPARE_SIZES:-2000 10 4 2000 2000 2000 60 1000 1024}"

state="$(mktemp -d "${TMPDIR:-/tmp}/vna-compare.XXXXXX")"
cleanup() {
    [[ -n ${VNA_PID:-} ]] && kill "$VNA_PID" 2>/dev/null || true
    VNA_ORTHANC_STATE_DIR="$state/orthanc" loadtest/orthanc.sh stop >/dev/null 2>&1 || true
    ((postgres)) && VNA_PG_STATE_DIR="$state/pg" scripts/pg-throwaway.sh stop >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT
pg_url=""
if ((postgres)); then
    pg_url="$(VNA_PG_STATE_DIR="$state/pg" scripts/pg-throwaway.sh start)"
fi

# Runs every scenario against one target; $1 = label, $2 = DICOMweb root, $3 = DIMSE
# host:port, $4 = called AE, $5 = server PID. One JSON report per scenario.
scenarios() {
    local label=$1 url=$2 dimse=$3 aet=$4 pid=$5 r=$6
    # Exit status 2 is "ran, with errors or mismatches" (in the JSON, and in the summary's
    # problems): the comparison goes on; anything else stops it.
    lt() { "$bin/vna-loadtest" --seed "$r" "$@" || { local s=$?; ((s == 2)) || exit "$s"; echo "($label: errors, see the summary)"; }; }
    local lt=(lt)
    local common=(--url "$url" --server-pid "$pid")
    local corpus=(--instances "$INSTANCES")
    "${lt[@]}" --json "$out/r$r-$label-stow.json" stow "${common[@]}" "${corpus[@]}" --batch "$BATCH" --concurrency "$CONC"
    "${lt[@]}" --json "$out/r$r-$label-qido.json" qido "${common[@]}" "${corpus[@]}" --requests "$QIDO_REQ" --concurrency "$CONC"
    "${lt[@]}" --json "$out/r$r-$label-cstore.json" cstore "${common[@]}" "${corpus[@]}" --associations "$CONC" --namespace 1 \
        --dimse "$dimse" --called-ae "$aet"
    "${lt[@]}" --json "$out/r$r-$label-frames.json" frames "${common[@]}" --slide-frames "$SLIDE_FRAMES" --requests "$FRAME_REQ" --concurrency "$CONC"
    "${lt[@]}" --json "$out/r$r-$label-rendered.json" rendered "${common[@]}" --instances "$RENDER_INST" --requests "$RENDER_REQ" \
        --concurrency "$CONC" --no-thumbnails
    "${lt[@]}" --json "$out/r$r-$label-big.json" big "${common[@]}" --size-mb "$BIG_MB"
}

run_vna() {
    local r=$1 data="$state/vna-data"
    rm -rf "$data"; mkdir -p "$data"
    local args=(serve --data-dir "$data" --http-listen 127.0.0.1:0 --dimse-listen 127.0.0.1:0)
    if ((postgres)); then
        local db="vna_compare_r$r"
        psql "$pg_url" -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
        args+=(--catalog-url "${pg_url%/*}/$db")
    fi
    "$bin/vna" "${args[@]}" >"$state/vna.out" 2>"$state/vna.log" &
    VNA_PID=$!
    for _ in $(seq 150); do grep -q "^vna ready" "$state/vna.out" 2>/dev/null && break; sleep 0.2; done
    local http dimse
    http="$(sed -n 's/^vna ready: http=\([^ ]*\) dimse=\(.*\)$/\1/p' "$state/vna.out")"
    dimse="$(sed -n 's/^vna ready: http=\([^ ]*\) dimse=\(.*\)$/\2/p' "$state/vna.out")"
    [[ -n $http ]] || { cat "$state/vna.log" >&2; echo "vna did not start" >&2; exit 1; }
    scenarios vna "$http/dicom-web" "$dimse" VNA "$VNA_PID" "$r"
    kill "$VNA_PID"; wait "$VNA_PID" 2>/dev/null || true; VNA_PID=""
}

run_orthanc() {
    local r=$1
    local start=(start)
    ((postgres)) && start+=(--postgres "$pg_url")
    eval "$(VNA_ORTHANC_STATE_DIR="$state/orthanc" loadtest/orthanc.sh "${start[@]}")"
    scenarios orthanc "$ORTHANC_DICOMWEB" "$ORTHANC_DIMSE" "$ORTHANC_AET" "$ORTHANC_PID" "$r"
    VNA_ORTHANC_STATE_DIR="$state/orthanc" loadtest/orthanc.sh stop
}

{
    echo "# vna vs Orthanc, $(date -u +%Y-%m-%dT%H:%MZ), $rounds rounds, $( ((postgres)) && echo PostgreSQL || echo embedded) index"
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo), $(uname -r); Orthanc $(dpkg-query -W -f='${Version}' orthanc 2>/dev/null || echo '?'), DICOMweb plugin $(dpkg-query -W -f='${Version}' orthanc-dicomweb 2>/dev/null || echo '?')"
    echo "sizes: instances=$INSTANCES batch=$BATCH clients=$CONC qido=$QIDO_REQ slide_frames=$SLIDE_FRAMES frames=$FRAME_REQ rendered=$RENDER_INST/$RENDER_REQ big_mb=$BIG_MB"
} | tee "$out/context.txt"
"$bin/vna-loadtest" --json "$out/machine.json" machine --dir "$state" ${VNA_COMPARE_MACHINE_ARGS:-} >"$out/machine.txt"
cat "$out/machine.txt"
for r in $(seq "$rounds"); do
    echo "== round $r: vna (load $(cut -d' ' -f1-3 /proc/loadavg))"
    run_vna "$r"
    echo "== round $r: Orthanc (load $(cut -d' ' -f1-3 /proc/loadavg))"
    run_orthanc "$r"
done
"$bin/vna-loadtest" summarize --a-name vna --a "$out"/r*-vna-*.json --b-name orthanc --b "$out"/r*-orthanc-*.json | tee "$out/summary.md"
echo "reports in $out"
