#!/usr/bin/env bash
# Queries at scale: fill an archive with a large corpus of tiny instances, then run the QIDO-RS
# mix over it.
#
#   loadtest/scale.sh [--instances N] [--orthanc N] [--postgres] [--out DIR]
#
# vna (--instances, default 1000000): the corpus is written as Part 10 files
# (`vna-loadtest populate`, 16×16 images, ~1.7 KB each) and stored through the archive's own
# import path (`vna import`, the one ingest pipeline: hashed, parsed, fsynced, catalogued),
# then `vna serve` answers `vna-loadtest qido` over it.
# Side by side (--orthanc N, e.g. 100000; 0 = skip): the same N-instance corpus is stored into
# a fresh vna and a fresh Orthanc through STOW-RS (Orthanc has no import command of its own),
# and the same query mix runs against each, vna first, then Orthanc.
# With --postgres, vna's catalog and Orthanc's index are in PostgreSQL (a throw-away cluster).
# Needs a release build (`cargo build --release -p vna -p vna-loadtest`) and, for --orthanc,
# Orthanc (loadtest/orthanc.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

instances=1000000 orthanc=0 postgres=0 out=""
while (($#)); do
    case $1 in
        --instances) instances="$2"; shift 2 ;;
        --orthanc) orthanc="$2"; shift 2 ;;
        --postgres) postgres=1; shift ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: loadtest/scale.sh [--instances N] [--orthanc N] [--postgres] [--out DIR]" >&2; exit 2 ;;
    esac
done
out="${out:-loadtest/out/scale-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
bin="${VNA_COMPARE_BIN:-target/release}"
[[ -x $bin/vna && -x $bin/vna-loadtest ]] || { echo "build first: cargo build --release -p vna -p vna-loadtest" >&2; exit 1; }
# Query mix size and clients; the corpus shape is the loadtest default (3 series of 20).
read -r QIDO_REQ CONC <<<"${VNA_SCALE_SIZES:-2000 4}"
tiny=(--image-size 16)

state="$(mktemp -d "${TMPDIR:-/tmp}/vna-scale.XXXXXX")"
VNA_PID=""
cleanup() {
    [[ -n $VNA_PID ]] && kill "$VNA_PID" 2>/dev/null || true
    VNA_ORTHANC_STATE_DIR="$state/orthanc" loadtest/orthanc.sh stop >/dev/null 2>&1 || true
    ((postgres)) && VNA_PG_STATE_DIR="$state/pg" scripts/pg-throwaway.sh stop >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT
pg_url=""
((postgres)) && pg_url="$(VNA_PG_STATE_DIR="$state/pg" scripts/pg-throwaway.sh start)"

# A catalog URL for a fresh database named $1 (PostgreSQL), or nothing (SQLite in the data dir).
catalog_args() {
    ((postgres)) || return 0
    psql "$pg_url" -q -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
    echo "--catalog-url ${pg_url%/*}/$1"
}

# Starts `vna serve` on data dir $1 (extra args after it); sets VNA_PID and VNA_HTTP.
serve() {
    local data=$1; shift
    "$bin/vna" serve --data-dir "$data" --http-listen 127.0.0.1:0 --dimse-listen 127.0.0.1:0 "$@" >"$state/vna.out" 2>"$state/vna.log" &
    VNA_PID=$!
    for _ in $(seq 300); do grep -q "^vna ready" "$state/vna.out" 2>/dev/null && break; sleep 0.2; done
    VNA_HTTP="$(sed -n 's/^vna ready: http=\([^ ]*\) .*$/\1/p' "$state/vna.out")"
    [[ -n $VNA_HTTP ]] || { cat "$state/vna.log" >&2; echo "vna did not start" >&2; exit 1; }
}
stop_vna() { kill "$VNA_PID"; wait "$VNA_PID" 2>/dev/null || true; VNA_PID=""; }
# Peak resident memory (MB) and CPU seconds of a finished child, from GNU time's output file.
time_figures() { awk -F': ' '/Maximum resident/ {rss=$2/1024} /User time/ {u=$2} /System time/ {s=$2} END {printf "peak RSS %.0f MB, CPU %.1f s", rss, u+s}' "$1"; }

{
    echo "# queries at scale, $(date -u +%Y-%m-%dT%H:%MZ), $( ((postgres)) && echo PostgreSQL || echo embedded) index"
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo), $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "corpus: 16x16 CT-like instances, 3 series of 20 per study; qido: $QIDO_REQ queries, $CONC clients"
} | tee "$out/context.txt"
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null || { echo "cannot install GNU time" >&2; exit 1; }; }

if ((instances > 0)); then
    echo "== vna, $instances instances through vna import"
    t0=$(date +%s.%N)
    "$bin/vna-loadtest" populate --instances "$instances" "${tiny[@]}" --dir "$state/files" | tee "$out/populate.txt"
    t1=$(date +%s.%N)
    data="$state/vna-import"; mkdir -p "$data"
    # shellcheck disable=SC2046
    /usr/bin/time -v -o "$state/import.time" "$bin/vna" --data-dir "$data" import --parallel 16 --quiet $(catalog_args vna_scale_import) "$state/files" \
        >"$state/import.out" 2>&1 || { tail -20 "$state/import.out" >&2; exit 1; }
    t2=$(date +%s.%N)
    tail -3 "$state/import.out"
    awk -v n="$instances" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {printf "populate %.0f s; import %.0f s = %.0f instances/s, ", b-a, c-b, n/(c-b)}' | tee "$out/import.txt"
    time_figures "$state/import.time" | tee -a "$out/import.txt"; echo | tee -a "$out/import.txt"
    rm -rf "$state/files"
    # shellcheck disable=SC2046
    serve "$data" $(((postgres)) && echo "--catalog-url ${pg_url%/*}/vna_scale_import")
    # The mix as is (study lists up to the server's limit of 1000), then paged like a viewer's
    # worklist (limit=101 on the study-level queries).
    "$bin/vna-loadtest" --json "$out/vna-$instances-qido.json" qido --url "$VNA_HTTP/dicom-web" --server-pid "$VNA_PID" \
        --instances "$instances" "${tiny[@]}" --requests "$QIDO_REQ" --concurrency "$CONC"
    "$bin/vna-loadtest" --json "$out/vna-$instances-qido-paged.json" qido --url "$VNA_HTTP/dicom-web" --server-pid "$VNA_PID" \
        --instances "$instances" "${tiny[@]}" --requests "$QIDO_REQ" --concurrency "$CONC" --limit 101
    stop_vna
    du -sh "$data" | sed 's/^/vna data dir: /' | tee -a "$out/import.txt"
    rm -rf "$data"
fi

if ((orthanc > 0)); then
    stow=(stow --instances "$orthanc" "${tiny[@]}" --batch 50 --concurrency "$CONC")
    qido=(qido --instances "$orthanc" "${tiny[@]}" --requests "$QIDO_REQ" --concurrency "$CONC")
    echo "== vna, $orthanc instances through STOW-RS"
    data="$state/vna-stow"; mkdir -p "$data"
    # shellcheck disable=SC2046
    serve "$data" $(catalog_args vna_scale_stow)
    "$bin/vna-loadtest" --json "$out/vna-$orthanc-stow.json" "${stow[@]}" --url "$VNA_HTTP/dicom-web" --server-pid "$VNA_PID"
    "$bin/vna-loadtest" --json "$out/vna-$orthanc-qido.json" "${qido[@]}" --url "$VNA_HTTP/dicom-web" --server-pid "$VNA_PID"
    stop_vna; rm -rf "$data"
    echo "== Orthanc, $orthanc instances through STOW-RS"
    start=(start); ((postgres)) && start+=(--postgres "$pg_url")
    eval "$(VNA_ORTHANC_STATE_DIR="$state/orthanc" loadtest/orthanc.sh "${start[@]}")"
    "$bin/vna-loadtest" --json "$out/orthanc-$orthanc-stow.json" "${stow[@]}" --url "$ORTHANC_DICOMWEB" --server-pid "$ORTHANC_PID"
    "$bin/vna-loadtest" --json "$out/orthanc-$orthanc-qido.json" "${qido[@]}" --url "$ORTHANC_DICOMWEB" --server-pid "$ORTHANC_PID"
    VNA_ORTHANC_STATE_DIR="$state/orthanc" loadtest/orthanc.sh stop
    "$bin/vna-loadtest" summarize --a-name vna --a "$out/vna-$orthanc-stow.json" "$out/vna-$orthanc-qido.json" \
        --b-name orthanc --b "$out/orthanc-$orthanc-stow.json" "$out/orthanc-$orthanc-qido.json" | tee "$out/summary.md"
fi
echo "reports in $out"
