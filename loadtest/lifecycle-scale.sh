#!/usr/bin/env bash
# Lifecycle at scale: a catalog of N tiny instances (imported through the one ingest pipeline,
# without policies, so nothing is locked yet), then with the example policies of
# lifecycle-policies/:
#   1. `vna lifecycle plan` over all of it: wall time, peak RSS, CPU;
#   2. `vna lifecycle apply` of that plan (the filesystem tier's emulated Object Lock: a lock
#      file per object, written and fsynced): objects examined and locked per second, against
#      the store's own rate for the same work (`vna-loadtest` is not needed for that: the
#      first apply locks every object, a second apply of the new plan only reads the locks, so
#      the difference is the lock writes);
#   3. ingest while an apply runs: STOW-RS of tiny instances by `vna-loadtest stow` against a
#      `vna serve` whose own job runner applies the plan at the same time, against the same
#      STOW-RS with no job running.
#
#   loadtest/lifecycle-scale.sh [--instances N] [--plan-only] [--no-serve] [--catalog-url URL] [--out DIR]
#
# --catalog-url: the catalog on that PostgreSQL database (empty) instead of the embedded one;
# --no-serve: stop after plan and apply (no ingest beside a running job).
#
# Needs a release build (`cargo build --release -p vna -p vna-loadtest`).
set -euo pipefail
cd "$(dirname "$0")/.."

instances=200000 out="" plan_only=0 no_serve=0 catalog=()
while (($#)); do
    case $1 in
        --instances) instances="$2"; shift 2 ;;
        --plan-only) plan_only=1; shift ;;
        --no-serve) no_serve=1; shift ;;
        --catalog-url) catalog=(--catalog-url "$2"); shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: loadtest/lifecycle-scale.sh [--instances N] [--plan-only] [--no-serve] [--catalog-url URL] [--out DIR]" >&2; exit 2 ;;
    esac
done
out="${out:-loadtest/out/lifecycle-scale-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
bin="${VNA_COMPARE_BIN:-target/release}"
[[ -x $bin/vna && -x $bin/vna-loadtest ]] || { echo "build first: cargo build --release -p vna -p vna-loadtest" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null || { echo "cannot install GNU time" >&2; exit 1; }; }
policies="$PWD/lifecycle-policies"
now="2027-06-01"

state="$(mktemp -d "${TMPDIR:-/tmp}/vna-lcscale.XXXXXX")"
VNA_PID=""
cleanup() {
    [[ -n $VNA_PID ]] && kill "$VNA_PID" 2>/dev/null || true
    rm -rf "$state"
}
trap cleanup EXIT
time_figures() { awk -F': ' '/Maximum resident/ {rss=$2/1024} /User time/ {u=$2} /System time/ {s=$2} /Elapsed/ {e=$2} END {printf "wall %s, peak RSS %.0f MB, CPU %.1f s", e, rss, u+s}' "$1"; }

{
    where="embedded index"; ((${#catalog[@]})) && where="PostgreSQL catalog"
    echo "# lifecycle at scale, $(date -u +%Y-%m-%dT%H:%MZ), $where, filesystem tier"
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo), $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "corpus: $instances 16x16 CT-like instances; policies: lifecycle-policies/ as of $now"
} | tee "$out/context.txt"

data="$state/data"; mkdir -p "$data"
"$bin/vna-loadtest" populate --instances "$instances" --image-size 16 --dir "$state/files" | tee "$out/populate.txt"
"$bin/vna" --data-dir "$data" "${catalog[@]}" import --parallel 16 --quiet "$state/files" >"$state/import.out" 2>&1 || { tail -20 "$state/import.out" >&2; exit 1; }
rm -rf "$state/files"
tail -1 "$state/import.out" | tee -a "$out/populate.txt"

echo "== plan over $instances instances"
/usr/bin/time -v -o "$state/plan.time" "$bin/vna" --data-dir "$data" "${catalog[@]}" lifecycle plan --policies "$policies" --now "$now" --json >"$out/plan.json"
echo "plan: $(time_figures "$state/plan.time")" | tee "$out/figures.txt"
hash="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["planHash"])' "$out/plan.json")"
if ((plan_only)); then echo "reports in $out"; exit 0; fi

echo "== apply (every object locked: a lock file written and fsynced per object)"
/usr/bin/time -v -o "$state/apply.time" "$bin/vna" --data-dir "$data" "${catalog[@]}" lifecycle apply --policies "$policies" --now "$now" --plan "$hash" >"$out/apply.json"
echo "apply, locking: $(time_figures "$state/apply.time")" | tee -a "$out/figures.txt"
"$bin/vna" --data-dir "$data" "${catalog[@]}" lifecycle plan --policies "$policies" --now "$now" --json >"$state/plan2.json"
hash2="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["planHash"])' "$state/plan2.json")"
echo "== apply again (locks already right: only read)"
/usr/bin/time -v -o "$state/apply2.time" "$bin/vna" --data-dir "$data" "${catalog[@]}" lifecycle apply --policies "$policies" --now "$now" --plan "$hash2" >"$out/apply-again.json"
echo "apply, nothing to change: $(time_figures "$state/apply2.time")" | tee -a "$out/figures.txt"
python3 - "$out/apply.json" "$out/apply-again.json" "$state/apply.time" "$state/apply2.time" <<'EOF' | tee -a "$out/figures.txt"
import json, re, sys
def secs(path):
    t = re.search(r"Elapsed \(wall clock\) time.*: (.*)", open(path).read()).group(1).split(":")
    return sum(float(x) * 60 ** i for i, x in enumerate(reversed(t)))
for name, p, t in (("locking", sys.argv[1], sys.argv[3]), ("unchanged", sys.argv[2], sys.argv[4])):
    o = json.load(open(p))["outcome"]
    s = secs(t)
    print(f"apply {name}: {o['examined']} examined in {s:.1f} s = {o['examined'] / s:.0f} objects/s; locks {o['locks']}")
EOF

if ((no_serve)); then echo "reports in $out"; exit 0; fi
echo "== ingest with and without a running apply job"
"$bin/vna-loadtest" populate --instances 1 --image-size 16 --dir "$state/warm" >/dev/null
serve() {
    VNA__LIFECYCLE__POLICIES_DIR="$policies" VNA__JOBS__POLL_SECONDS=1 "$bin/vna" serve --data-dir "$data" "${catalog[@]}" --http-listen 127.0.0.1:0 --dimse-listen 127.0.0.1:0 >"$state/vna.out" 2>"$state/vna.log" &
    VNA_PID=$!
    for _ in $(seq 300); do grep -q "^vna ready" "$state/vna.out" 2>/dev/null && break; sleep 0.2; done
    VNA_HTTP="$(sed -n 's/^vna ready: http=\([^ ]*\) .*$/\1/p' "$state/vna.out")"
    [[ -n $VNA_HTTP ]] || { cat "$state/vna.log" >&2; echo "vna did not start" >&2; exit 1; }
}
serve
stow=(stow --instances 20000 --image-size 16 --batch 10 --concurrency 4)
"$bin/vna-loadtest" --json "$out/stow-idle.json" "${stow[@]}" --seed 7 --url "$VNA_HTTP/dicom-web" --server-pid "$VNA_PID" | tail -3
plan3="$(curl -s "$VNA_HTTP/admin/lifecycle/plan?now=$now" | python3 -c 'import json,sys; print(json.load(sys.stdin)["planHash"])')"
curl -s -X POST "$VNA_HTTP/admin/lifecycle/apply?now=$now&plan=$plan3" >"$state/queued.json"
sleep 2
"$bin/vna-loadtest" --json "$out/stow-during-apply.json" "${stow[@]}" --seed 8 --url "$VNA_HTTP/dicom-web" --server-pid "$VNA_PID" | tail -3
curl -s "$VNA_HTTP/admin/jobs?limit=5" >"$out/jobs.json"
kill "$VNA_PID"; wait "$VNA_PID" 2>/dev/null || true; VNA_PID=""
"$bin/vna-loadtest" summarize --a-name idle --a "$out/stow-idle.json" --b-name during-apply --b "$out/stow-during-apply.json" | tee "$out/summary.md"
echo "reports in $out"
