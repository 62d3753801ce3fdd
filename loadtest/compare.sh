#!/usr/bin/env bash
# Side-by-side benchmark: the same scenarios against vna (A) and Orthanc (B), alternately
# (A B A B …, a fresh instance of each per round, on the same machine), then one table of the
# medians and the ratio per figure (`vna-loadtest summarize`).
#
#   loadtest/compare.sh [--rounds N] [--postgres] [--ingest] [--out DIR]
#
# --ingest runs only the ingest matrix of issue 17 instead: C-STORE of 9 KB instances (64×64)
# and of 0.5 MB CT over 1 and 4 associations, STOW-RS of both sizes (batches of 10, 4 clients),
# each scenario against a fresh server of each side (VNA_COMPARE_INGEST="N_9K N_CT" instances,
# default 3000 1000).
#
# Default: embedded configurations on both sides (vna: SQLite + filesystem; Orthanc: its
# SQLite index + filesystem storage, no compression). With --postgres both index in
# PostgreSQL (scripts/pg-throwaway.sh starts a durable throw-away cluster; vna's catalog and Orthanc's
# PostgreSQL index plugin each get a fresh database; files stay on the filesystem on both).
# Sizes: VNA_COMPARE_SIZES overrides the scenario options (see below). Needs a release build
# (`cargo build --release -p vna -p vna-loadtest`); installs Orthanc from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 postgres=0 ingest=0 out=""
while (($#)); do
    case $1 in
        --rounds) rounds="$2"; shift 2 ;;
        --postgres) postgres=1; shift ;;
        --ingest) ingest=1; shift ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: loadtest/compare.sh [--rounds N] [--postgres] [--ingest] [--out DIR]" >&2; exit 2 ;;
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
    # Durable (fsync on): both sides acknowledge only what survives a power loss.
    pg_url="$(VNA_PG_DURABLE=1 VNA_PG_STATE_DIR="$state/pg" scripts/pg-throwaway.sh start)"
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

# Starts a fresh vna (round $1): sets VNA_PID, VNA_HTTP, VNA_DIMSE.
start_vna() {
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
    VNA_HTTP="$(sed -n 's/^vna ready: http=\([^ ]*\) dimse=\(.*\)$/\1/p' "$state/vna.out")"
    VNA_DIMSE="$(sed -n 's/^vna ready: http=\([^ ]*\) dimse=\(.*\)$/\2/p' "$state/vna.out")"
    [[ -n $VNA_HTTP ]] || { cat "$state/vna.log" >&2; echo "vna did not start" >&2; exit 1; }
}

stop_vna() {
    kill "$VNA_PID"; wait "$VNA_PID" 2>/dev/null || true; VNA_PID=""
}

# The ingest matrix: label, image size, clients, protocol.
INGEST_MATRIX=("cstore_9k_a1 64 1 cstore" "cstore_9k_a4 64 4 cstore" "cstore_ct_a1 512 1 cstore"
    "cstore_ct_a4 512 4 cstore" "stow_9k_c4 64 4 stow" "stow_ct_c4 512 4 stow")
read -r INGEST_9K INGEST_CT <<<"${VNA_COMPARE_INGEST:-3000 1000}"

# One scenario of the matrix against a running target; the report's row renamed to its label.
# $1 = side, $2 = round, $3 = matrix entry, $4 = DICOMweb root, $5 = DIMSE, $6 = called AE, $7 = PID
ingest_one() {
    local side=$1 r=$2 url=$4 dimse=$5 aet=$6 pid=$7 label size clients proto n
    read -r label size clients proto <<<"$3"
    n=$([[ $size == 64 ]] && echo "$INGEST_9K" || echo "$INGEST_CT")
    local json="$out/r$r-$side-$label.json"
    local args=(--url "$url" --server-pid "$pid" --instances "$n" --image-size "$size")
    if [[ $proto == cstore ]]; then
        args+=(--associations "$clients" --dimse "$dimse" --called-ae "$aet")
    else
        args+=(--batch 10 --concurrency "$clients")
    fi
    "$bin/vna-loadtest" --seed "$r" --json "$json" "$proto" "${args[@]}" >/dev/null \
        || { local s=$?; ((s == 2)) || exit "$s"; echo "($side $label: errors, see the summary)"; }
    python3 - "$json" "$label" <<'PY'
import json, sys
path, label = sys.argv[1], sys.argv[2]
report = json.load(open(path))
report["scenarios"] = {label: s for s in report["scenarios"].values()}
json.dump(report, open(path, "w"))
PY
}

run_ingest() {
    local r=$1 entry
    for entry in "${INGEST_MATRIX[@]}"; do
        start_vna "$r"
        ingest_one vna "$r" "$entry" "$VNA_HTTP/dicom-web" "$VNA_DIMSE" VNA "$VNA_PID"
        stop_vna
        local start=(start)
        ((postgres)) && start+=(--postgres "$pg_url")
        eval "$(VNA_ORTHANC_STATE_DIR="$state/orthanc" loadtest/orthanc.sh "${start[@]}")"
        ingest_one orthanc "$r" "$entry" "$ORTHANC_DICOMWEB" "$ORTHANC_DIMSE" "$ORTHANC_AET" "$ORTHANC_PID"
        VNA_ORTHANC_STATE_DIR="$state/orthanc" loadtest/orthanc.sh stop
        echo "   $entry done (load $(cut -d' ' -f1-3 /proc/loadavg))"
    done
}

run_vna() {
    local r=$1
    start_vna "$r"
    scenarios vna "$VNA_HTTP/dicom-web" "$VNA_DIMSE" VNA "$VNA_PID" "$r"
    stop_vna
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
if ((ingest)); then
    for r in $(seq "$rounds"); do
        echo "== round $r: the ingest matrix, vna then Orthanc per scenario"
        run_ingest "$r"
    done
    "$bin/vna-loadtest" summarize --a-name vna --a "$out"/r*-vna-*.json --b-name orthanc --b "$out"/r*-orthanc-*.json | tee "$out/summary.md"
    echo "reports in $out"
    exit 0
fi
for r in $(seq "$rounds"); do
    echo "== round $r: vna (load $(cut -d' ' -f1-3 /proc/loadavg))"
    run_vna "$r"
    echo "== round $r: Orthanc (load $(cut -d' ' -f1-3 /proc/loadavg))"
    run_orthanc "$r"
done
"$bin/vna-loadtest" summarize --a-name vna --a "$out"/r*-vna-*.json --b-name orthanc --b "$out"/r*-orthanc-*.json | tee "$out/summary.md"
echo "reports in $out"
