#!/usr/bin/env bash
# Search index lag under a STOW-RS storm (issue 16): the same release binary with the search
# index on and off, a fresh data directory per run, STOW-RS of 2000 CT instances (batches of
# 10, 4 clients), 3 rounds. While the storm runs, GET /admin/search is sampled every 100 ms:
# the lag in changes, and for each batch the indexer commits, how long its oldest change waited
# to become searchable (lastBatchLagMs, an upper bound of every change in it). Prints the ingest
# rate on and off, the lag percentiles over batches, the largest backlog, and how long the index
# took to catch up after the last store. Build first: cargo build --release -p vna -p vna-loadtest
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=loadtest/out/search-lag; rm -rf $out; mkdir -p $out
run() { # mode round
  local mode=$1 r=$2 data=$(mktemp -d -p loadtest/out)
  local env=(); [[ $mode == off ]] && env=(VNA__SEARCH__ENABLED=false)
  env "${env[@]}" VNA__SEARCH__POLL_MS=100 target/release/vna serve --data-dir $data --http-listen 127.0.0.1:0 --dimse-listen 127.0.0.1:0 > $data.ready 2> $data.log & pid=$!
  for _ in $(seq 100); do grep -q '^vna ready' $data.ready && break; sleep 0.1; done
  line=$(head -1 $data.ready); base="${line#*http=}"; base="${base%% *}"
  if [[ $mode == on ]]; then
    python3 - "$base" $out/$mode-r$r.samples <<'PY' & sampler=$!
import json, sys, time, urllib.request
base, path = sys.argv[1], sys.argv[2]
with open(path, "w") as f:
    while True:
        try:
            s = json.load(urllib.request.urlopen(base + "/admin/search", timeout=5))
        except Exception:
            break
        s["t"] = time.time()
        f.write(json.dumps(s) + "\n"); f.flush()
        time.sleep(0.1)
PY
  fi
  target/release/vna-loadtest --json $out/$mode-r$r.json stow --url $base/dicom-web --server-pid $pid --instances 2000 --batch 10 --concurrency 4 > /dev/null
  date +%s.%N > $out/$mode-r$r.end
  if [[ $mode == on ]]; then
    for _ in $(seq 600); do
      s=$(curl -s $base/admin/search); [[ $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["lag"])' "$s") == 0 ]] && break; sleep 0.1
    done
    date +%s.%N > $out/$mode-r$r.caught
    kill $sampler 2>/dev/null || true
  fi
  kill $pid; wait $pid 2>/dev/null || true; rm -rf $data $data.ready $data.log
}
for r in 1 2 3; do for m in off on; do run $m $r; done; done
python3 - <<'PY'
import json, glob, statistics
out = "loadtest/out/search-lag"
def rate(mode):
    v = [list(json.load(open(f))["scenarios"].values())[0]["items_per_s"] for f in sorted(glob.glob(f"{out}/{mode}-r*.json"))]
    return statistics.median(v), [round(x) for x in v]
for mode in ("off", "on"):
    m, v = rate(mode)
    print(f"STOW-RS ingest, search {mode}: {m:.0f} instances/s (rounds {v})")
lags, backlog, catch = [], [], []
for f in sorted(glob.glob(f"{out}/on-r*.samples")):
    seen = {}
    for line in open(f):
        s = json.loads(line)
        seen[s["batches"]] = s["lastBatchLagMs"]
        backlog.append(s["lag"])
    lags += [v for k, v in seen.items() if k > 0]
    r = f[:-len(".samples")]
    catch.append(float(open(r + ".caught").read()) - float(open(r + ".end").read()))
lags.sort()
pct = lambda p: lags[min(len(lags) - 1, int(len(lags) * p))]
print(f"batches sampled: {len(lags)}; oldest change's wait per batch ms: p50 {pct(0.5)} p95 {pct(0.95)} max {lags[-1]}")
print(f"largest backlog seen: {max(backlog)} changes; caught up after the last store in {statistics.median(catch):.2f} s (rounds {[round(c, 2) for c in catch]})")
PY
